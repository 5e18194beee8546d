"""The GUI's "Teach a task" panel (gui/teach.py): the plan it makes from the window's fields, and a
real run of its two child processes (`dataset build`, `finetune --mode goal --debug`) on real
recorded-style bags, from the shipped varied pretraining."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("PyQt6")

from gui.teach import TeachPanel, TeachPlan, run_progress, start_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _card(models: Path, name: str, card: dict) -> None:
    (models / f"{name}.json").write_text(json.dumps(card))
    (models / f"{name}.onnx").write_bytes(b"stand-in")


def test_a_task_starts_from_cloned_policies_only(tmp_path):
    _card(tmp_path, "pre", {"algo": "gcbc-mean3"})
    _card(tmp_path, "grasp", {"algo": "gcbc"})
    _card(tmp_path, "am", {"algo": "am"})  # a Q-function: goal mode continues cloned policies
    _card(tmp_path, "task", {"algo": "gcbc", "task": "grasp-heldout"})  # a task model already
    (tmp_path / "lonely.json").write_text(json.dumps({"algo": "gcbc"}))  # no graph beside it
    assert [name for name, _ in start_models(tmp_path)] == ["grasp", "pre"]
    assert [name for name, _ in start_models(ROOT / "models")] == ["gcbc_grasp", "grasp_heldout_goal", "lift_grasp", "play_pretrained",
                                                                   "varied_pretrained"]


def test_the_plan_is_the_two_commands_a_user_would_type_and_refuses_what_cannot_run(tmp_path):
    bags, play, models = tmp_path / "recorded", tmp_path / "play", tmp_path / "models"
    for folder in (bags / "episode_0", play, models):
        folder.mkdir(parents=True)
    (play / "manifest.json").write_text("{}")
    _card(models, "pre", {"algo": "gcbc"})
    plan = TeachPlan(bags=bags, start=models / "pre.onnx", play=play, task="mug", models_dir=models,
                     runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", stamp="s")
    assert plan.problem() is None
    build, finetune = plan.commands()
    assert build[:3] == [sys.executable, "-m", "robot_app.cli"]
    assert build[3:] == ["dataset", "build", str(bags), "-o", str(tmp_path / "data" / "mug_s")]
    assert finetune[3:] == ["finetune", "--mode", "goal", "--from", str(models / "pre.onnx"), "--data",
                            str(tmp_path / "data" / "mug_s"), "--play", str(play), "--out", str(tmp_path / "runs" / "teach_mug_s"),
                            "--export", str(models / "mug.onnx"), "--task", "mug", "--no-progress"]
    plan.updates, plan.quick = 700, True
    quick = plan.commands()[1]
    assert quick[-3:] == ["--steps", "700", "--debug"]  # a quick check's useless model stays in its run
    assert quick[quick.index("--export") + 1] == str(tmp_path / "runs" / "teach_mug_s" / "task_model.onnx")
    plan.updates, plan.quick = 0, False

    plan.task = "my mug!"
    assert "letters, digits" in plan.problem()
    plan.task = "pre"
    assert "exists already" in plan.problem()  # never overwrites a model
    plan.task, plan.play = "mug", tmp_path
    assert "no training store" in plan.problem()
    plan.play, plan.bags = play, tmp_path / "nothing"
    assert "no recorded attempts" in plan.problem()


def test_run_progress_reads_the_runs_own_files(tmp_path):
    assert run_progress(tmp_path) == ""
    (tmp_path / "config.yaml").write_text("steps: 3000\n")
    (tmp_path / "metrics.csv").write_text("step,loss\n100,0.5\n1200,0.3\n")
    assert run_progress(tmp_path) == "step 1200 / 3000"


def test_a_quick_teach_builds_the_attempts_and_writes_a_task_model_in_its_run(qtbot, tmp_path, monkeypatch):
    from gui import gallery
    from robot_app.cli import main
    from robot_app.policy import Policy

    monkeypatch.chdir(tmp_path)  # runs/ and data/tasks/ land here
    bags, models = tmp_path / "data" / "recorded", tmp_path / "models"
    assert main(["collect", "--task", "grasp-heldout", "--episodes", "6", "--seed", "100", "--out", str(bags),
                 "--no-progress"]) == 0
    assert main(["dataset", "build", str(bags), "-o", str(tmp_path / "data" / "store")]) == 0  # stands in for play
    models.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ROOT / "models" / f"varied_pretrained{suffix}", models)

    panel = TeachPanel(models)
    qtbot.addWidget(panel)
    said = []
    panel.message.connect(lambda level, text: said.append((level, text)))
    assert panel.start_from.currentText() == "varied_pretrained"
    panel.task.setText("blob")
    panel.updates.setValue(10)
    panel.quick.setChecked(True)
    with qtbot.waitSignal(panel.taught, timeout=120_000) as taught:
        panel.teach()
        assert not panel.teach_button.isEnabled() and panel.cancel_button.isEnabled()
    run = next(Path("runs").glob("teach_blob_*"))  # relative to the working folder, as the defaults are
    assert taught.args == [str(run / "task_model.onnx")]
    assert panel.teach_button.isEnabled() and said[-1][0] == "info" and "the set-up works" in said[-1][1]
    card = Policy.load(run / "task_model.onnx").card
    assert card.task == "blob" and card.training_steps == 10 and card.goal_proposer
    assert gallery.from_models(models).entries == []  # the quick check left models/ and the name alone
    assert json.loads((next((tmp_path / "data" / "tasks").glob("blob_*")) / "manifest.json").read_text())["episodes"]
    assert run_progress(run) == "step 10 / 10"


def test_a_failing_step_says_why_and_cancel_stops_a_run(qtbot, tmp_path):
    models, play = tmp_path / "models", tmp_path / "play"
    models.mkdir()
    play.mkdir()
    (play / "manifest.json").write_text("{}")
    _card(models, "pre", {"algo": "gcbc"})
    (tmp_path / "bags" / "not_a_bag").mkdir(parents=True)
    panel = TeachPanel(models, bags=str(tmp_path / "bags"), play=str(play))
    qtbot.addWidget(panel)
    said = []
    panel.message.connect(lambda level, text: said.append((level, text)))
    panel.task.setText("x")
    panel.teach()  # dataset build finds no readable bag: the panel reports its words
    qtbot.waitUntil(lambda: said[-1][0] == "error", timeout=60_000)
    assert "teach x failed" in said[-1][1] and "bag" in said[-1][1] and panel.teach_button.isEnabled()

    panel.teach()
    panel.cancel()
    assert said[-1][0] == "warning" and "cancelled" in said[-1][1] and panel.process is None
