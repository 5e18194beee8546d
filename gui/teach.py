"""Teach a task from the attempts recorded in the window, without a terminal.

Record attempts with "Stop: success" / "Stop: failure", then Teach: the panel runs `robot-app
dataset build` on the recorded bags and `robot-app finetune --mode goal` on the store (the recipe
that grasps most, training/goal_task.py) as child processes, so the window stays torch-free and
responsive, shows how far the run is, and Cancel stops it. The task model lands in the models
folder, where the task gallery offers it.

The plan (paths and command lines) is Qt-free and tested on its own; the panel only runs it.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PyQt6.QtCore import QProcess, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
)

from gui.gallery import untasked_models

CLONED_ALGOS = ("gcbc", "gcivl")  # what finetune --mode goal continues: cloned policies
# The start that made the best task models (BENCHMARKS.md, sessions 30-31): from 25 / 50 attempts
# its continuation grasped 66 / 79 of 100 held-out tasks at finetune's default lengths, where
# play_pretrained's grasped 38 / 72 at the same lengths and 46 / 72 at its best; with the
# localiser pasting (session 31) 72.7 / 83.0% of 300.
DEFAULT_START = "varied_pretrained"
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # a file name in models/ and a card's task


def start_models(models_dir: str | Path) -> list[tuple[str, Path]]:
    """(name, .onnx) of the exported cloned policies without a task in `models_dir`: what a task
    can start from (the shipped varied_pretrained and play_pretrained, gcbc_grasp, your own)."""
    return [(card_path.stem, model) for card_path, card, model in untasked_models(models_dir)
            if str(card.get("algo", "")).split("-")[0] in CLONED_ALGOS]


@dataclass
class TeachPlan:
    bags: Path  # the recorded attempts (one rosbag2 directory per episode), each labelled
    start: Path  # the cloned policy to continue (an .onnx with its card)
    play: Path  # a store whose frames hold a lifted object: the goal pictures
    task: str  # the task's name: models/<task>.onnx and the card's "task"
    models_dir: Path
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data/tasks")
    updates: int = 0  # 0: finetune's own choice by the number of attempts
    quick: bool = False  # finetune --debug: seconds, to check the set-up before a long run
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%d_%H%M%S"))

    @property
    def store(self) -> Path:
        return self.data_dir / f"{self.task}_{self.stamp}"

    @property
    def run(self) -> Path:
        return self.runs_dir / f"teach_{self.task}_{self.stamp}"

    @property
    def model(self) -> Path:
        """models/<task>.onnx; a quick check's useless model stays in its run, leaving the name free."""
        return self.run / "task_model.onnx" if self.quick else self.models_dir / f"{self.task}.onnx"

    def problem(self) -> str | None:
        """What stops the plan before anything runs, in words; None when it can run."""
        if not TASK_NAME.match(self.task):
            return f"task name {self.task!r}: letters, digits, '-' and '_' only (it names models/{self.task}.onnx)"
        if not self.quick and self.model.exists():
            return f"{self.model} exists already: choose another task name (nothing is overwritten)"
        if not self.bags.is_dir() or not any(self.bags.iterdir()):
            return f"no recorded attempts in {self.bags}: record some (Record, then Stop: success / failure)"
        if not (self.play / "manifest.json").is_file():
            return (f"{self.play} is no training store: give the play store the goal pictures come from "
                    "(robot-app dataset build of play episodes)")
        if not self.start.is_file():
            return f"{self.start}: no such model to start from"
        return None

    def commands(self) -> list[list[str]]:
        """The two command lines, each as the terminal would run them (`robot-app` = this Python's CLI)."""
        cli = [sys.executable, "-m", "robot_app.cli"]
        finetune = [*cli, "finetune", "--mode", "goal", "--from", str(self.start), "--data", str(self.store),
                    "--play", str(self.play), "--out", str(self.run), "--export", str(self.model), "--task", self.task,
                    "--no-progress"]
        finetune += ["--steps", str(self.updates)] if self.updates else []
        finetune += ["--debug"] if self.quick else []
        return [[*cli, "dataset", "build", str(self.bags), "-o", str(self.store)], finetune]


def run_progress(run: Path) -> str:
    """How far a continuation run is, from its own files: "step 1200 / 3000", or "" before it starts."""
    import yaml

    try:
        total = yaml.safe_load((run / "config.yaml").read_text()).get("steps")
        rows = (run / "metrics.csv").read_text().splitlines()
    except (OSError, yaml.YAMLError, AttributeError):
        return ""
    step = rows[-1].split(",")[0] if len(rows) > 1 else "0"
    return f"step {step} / {total}"


class TeachPanel(QGroupBox):
    """Build the recorded attempts into a store and teach a task model from them (two child processes)."""

    taught = pyqtSignal(str)  # the task model written
    message = pyqtSignal(str, str)  # level, text: for the window's message bar

    def __init__(self, models_dir: Path | None, bags: str = "data/recorded", play: str = "data/store", parent=None):
        super().__init__("from the attempts recorded above", parent)
        self.models_dir = models_dir
        self.plan: TeachPlan | None = None
        self.process: QProcess | None = None
        self._pending: list[list[str]] = []
        self._last_lines: list[str] = []
        self.bags = QLineEdit(bags)
        self.play = QLineEdit(play)
        self.start_from = QComboBox()
        self.task = QLineEdit("my-task")
        self.updates = QSpinBox(minimum=0, maximum=1_000_000, singleStep=500, specialValueText="auto")
        self.updates.setToolTip("updates on the attempts; auto: 500 from fewer than 36 attempts, else 3000 (measured best)")
        self.quick = QCheckBox("quick check (seconds, a useless model: tests the set-up)")
        self.teach_button = QPushButton("Teach", clicked=self.teach)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.state = QLabel("record labelled attempts, then Teach")
        self.state.setWordWrap(True)
        self._progress = QTimer(self, interval=1000, timeout=self._show_progress)
        form = QFormLayout(self)
        form.addRow("attempts (bags)", self._with_browse(self.bags))
        form.addRow("start from", self.start_from)
        form.addRow("goal pictures (play store)", self._with_browse(self.play))
        form.addRow("task name", self.task)
        form.addRow("updates", self.updates)
        form.addRow(self.quick)
        buttons = QHBoxLayout()
        buttons.addWidget(self.teach_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.state)
        self.refresh_start_models()

    def _with_browse(self, edit: QLineEdit) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(edit)
        browse = QPushButton("...", clicked=lambda: self._browse(edit))
        browse.setMaximumWidth(30)
        row.addWidget(browse)
        return row

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    def refresh_start_models(self) -> None:
        picked = self.start_from.currentData()
        self.start_from.clear()
        for name, path in start_models(self.models_dir) if self.models_dir else []:
            self.start_from.addItem(name, str(path))
        index = self.start_from.findData(picked) if picked else self.start_from.findText(DEFAULT_START)
        self.start_from.setCurrentIndex(max(0, index))

    def make_plan(self) -> TeachPlan:
        return TeachPlan(bags=Path(self.bags.text()), start=Path(self.start_from.currentData() or ""),
                         play=Path(self.play.text()), task=self.task.text().strip(), models_dir=Path(self.models_dir or "models"),
                         updates=self.updates.value(), quick=self.quick.isChecked())

    def teach(self) -> None:
        if self.process is not None:
            return
        plan = self.make_plan()
        problem = plan.problem() if self.start_from.count() else f"no model to start from in {self.models_dir}"
        if problem:
            self._say("error", f"teach: {problem}")
            return
        self.plan, self._pending = plan, plan.commands()
        self.teach_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._say("info", f"teach {plan.task}: building {plan.bags} into {plan.store}, then continuing {plan.start.name} "
                          f"in {plan.run}")
        self._next()

    def _next(self) -> None:
        argv = self._pending.pop(0)
        self._last_lines = []
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._failed_to_start)
        self.state.setText("building the attempts into a store" if argv[3] == "dataset" else "continuing the policy")
        self._progress.start()
        self.process.start(argv[0], argv[1:])

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        self._last_lines = (self._last_lines + [line for line in text.splitlines() if line.strip()])[-6:]

    def _show_progress(self) -> None:
        if self.plan is not None and self._pending == []:
            done = run_progress(self.plan.run)
            self.state.setText(f"continuing the policy: {done}" if done else "continuing the policy")

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end("error", f"teach: could not start {sys.executable} ({self.process.errorString()})")

    def _finished(self, code: int, status) -> None:
        if self.process is None:  # cancelled
            return
        if status != QProcess.ExitStatus.NormalExit or code != 0:
            said = " | ".join(self._last_lines[-3:]) or f"exit code {code}"
            self._end("error", f"teach {self.plan.task} failed: {said}")
        elif self._pending:
            self._next()
        else:
            model = str(self.plan.model)
            where = ("a quick check's model, in its run: the set-up works" if self.plan.quick else
                     f"the task gallery offers it; judge it with robot-app eval --policy {model}")
            self._end("info", f"taught {self.plan.task}: {model} ({where})")
            self.taught.emit(model)

    def cancel(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.kill()
        process.waitForFinished(3000)
        self._end("warning", f"teach {self.plan.task}: cancelled; {self.plan.run} holds what was done")

    def _end(self, level: str, text: str) -> None:
        self.process, self._pending = None, []
        self._progress.stop()
        self.teach_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._say(level, text)

    def _say(self, level: str, text: str) -> None:
        self.state.setText(text)
        self.message.emit(level, text)
