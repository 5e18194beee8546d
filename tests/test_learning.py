"""The whole learning pipeline learns: collect -> dataset build -> train -> eval beats chance.

Issue 4 asks that `robot-app train` on a collected dataset learn, with eval success clearly
above a random policy, in a short test. The test drives the user's own commands on real
pybullet data. It trains GCBC on a small network: measured on 2 CPU cores, AM needs
about 3000 updates at batch 256 to learn reach (0 of 20 at 500 and 1000 updates, 0-5% for
a CI-sized network at 1500), i.e. tens of minutes, while GCBC learns it in about a minute.
Why 3000 updates: at 1500 the outcome depends on the seed and the machine's float
arithmetic (six seeds here: 21-35 of 40 reach tasks; seed 0 on the CI machine: 7 of 20,
below this test's bar), while at 3000 the same six seeds reach 34-38 of 40. AM's own
learning is measured in bench/bench_learning.py (BENCHMARKS.md: reach 90% against 2% for
random actions, three seeds).
"""

from __future__ import annotations

import json

import pytest

from robot_app.cli import main as robot_app

SMALL = ["--set", "network.channels=[16,32,32,32]", "--set", "network.feature_dim=128",
         "--set", "network.head_hidden=128", "--set", "batch_size=128", "--set", "num_threads=1"]


def reach_successes(tmp_path, policy: str, name: str) -> int:
    out = tmp_path / f"{name}.json"
    assert robot_app(["eval", "--policy", policy, "--suite", "reach", "--episodes", "20", "--seed", "0",
                      "--json", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())["families"]["reach"]["successes"]


@pytest.mark.slow
def test_train_on_collected_play_reaches_goals_far_above_chance(tmp_path):
    bags, store, run = tmp_path / "bags", tmp_path / "store", tmp_path / "run"
    assert robot_app(["collect", "--episodes", "150", "--workers", "2", "--seed", "7", "--out", str(bags), "--no-progress"]) == 0
    assert robot_app(["dataset", "build", str(bags), "-o", str(store), "--workers", "2"]) == 0
    assert robot_app(["train", "--data", str(store), "--algo", "gcbc", "--out", str(run), "--steps", "3000",
                      *SMALL, "--no-progress"]) == 0
    learned = reach_successes(tmp_path, str(run), "learned")
    chance = reach_successes(tmp_path, "random", "random")
    print(f"reach: learned {learned}/20, random actions {chance}/20")
    assert learned >= 10 and learned >= chance + 8, (learned, chance)
