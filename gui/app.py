"""The goal-image window: live camera, goal gallery, chosen goal, Start/Stop/Reset,
policy status with Q over time, and which parts of the ROS graph are alive.

The window never blocks: ROS spins in RosBridge's thread, gallery sources that take time
(a dataset, the sim's suites) load in a worker thread, and every failure ends up as a line
in the message bar instead of a dialog that waits or an exception that closes the window.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QFileSystemWatcher, QSettings, QSize, Qt, QTimer, pyqtSignal, qInstallMessageHandler
from PyQt6.QtGui import QIcon
from PyQt6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui import gallery
from gui.gallery import GalleryLoad, GoalEntry
from gui.images import IMAGE_SUFFIXES, GoalImageError, fit_to_camera
from gui.ros_bridge import RosBridge, TopicHealth
from gui.teach import TeachPanel
from gui.teleop import TeleopPanel
from gui.widgets import HealthPanel, ImageView, QPlot, to_pixmap

SETTINGS_GOAL_FOLDER = "goal_folder"
CAMERA_STALE_S = 1.0  # the live view says "stale" past this
THUMB = 72
# policy_node's states (ros_nodes/policy_node.py); others are shown in plain text colour.
STATE_COLOURS = {
    "running": "#0969da",
    "reached": "#1a7f37",
    "ready": "#1f2328",
    "idle": "#57606a",
    "stopped": "#9a6700",
    "error": "#cf222e",
}
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# The label is published this long before recorder/stop is called, so the recorder has it in
# the bag before the bag closes (a topic and a service are separate DDS channels).
LABEL_LEAD_MS = 300


class MainWindow(QMainWindow):
    gallery_loaded = pyqtSignal(object, str)  # GalleryLoad, what was loaded

    def __init__(self, bridge: RosBridge, settings: QSettings, models_dir: Path | None = None):
        super().__init__()
        self.bridge = bridge
        self.settings = settings
        self.models_dir = models_dir
        self.entries: list[GoalEntry] = []
        self.current_goal: GoalEntry | None = None
        self.camera_shape: tuple[int, int] | None = None  # (height, width) of the newest frame
        self.frame_time = 0.0
        self.frames_shown = 0
        self.last_step = 0
        self.policy_state = ""  # policy/status's last state
        self.last_health: dict[str, TopicHealth] = {}
        self.messages: list[tuple[str, str]] = []  # (level, text), newest last
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery")
        self._choose_when_loaded: set[str] = set()  # loads whose first entry becomes the goal
        self._quiet_when_empty: set[str] = set()  # loads nobody asked for: no "nothing found"
        self.recording_since: float | None = None  # monotonic time the recorder opened the episode's bag
        self.recording_path = ""
        self.recording_messages = 0  # what the recorder has written so far (recorder/status)
        self._label: bool | None = None  # the label this window gave the episode being finished
        self.episodes_written = {"success": 0, "failure": 0, "unlabelled": 0}  # since the window opened
        self.setWindowTitle("robot_app: goal-image GUI")
        self._build()
        bridge.frame_ready.connect(self.on_frame)
        bridge.status.connect(self.on_status)
        bridge.proposed_goal.connect(self.on_proposed_goal)
        bridge.recorder_status.connect(self.on_recorder_status)
        bridge.health.connect(self.on_health)
        bridge.service_result.connect(self.on_service_result)
        bridge.problem.connect(lambda text: self.report("error", text))
        self.gallery_loaded.connect(self.on_gallery_loaded)
        # A frame that arrived before frame_ready was connected signalled no one; take it
        # now, which also re-arms the signal for the frames after it.
        self.on_frame()
        self._stale_timer = QTimer(self, interval=250, timeout=self._tick)
        self._stale_timer.start()

    # --- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        self.live_view = ImageView(
            "Live camera", f"waiting for frames on {self.bridge.node.topic_names['camera']}"
        )
        self.goal_view = ImageView("Goal", "no goal chosen: pick one from the gallery below")
        self.start_button = QPushButton("Start", clicked=lambda: self.call("start"))
        self.stop_button = QPushButton("Stop", clicked=lambda: self.call("stop"))
        self.reset_button = QPushButton("Reset", clicked=lambda: self.call("reset"))
        self.status_label = QLabel("policy: no status yet")
        self.status_label.setWordWrap(True)
        self.q_plot = QPlot()
        self.health_panel = HealthPanel()

        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.reset_button):
            buttons.addWidget(button)
        self.model_choice = QComboBox()
        self.refresh_models()
        self.model_choice.setToolTip("the policy node loads the chosen model (refused while it runs: stop first)")
        self.model_choice.activated.connect(self.choose_model)
        # A model exported while the window is open (finetune --export, robot-app export) is
        # offered without a restart: the folder is watched, and the list rebuilt when it changes.
        self._models_watch = QFileSystemWatcher([str(self.models_dir)] if self.models_dir and self.models_dir.is_dir() else [],
                                                self)
        self._models_watch.directoryChanged.connect(self._models_changed)
        policy_box = QGroupBox("Policy")
        policy_layout = QVBoxLayout(policy_box)
        policy_layout.addWidget(self.model_choice)
        policy_layout.addLayout(buttons)
        policy_layout.addWidget(self.status_label)
        policy_layout.addWidget(self.q_plot)
        graph_box = QGroupBox("ROS graph")
        QVBoxLayout(graph_box).addWidget(self.health_panel)
        side = QVBoxLayout()
        side.addWidget(policy_box)
        side.addWidget(self._build_recording())
        self.hands_tabs = QTabWidget()  # driving and teaching share one place: the window fits a laptop screen
        self.hands_tabs.addTab(self._build_teleop(), "Drive (teleop)")
        self.hands_tabs.addTab(self._build_teach(), "Teach a task")
        side.addWidget(self.hands_tabs)
        side.addWidget(graph_box)
        side.addStretch(1)

        top = QHBoxLayout()
        top.addWidget(self.live_view, 3)
        top.addWidget(self.goal_view, 3)
        top.addLayout(side, 3)

        sources = QGridLayout()
        source_buttons = [
            ("Goal folder...", self.pick_folder),
            ("Image file...", self.pick_file),
            ("Dataset...", self.pick_dataset),
            ("Sim goal suites", self.load_suites),
            ("Tasks (models)", self.load_tasks),
            ("Use current view as goal", self.use_current_view),
        ]
        self.source_buttons = {}
        for column, (text, slot) in enumerate(source_buttons):
            button = QPushButton(text, clicked=slot)
            self.source_buttons[text] = button
            sources.addWidget(button, 0, column)
        self.switch_model = QCheckBox("choosing a task also switches the policy's model")
        self.switch_model.setChecked(True)
        sources.addWidget(self.switch_model, 1, 0, 1, len(source_buttons))

        self.gallery_list = QListWidget()
        self.gallery_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery_list.setIconSize(QSize(THUMB, THUMB))
        self.gallery_list.setGridSize(QSize(THUMB + 40, THUMB + 34))
        self.gallery_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery_list.setMovement(QListWidget.Movement.Static)
        self.gallery_list.setWordWrap(True)
        self.gallery_list.setMinimumHeight(THUMB + 50)
        self.gallery_list.itemClicked.connect(self._on_item)
        self.gallery_list.itemActivated.connect(self._on_item)
        gallery_box = QGroupBox("Goal gallery")
        gallery_layout = QVBoxLayout(gallery_box)
        gallery_layout.addLayout(sources)
        gallery_layout.addWidget(self.gallery_list)

        self.message_bar = QLabel("ready")
        self.message_bar.setWordWrap(True)
        self.message_log = QPlainTextEdit(readOnly=True, maximumBlockCount=500)
        self.message_log.setMaximumHeight(70)

        root = QVBoxLayout()
        root.addLayout(top, 5)
        root.addWidget(gallery_box, 3)
        root.addWidget(self.message_bar)
        root.addWidget(self.message_log)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)
        self.resize(1100, 760)

    # --- messages ---------------------------------------------------------------------
    def report(self, level: str, text: str) -> None:
        """Show a message in the bar and keep it in the log; level: info, warning, error."""
        self.messages.append((level, text))
        colour = {"info": "#1f2328", "warning": "#9a6700", "error": "#cf222e"}[level]
        self.message_bar.setText(text)
        self.message_bar.setStyleSheet(
            f"color: {colour}; font-weight: {'bold' if level != 'info' else 'normal'}"
        )
        self.message_log.appendPlainText(f"{time.strftime('%H:%M:%S')} {level}: {text}")
        logger = self.bridge.node.get_logger()  # the console and /rosout get them too
        # rclpy fixes a severity per call site, hence one call per level.
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    # --- camera -----------------------------------------------------------------------
    def on_frame(self) -> None:
        image, arrived = self.bridge.latest_frame()
        if image is None:
            return
        self.frame_time = arrived
        self.frames_shown += 1
        shape = image.shape[:2]
        self.live_view.set_image(image, f"{shape[1]}x{shape[0]}")
        if shape != self.camera_shape:
            self.camera_shape = shape
            if self.current_goal is not None and self.goal_view.image is not None:
                if self.goal_view.image.shape[:2] != shape:
                    self.report(
                        "warning",
                        f"camera is {shape[1]}x{shape[0]} now: publishing the goal again at that size",
                    )
                    self.choose(self.current_goal)

    def _build_recording(self) -> QGroupBox:
        """Record an episode (recorder_node's bag) and label it as it ends: what `dataset build`
        makes a training store from, and, labelled, what `finetune` and `task-goals` learn a task from."""
        self.record_button = QPushButton("Record", clicked=lambda: self.call("record"))
        self.record_button.setToolTip("recorder/start: a new episode bag of the camera, joints and commands")
        self.finish_buttons = {
            "success": QPushButton("Stop: success", clicked=lambda: self.finish_episode(True)),
            "failure": QPushButton("Stop: failure", clicked=lambda: self.finish_episode(False)),
            "unlabelled": QPushButton("Stop", clicked=lambda: self.finish_episode(None)),
        }
        self.finish_buttons["success"].setToolTip("label the episode a success (task/success), then finish its bag")
        self.record_label = QLabel("not recording")
        self.record_label.setWordWrap(True)
        row = QHBoxLayout()
        for button in (self.record_button, *self.finish_buttons.values()):
            row.addWidget(button)
        box = QGroupBox("Episodes")
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.record_label)
        self._show_recording()
        return box

    def _build_teleop(self) -> TeleopPanel:
        """Drive the arm by hand on the policy's command topics, e.g. to record episodes of one's own."""
        self.teleop = TeleopPanel()
        self.teleop.twist.connect(self.bridge.send_twist)
        self.teleop.grip.connect(self.bridge.send_grip)
        self.teleop.engaged.connect(self.take_over)
        self.bridge.grip_command.connect(self.teleop.saw_grip_command)
        return self.teleop

    def _build_teach(self) -> TeachPanel:
        self.teach = TeachPanel(self.models_dir)
        self.teach.message.connect(self.report)
        self.teach.taught.connect(lambda _: self.load_tasks())  # the new task model joins the gallery
        return self.teach

    def take_over(self) -> None:
        """A person starts driving: a running policy is stopped first, so the two never mix commands."""
        if self.policy_state == "running":
            self.report("warning", "teleop takes over: stopping the policy")
            self.call("stop")

    def finish_episode(self, success: bool | None) -> None:
        """Label the episode (unless None), then finish its bag once the label has had time to arrive."""
        for button in self.finish_buttons.values():  # one label per episode: no second click in the lead time
            button.setEnabled(False)
        self._label = success
        if success is not None:
            self.bridge.label_episode(success)
            self.report("info", f"episode labelled a {'success' if success else 'failure'}")
            QTimer.singleShot(LABEL_LEAD_MS, lambda: self.call("finish"))
        else:
            self.call("finish")

    def _show_recording(self) -> None:
        recording = self.recording_since is not None
        self.record_button.setEnabled(not recording)
        for button in self.finish_buttons.values():
            button.setEnabled(recording)
        if recording:
            count = f", {self.recording_messages} messages" if self.recording_messages else ""
            self.record_label.setText(f"recording {time.monotonic() - self.recording_since:.0f} s{count}: {self.recording_path}")

    def _tick(self) -> None:
        self._check_camera()
        if self.recording_since is not None:
            self._show_recording()

    def _check_camera(self) -> None:
        if self.frames_shown == 0:
            camera = self.last_health.get("camera")
            if camera is not None and camera.publishers == 0:
                self.live_view.set_message(f"No camera: no publisher on {camera.name}")
            return
        age = time.monotonic() - self.frame_time
        if age > CAMERA_STALE_S and self.live_view.image is not None:
            self.live_view.caption = f"STALE: last frame {age:.1f} s ago"
            self.live_view.update()

    # --- policy -----------------------------------------------------------------------
    def call(self, role: str) -> None:
        self.report("info", f"{role}: calling ...")
        if role == "start":
            self.q_plot.clear()
        self.bridge.call_service(role)

    def on_recorder_status(self, status: dict) -> None:
        """The recorder's own word (recorder/status), whoever started or stopped it."""
        if status["recording"]:
            self.recording_messages = int(status.get("messages") or 0)
        if status["recording"] and self.recording_since is None:
            self.recording_since, self.recording_path = time.monotonic(), str(status.get("path", ""))
        elif not status["recording"] and self.recording_since is not None:
            self.recording_since = None
            written = status.get("last_written")
            if written:  # one more episode on disk: count it under the label it was given here
                self.episodes_written[{True: "success", False: "failure"}.get(self._label, "unlabelled")] += 1
            self._label = None
            tally = ", ".join(f"{n} {kind}" for kind, n in self.episodes_written.items() if n)
            self.record_label.setText((f"wrote {written}" if written else "not recording")
                                      + (f"\nthis session: {tally}" if tally else ""))
        self._show_recording()

    def on_service_result(self, what: str, ok: bool, message: str) -> None:
        if what == "record" and ok:
            self.on_recorder_status({"recording": True, "path": message})
        elif what == "finish" and (ok or message == "not recording"):  # either way no bag is open now
            self.on_recorder_status({"recording": False, "last_written": message if ok else ""})
        if ok:
            self.report("info", f"{what}: ok" + (f" ({message})" if message else ""))
        else:
            self.report("error", f"{what}: {message or 'refused'}")

    def on_status(self, status: dict) -> None:
        state = str(status.get("state", "?"))
        self.policy_state = state
        colour = STATE_COLOURS.get(state, "#1f2328")
        parts = [f"<b style='color:{colour}'>{state}</b>"]
        step = status.get("step")
        if step is not None:
            parts.append(f"step {step}")
            if isinstance(step, int) and step < self.last_step:
                self.q_plot.clear()  # a new run began (perhaps started by someone else)
            self.last_step = step if isinstance(step, int) else self.last_step
        q = status.get("q_value")
        if isinstance(q, int | float) and np.isfinite(q):
            parts.append(f"Q {q:.3f}")
            self.q_plot.add(q)
        text = "policy: " + " · ".join(parts)
        if status.get("reason"):
            text += f"<br><i>{status['reason']}</i>"
        self.status_label.setText(text)

    def on_proposed_goal(self, image: np.ndarray) -> None:
        """A task model chose its own goal for this run: show it where a chosen goal would be,
        so the user sees what the arm is after (policy/status says where the object was found)."""
        topic = self.bridge.node.topic_names["proposed_goal"]
        self.goal_view.set_image(image, "proposed by the task model")
        self.report("info", f"the task model proposed its goal picture ({topic})")

    def on_health(self, health: dict) -> None:
        self.last_health = health
        self.health_panel.set_health(health)

    # --- gallery ----------------------------------------------------------------------
    def load_async(self, what: str, job, *args) -> None:
        """Run a gallery gatherer in the worker thread; the result comes back as a signal."""
        if what not in self._quiet_when_empty:
            self.report("info", f"loading {what} ...")

        def work():
            try:
                return job(*args)
            except Exception as exc:  # a gatherer bug must not leave the window waiting
                return GalleryLoad(problems=[f"{what}: {type(exc).__name__}: {exc}"])

        future = self._loader.submit(work)
        future.add_done_callback(lambda f: self.gallery_loaded.emit(f.result(), what))

    def on_gallery_loaded(self, load: GalleryLoad, what: str) -> None:
        for entry in load.entries:
            self.add_entry(entry)
        for problem in load.problems:
            self.report("error" if problem.startswith("refused") else "warning", problem)
        if load.entries:
            self.report("info", f"{what}: {len(load.entries)} goal(s) added")
        elif not load.problems and what not in self._quiet_when_empty:
            self.report("warning", f"{what}: nothing found")
        if what in self._choose_when_loaded and load.entries:
            self.gallery_list.setCurrentRow(self.gallery_list.count() - len(load.entries))
            self.choose(load.entries[0])
        self._choose_when_loaded.discard(what)
        self._quiet_when_empty.discard(what)

    def add_entry(self, entry: GoalEntry) -> QListWidgetItem:
        self.entries.append(entry)
        item = QListWidgetItem(QIcon(to_pixmap(entry.image, THUMB)), entry.name)
        item.setData(Qt.ItemDataRole.UserRole, len(self.entries) - 1)
        item.setToolTip(entry.detail or entry.name)
        self.gallery_list.addItem(item)
        return item

    def _on_item(self, item: QListWidgetItem) -> None:
        self.choose(self.entries[item.data(Qt.ItemDataRole.UserRole)])

    def load_folder(self, folder: str) -> None:
        self.settings.setValue(SETTINGS_GOAL_FOLDER, str(folder))
        self.settings.sync()
        self.load_async(f"goal folder {folder}", gallery.from_folder, folder)

    def load_file(self, path: str, choose: bool = False) -> None:
        what = f"image {Path(path).name}"
        if choose:
            self._choose_when_loaded.add(what)
        self.load_async(what, gallery.from_file, path)

    def load_dataset(self, path: str) -> None:
        self.load_async(f"dataset {path}", gallery.from_dataset, path)

    def load_suites(self) -> None:
        self.load_async("sim goal suites", gallery.from_suites, self.goal_size()[0])

    def load_tasks(self, quiet: bool = False) -> None:
        if self.models_dir is None:
            self.report("warning", "no models folder given (--models)")
            return
        what = f"tasks in {self.models_dir}"
        if quiet:
            self._quiet_when_empty.add(what)
        self.load_async(what, gallery.from_models, self.models_dir)

    def pick_folder(self) -> None:
        start = str(self.settings.value(SETTINGS_GOAL_FOLDER, "") or Path.cwd())
        folder = QFileDialog.getExistingDirectory(self, "Folder of goal images", start)
        if folder:
            self.load_folder(folder)

    def pick_file(self) -> None:
        start = str(self.settings.value(SETTINGS_GOAL_FOLDER, "") or Path.cwd())
        pattern = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
        path, _ = QFileDialog.getOpenFileName(self, "Goal image", start, pattern)
        if path:
            self.load_file(path)

    def pick_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset store (built by `robot-app dataset build`)")
        if folder:
            self.load_dataset(folder)

    def use_current_view(self) -> None:
        image, _ = self.bridge.latest_frame()
        if image is None:
            self.report("error", "no camera frame yet: cannot use the current view as goal")
            return
        entry = GoalEntry(name=f"view {time.strftime('%H:%M:%S')}", image=image.copy(), source="camera")
        entry.detail = f"camera frame from {self.bridge.node.topic_names['camera']}"
        item = self.add_entry(entry)
        self.gallery_list.setCurrentItem(item)
        self.choose(entry)

    # --- choosing a goal --------------------------------------------------------------
    def goal_size(self) -> tuple[int, int]:
        """(width, height) a goal must have: the camera's, or the configured size before frames arrive."""
        if self.camera_shape is not None:
            return self.camera_shape[1], self.camera_shape[0]
        return self.bridge.image_size, self.bridge.image_size

    def choose(self, entry: GoalEntry) -> bool:
        """Publish the entry as the goal (resized if sound); say what happened."""
        width, height = self.goal_size()
        try:
            image, note = fit_to_camera(entry.image, width, height, entry.name)
        except GoalImageError as exc:
            self.report("error", f"refused {exc}")
            return False
        try:
            self.bridge.publish_goal(image)
        except Exception as exc:  # e.g. the ROS context is gone during shutdown
            self.report("error", f"could not publish the goal: {exc}")
            return False
        self.current_goal = entry
        self.goal_view.set_image(image, f"{entry.name} → {self.bridge.goal_topic}")
        if note:
            self.report("warning", note)
        self.report("info", f"goal '{entry.name}' published on {self.bridge.goal_topic}")
        if entry.model is not None and self.switch_model.isChecked():
            self.report("info", f"asking the policy to load {entry.model.name} for task {entry.task!r}")
            self.bridge.set_policy_model(str(entry.model))
        return True

    def _models_changed(self, _folder: str) -> None:
        self.refresh_models()
        self.teach.refresh_start_models()

    def refresh_models(self) -> None:
        """(Re)fill the model list from the models folder, keeping the entry picked if it is still there."""
        picked = self.model_choice.currentData()
        found = gallery.goal_models(self.models_dir) if self.models_dir else []
        self.model_choice.clear()
        self.model_choice.addItem("model: as launched", None)
        for name, path, summary in found:
            self.model_choice.addItem(f"model: {name} ({summary})", str(path))
        self.model_choice.setCurrentIndex(max(0, self.model_choice.findData(picked)) if picked else 0)

    def choose_model(self, index: int) -> None:
        """Ask the policy node to load the model picked in the list (its answer comes as "set model")."""
        path = self.model_choice.itemData(index)
        if path:
            self.report("info", f"asking the policy to load {Path(path).name}")
            self.bridge.set_policy_model(path)

    def closeEvent(self, event) -> None:
        self.teach.cancel()  # a child process would otherwise outlive the window unseen
        self.teleop.keyboard.setChecked(False)  # the keys stop driving with the window
        self.teleop.let_go_of_everything()
        self._stale_timer.stop()
        self._loader.shutdown(wait=False, cancel_futures=True)
        super().closeEvent(event)


def make_settings(settings_file: str | None) -> QSettings:
    if settings_file:
        return QSettings(settings_file, QSettings.Format.IniFormat)
    return QSettings("robot_app", "gui")


def ros_args_from_params(params: list[str]) -> list[str]:
    """--param NAME=VALUE options as ROS arguments; a malformed one is a clear error."""
    ros_args = []
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE, e.g. camera_topic=/cam/image_raw")
        ros_args += ["-p", f"{name.strip()}:={value}"]
    return ros_args


def run_gui(args: argparse.Namespace, extra_ros_args: list[str] | None = None) -> int:
    """Open the window (parsed `robot-app gui` options); returns the exit status."""
    try:
        ros_args = ros_args_from_params(args.param) + list(extra_ros_args or [])
    except ValueError as exc:
        print(f"robot-app gui: {exc}", file=sys.stderr)
        return 2
    for option, path in (("--goals", args.goals), ("--dataset", args.dataset), ("--models", args.models)):
        if path and not Path(path).is_dir():
            print(f"robot-app gui: {option} {path}: not a directory", file=sys.stderr)
            return 2
    if args.goal and not Path(args.goal).is_file():
        print(f"robot-app gui: --goal {args.goal}: no such file", file=sys.stderr)
        return 2
    if not _have_display():
        if not args.screenshot:
            print(
                "robot-app gui: no display (DISPLAY / WAYLAND_DISPLAY unset); for a headless picture use "
                "--screenshot PATH, or set QT_QPA_PLATFORM=offscreen",
                file=sys.stderr,
            )
            return 2
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    quit_after = args.quit_after if args.quit_after is not None or not args.screenshot else 5.0
    qInstallMessageHandler(_qt_messages)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    settings = make_settings(args.settings_file)
    try:
        bridge = RosBridge(namespace=args.namespace, ros_args=ros_args)
    except Exception as exc:  # bad namespace, parameter of the wrong type, unusable ROS args
        print(f"robot-app gui: could not start the ROS node: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    models_dir = (
        Path(args.models) if args.models else (DEFAULT_MODELS_DIR if DEFAULT_MODELS_DIR.is_dir() else None)
    )
    window = MainWindow(bridge, settings, models_dir)
    previous_hook, sys.excepthook = sys.excepthook, _keep_running(window)
    goals = args.goals or settings.value(SETTINGS_GOAL_FOLDER, "")
    if goals and Path(goals).is_dir():
        window.load_folder(goals)
    if args.dataset:
        window.load_dataset(args.dataset)
    if models_dir is not None:
        window.load_tasks(quiet=True)
    if args.suites:
        window.load_suites()
    if args.goal:
        window.load_file(args.goal, choose=True)
    window.show()
    status = {"rc": 0}
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), lambda: _finish(app, window, args.screenshot, status))
    # Ctrl-C closes the window: Python handles signals only when it runs, so wake it up.
    signal.signal(signal.SIGINT, lambda *_: app.quit())
    wake = QTimer(interval=200, timeout=lambda: None)
    wake.start()
    try:
        app.exec()
    finally:
        wake.stop()
        window.close()
        bridge.shutdown()
        sys.excepthook = previous_hook
    return status["rc"]


def _keep_running(window: MainWindow):
    """An exception escaping a Qt slot aborts PyQt6 unless sys.excepthook is replaced: show
    it in the window (and the full traceback on stderr) and keep the window alive."""

    def hook(kind, value, tb):
        traceback.print_exception(kind, value, tb)
        try:
            window.report("error", f"internal error: {kind.__name__}: {value} (details on the console)")
        except Exception:  # the window itself is broken: the console has the traceback
            pass

    return hook


def _qt_messages(_mode, _context, message: str) -> None:
    """Qt's own warnings to stderr, minus the offscreen platform's harmless size-hint notice."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def _have_display() -> bool:
    """False on a headless Linux box, where Qt would abort the process instead of failing."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _finish(app: QApplication, window: MainWindow, screenshot: str | None, status: dict) -> None:
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        if window.grab().save(screenshot):
            print(f"screenshot saved to {screenshot}")
        else:
            print(f"robot-app gui: could not write the screenshot {screenshot}", file=sys.stderr)
            status["rc"] = 1
    app.quit()


def main(argv: list[str] | None = None) -> int:
    """Console entry `gui_node`: the same options, plus ROS arguments (--ros-args ...)."""
    from rclpy.utilities import remove_ros_args

    from robot_app.commands.gui import add_arguments

    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="gui_node", description="The goal-image GUI as a ROS 2 node.")
    add_arguments(parser)
    args = parser.parse_args(remove_ros_args(argv)[1:])
    ros_args = argv[argv.index("--ros-args") + 1 :] if "--ros-args" in argv else []
    return run_gui(args, ros_args)


if __name__ == "__main__":
    sys.exit(main())
