"""`robot-app collect` in the real pybullet sim: parallel workers, resume, and a dataset built from it."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from robot_app.cli import main
from robot_app.commands.collect import episode_name, episode_seed
from robot_app.dataset_build import build_dataset
from robot_app.store import Store

collectors = pytest.importorskip("sim_worlds.collectors", reason="sim_worlds.collectors not written yet")
STEPS = 4


def _collect(out, *extra) -> int:
    return main(
        [
            "collect",
            "--episodes",
            "3",
            "--workers",
            "2",
            "--seed",
            "7",
            "--steps",
            str(STEPS),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def test_collect_resumes_and_builds_the_collectors_actions(tmp_path, capsys):
    out = tmp_path / "run"
    assert _collect(out) == 0
    names = [episode_name(i) for i in range(3)]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "collect.json"])
    assert all((out / n / "metadata.yaml").is_file() for n in names)

    # Interrupted run: one bag gone, one left half-written. Only those two are redone.
    kept = os.stat(out / names[0] / f"{names[0]}.mcap").st_ino
    os.rename(out / names[2], out / f"{names[2]}.partial")
    (out / f"{names[2]}.partial" / "metadata.yaml").unlink()
    shutil.rmtree(out / names[1])
    capsys.readouterr()
    assert _collect(out) == 0
    assert "collected 2 episodes (1 already there)" in capsys.readouterr().out
    assert os.stat(out / names[0] / f"{names[0]}.mcap").st_ino == kept
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "collect.json"])

    # Other settings into the same directory are refused, not mixed in.
    assert _collect(out, "--image-size", "128") == 2
    assert "other settings" in capsys.readouterr().err
    # A 128-pixel collection says how to build a store that keeps its frames (the store's default is 64)
    assert _collect(tmp_path / "big", "--image-size", "128") == 0
    assert "--image-size 128" in capsys.readouterr().out

    summary = build_dataset([out], tmp_path / "store", progress=False)
    assert summary["skipped"] == [] and summary["num_episodes"] == 3
    store = Store.open(tmp_path / "store")
    from sim_worlds.panda_world import PandaWorld

    with PandaWorld(image_size=64, seed=7) as world:
        for index in (0, 2):  # episode 2 was written by the re-run
            episode = collectors.collect_episode(
                world, seed=episode_seed(7, index), task="play", max_steps=STEPS
            )
            start, end = store.episode_bounds()[index]
            assert end - start == len(episode.actions) + 1
            np.testing.assert_allclose(store.actions[start : end - 1], episode.actions, atol=1e-5)
            np.testing.assert_array_equal(store.images[start], episode.observations[0].image)


def test_collect_heldout_task_labels_reach_the_store(tmp_path):
    out = tmp_path / "heldout"
    assert (
        main(
            [
                "collect",
                "--episodes",
                "2",
                "--seed",
                "1",
                "--steps",
                "60",
                "--task",
                "grasp-heldout",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    build_dataset([out], tmp_path / "store", progress=False)
    store = Store.open(tmp_path / "store")
    labels = store.episode_success()
    assert not np.isnan(labels).any()
    assert {e["task"] for e in store.manifest["episodes"]} == {"grasp-heldout"}
    assert main(["collect", "--episodes", "1", "--task", "dance", "--out", str(tmp_path / "x")]) == 2


def test_collect_varied_play_records_each_episodes_objects(tmp_path):
    import json

    from robot_app.bags import CUSTOM_OBJECTS, BagReader

    out = tmp_path / "varied"
    assert _collect(out, "--task", "play-varied") == 0
    recorded = [json.loads(BagReader(out / episode_name(i)).custom_data[CUSTOM_OBJECTS]) for i in range(3)]
    assert len({json.dumps(r, sort_keys=True) for r in recorded}) == 3  # each episode its own scene
    from sim_worlds.panda_world import PandaWorld

    with PandaWorld(image_size=64, seed=7) as world:
        episode = collectors.collect_episode(world, seed=episode_seed(7, 1), task="play-varied", max_steps=STEPS)
    assert recorded[1] == episode.objects
    build_dataset([out], tmp_path / "store", progress=False)
    store = Store.open(tmp_path / "store")
    start, end = store.episode_bounds()[1]  # a worker's second or first episode, a fresh world's first: alike
    np.testing.assert_allclose(store.actions[start : end - 1], episode.actions, atol=1e-5)
    np.testing.assert_array_equal(store.images[end - 1], episode.observations[-1].image)
    assert {e["task"] for e in store.manifest["episodes"]} == {"play-varied"}
