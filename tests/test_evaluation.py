"""The goal-suite evaluation: Wilson intervals, results shape, report files, the eval command."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch

from robot_app.cli import main as robot_app
from robot_app.evaluation import (
    episode_seed,
    evaluate_suite,
    family_summary,
    markdown_table,
    plot_success_vs_step,
    save_strips,
    save_videos,
    wilson_interval,
    write_json,
)
from robot_app.policy import ModelCard, Policy
from robot_app.video import HOLD_LAST_S, VIDEO_SCALE, rollout_frames
from training.export import export_onnx
from training.networks import QNetwork

torch.set_num_threads(1)
SUITE = ["reach", "push", "grasp", "rearrange", "chain"]


@pytest.mark.parametrize("k, n, lo, hi", [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (8, 10, 0.4902, 0.9433), (97, 100, 0.9154, 0.9897),
])
def test_wilson_interval_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_edges_and_bad_input():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


def test_family_summary_and_markdown():
    s = family_summary([True, False, True, True], [10, 30, 12, 20])
    assert s["success_rate"] == 0.75 and s["n"] == 4 and s["successes"] == 3 and s["mean_steps"] == 18.0
    assert s["ci95"] == pytest.approx(list(wilson_interval(3, 4)), abs=1e-4)
    table = markdown_table({"families": {"reach": s, "push": family_summary([False], [60])}})
    lines = table.strip().splitlines()
    assert lines[0].startswith("| family | success | 95% CI | n | mean steps |") and len(lines) == 4
    assert lines[2] == "| reach | 0.75 | [0.30, 0.95] | 4 | 18.0 | - | - |"


def test_family_summary_says_how_close_the_failures_came():
    # three episodes from 10 cm: reached (1 cm left), untouched (10 cm), pushed away (15 cm)
    s = family_summary([True, False, False], [5, 60, 60], [(0.10, 0.01), (0.10, 0.10), (0.10, 0.15)])
    assert s["mean_start_distance_m"] == pytest.approx(0.10) and s["mean_final_distance_m"] == pytest.approx(0.0867, abs=1e-4)
    assert s["distance_closed"] == pytest.approx((0.9 + 0.0 - 0.5) / 3, abs=1e-4)
    row = markdown_table({"families": {"push": s}}).strip().splitlines()[2]
    assert row == "| push | 0.33 | [0.06, 0.79] | 3 | 41.7 | 10.0 -> 8.7 | 13% |"


def test_episode_seeds_differ_by_family_and_index():
    seeds = {episode_seed(0, f, i) for f in SUITE for i in range(3)}
    assert len(seeds) == 15 and episode_seed(0, "reach", 1) == episode_seed(0, "reach", 1)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(2)
    out = tmp_path_factory.mktemp("eval_model")
    path, _ = export_onnx(QNetwork().eval(), out / "rand.onnx", 64, {"algo": "am", "training_steps": 7, "data_manifest_hash": "x"})
    return path


def test_evaluate_suite_shape_and_determinism(onnx_model, tmp_path):
    policy = Policy.load(onnx_model)
    a = evaluate_suite(policy, ["reach"], 2, seed=4, progress=False, record_strips=True, videos=2)
    b = evaluate_suite(policy, ["reach"], 2, seed=4, progress=False)  # generator not reset: reseeded per episode
    assert a["families"] == b["families"]
    r = a["families"]["reach"]
    assert set(r) >= {"success_rate", "ci95", "n", "mean_steps"} and r["n"] == 2
    assert 0 <= r["ci95"][0] <= r["success_rate"] <= r["ci95"][1] <= 1 and 0 < r["mean_steps"] <= 30
    assert a["seed"] == 4 and a["episodes"] == 2 and a["policy"].endswith("rand.onnx")
    strip = a["strips"]["reach"]
    assert strip["start"].shape == (64, 64, 3) and strip["goal"].shape == (64, 64, 3) and strip["frames"]
    path = write_json(a, tmp_path / "r.json")
    assert "strips" not in json.loads(path.read_text())
    (png,) = save_strips(a, tmp_path)
    assert png.name == "strip_reach.png" and png.stat().st_size > 1000
    videos = save_videos(a, tmp_path)
    first, second = a["videos"]["reach"]
    verdicts = ["success" if e["success"] else "fail" for e in (first, second)]
    assert [v.name for v in videos] == [f"rollout_reach_000_{verdicts[0]}.webm", f"rollout_reach_001_{verdicts[1]}.webm"]
    frames = first["frames"]
    assert len(frames) == strip["steps"] + 1 and np.array_equal(frames[-1], strip["final"])
    assert np.array_equal(first["goal"], strip["goal"]) and first["steps"] == strip["steps"]
    read = cv2.VideoCapture(str(videos[0]))
    shown = []
    while True:
        ok, frame = read.read()
        if not ok:
            break
        shown.append(frame)
    assert len(shown) == len(frames) + round(HOLD_LAST_S * 10)  # every step, then the outcome held a second
    tile = cv2.resize(frames[0], None, fx=VIDEO_SCALE, fy=VIDEO_SCALE, interpolation=cv2.INTER_NEAREST)
    seen = cv2.cvtColor(shown[0], cv2.COLOR_BGR2RGB)[: tile.shape[0], : tile.shape[1]].astype(int)
    assert np.abs(seen - tile).mean() < 12  # the start frame, through a lossy codec
    curve = plot_success_vs_step([(100, a), (50, b)], tmp_path / "curve.png")
    assert curve.stat().st_size > 1000


def test_evaluate_suite_refuses_unknown_family():
    with pytest.raises(ValueError, match="unknown goal family.*'reech'"):
        evaluate_suite(lambda i, g, s: np.zeros(5), ["reech"], 1, 0, progress=False)


def test_eval_command_on_an_onnx_model(onnx_model, tmp_path, capsys):
    out = tmp_path / "report"
    card_path = onnx_model.with_suffix(".json")
    noted = {**json.loads(card_path.read_text()), "notes": {"by": "a person", "why": "kept through --write-card"}}
    card_path.write_text(json.dumps(noted))
    rc = robot_app(["eval", "--policy", str(onnx_model), "--suite", ",".join(SUITE), "--episodes", "1", "--seed", "3",
                    "--json", str(tmp_path / "eval.json"), "--out", str(out), "--write-card", "--no-progress"])
    assert rc == 0
    results = json.loads((tmp_path / "eval.json").read_text())
    assert list(results["families"]) == SUITE
    assert all(r["n"] == 1 for r in results["families"].values())
    assert results["seed"] == 3 and results["episodes"] == 1 and results["training_step"] == 7
    assert "| reach |" in (out / "eval.md").read_text() and "| chain |" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("strip_*.png")) == sorted(f"strip_{f}.png" for f in SUITE)
    assert sorted(p.name.rsplit("_", 1)[0] for p in out.glob("rollout_*.webm")) == sorted(f"rollout_{f}_000" for f in SUITE)
    page = (out / "report.html").read_text()  # one page: the table, and each family's strip and videos
    assert page.count("<tr><td>") == len(SUITE) and all(f'src="strip_{f}.png"' in page for f in SUITE)
    assert sorted(re.findall(r'<video src="([^"]+)"', page)) == sorted(p.name for p in out.glob("rollout_*.webm"))
    card = ModelCard.read(onnx_model.with_suffix(".json"))
    assert card.evaluation["families"] == results["families"]
    assert json.loads(card_path.read_text())["notes"] == noted["notes"]  # a key the runtime does not read survives
    Policy.load(onnx_model)  # the card still matches its graph


def test_eval_command_rejects_bad_arguments(onnx_model, tmp_path, capsys):
    assert robot_app(["eval", "--policy", str(onnx_model), "--episodes", "0"]) == 2
    assert robot_app(["eval", "--policy", str(onnx_model), "--videos", "-1"]) == 2
    assert "--videos must be 0 or more" in capsys.readouterr().err
    assert robot_app(["eval", "--policy", str(onnx_model), "--all-checkpoints"]) == 2
    assert "--all-checkpoints needs a run directory" in capsys.readouterr().err
    assert robot_app(["eval", "--policy", str(onnx_model), "--suite", "reach,fly"]) == 2
    assert "unknown family ['fly']" in capsys.readouterr().err
    assert robot_app(["eval", "--policy", str(tmp_path / "absent.onnx")]) == 2
    assert "no such model" in capsys.readouterr().err


def test_random_policy_is_the_seeded_chance_level(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert robot_app(["eval", "--policy", "random", "--suite", "reach,push", "--episodes", "2", "--seed", "1",
                          "--json", str(tmp_path / f"{name}.json"), "--no-progress"]) == 0
        runs.append(json.loads((tmp_path / f"{name}.json").read_text()))
    assert runs[0]["families"] == runs[1]["families"] and runs[0]["policy"] == "random"
    assert [r["n"] for r in runs[0]["families"].values()] == [2, 2]
    assert robot_app(["eval", "--policy", "random", "--write-card"]) == 2
    assert "no card to write" in capsys.readouterr().err


def test_seed_interval_widens_with_the_spread_between_trained_models():
    from robot_app.evaluation import seed_interval

    mean, lo, hi = seed_interval([0.09, 0.08, 0.22])  # three fresh policies of session 15, 100 tasks each
    assert mean == pytest.approx(0.13) and lo < 0.0 < 0.13 < hi  # t(2) = 4.303: wide, as three draws are
    sd = ((0.04**2 + 0.05**2 + 0.09**2) / 2) ** 0.5
    assert hi - mean == pytest.approx(4.303 * sd / 3**0.5)
    assert seed_interval([0.2, 0.2, 0.2]) == (pytest.approx(0.2), pytest.approx(0.2), pytest.approx(0.2))
    _, lo9, hi9 = seed_interval([0.09, 0.08, 0.22] * 3)  # more models with the same spread: narrower
    assert hi9 - lo9 < hi - lo
    with pytest.raises(ValueError, match="at least two"):
        seed_interval([0.5])


def test_a_rollout_video_refuses_frames_unlike_its_goal():
    goal = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="at least one frame"):
        rollout_frames([], goal)
    with pytest.raises(ValueError, match=r"goal's shape, got \[\(64, 64, 3\), \(128, 128, 3\)\]"):
        rollout_frames([goal, np.zeros((128, 128, 3), np.uint8)], goal)
