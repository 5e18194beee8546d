"""Drive the arm from the window: keys or press-and-hold buttons, on the policy's own topics.

Design section 2 lists the command topics as "policy or teleop -> driver"; this is the
teleop. It is how a person records episodes of their own in the sim or on a robot (play,
demonstrations, a new task's labelled attempts for `finetune`): Record, drive, Stop:
success. The recorder and `dataset build` treat them like any other episode, because the
commands go out exactly as a policy's do (TwistStamped in base_link, Float64 grip target).

Three rules keep a person's hands safe on a real arm:
- Releasing a key sends a zero twist at once. The driver obeys the command in force until
  0.5 s pass without one, so without it the arm would run on for up to 10 cm.
- A window that loses focus forgets its held keys and stops the arm: a key released in
  another window never reaches this one.
- Motion never touches the gripper: a twist goes out alone and the grip target changes only
  on the gripper key or buttons, so driving an arm that holds an object cannot drop it.

`Teleop` is the state (which controls are held, the speed, the grip) and knows no Qt;
`TeleopPanel` is the widget that feeds it and sends what it says at the control rate.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QEvent, QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

from robot_app.spec import ACTION_DIM, CONTROL_HZ

# control -> (action index, sign); the normalised action is (vx, vy, vz, wz, grip) in base_link.
CONTROLS: dict[str, tuple[int, float]] = {
    "x+": (0, 1.0), "x-": (0, -1.0),
    "y+": (1, 1.0), "y-": (1, -1.0),
    "z+": (2, 1.0), "z-": (2, -1.0),
    "yaw+": (3, 1.0), "yaw-": (3, -1.0),
}
# Keys move the hand the way it moves in the sim camera's picture, which looks at the arm from
# +x (sim_worlds.panda_world.CAMERA_EYE): W away from the camera (x-), S toward it, A to the
# picture's left (y-), D to its right; R up, F down. The buttons name base_link axes.
KEYS: dict[Qt.Key, str] = {
    Qt.Key.Key_W: "x-", Qt.Key.Key_S: "x+",
    Qt.Key.Key_A: "y-", Qt.Key.Key_D: "y+",
    Qt.Key.Key_R: "z+", Qt.Key.Key_F: "z-",
    Qt.Key.Key_Q: "yaw+", Qt.Key.Key_E: "yaw-",
}
GRIPPER_KEY = Qt.Key.Key_Space  # toggles open / closed
SPEEDS = (0.25, 0.5, 1.0)  # fractions of the driver's top speed (0.2 m/s, 1 rad/s)


class Teleop:
    """Held controls and the grip target; `twist()` is the normalised motion they ask for."""

    def __init__(self, speed: float = 0.5):
        self.speed = speed
        self.held: set[str] = set()
        self.closed: bool | None = None  # the grip target last sent or seen on the graph; None: not known

    def press(self, control: str) -> bool:
        """Hold a control; True when that changed what is held."""
        if control not in CONTROLS:
            raise ValueError(f"unknown control {control!r}: expected one of {', '.join(CONTROLS)}")
        changed = control not in self.held
        self.held.add(control)
        return changed

    def release(self, control: str) -> bool:
        changed = control in self.held
        self.held.discard(control)
        return changed

    def release_all(self) -> bool:
        changed = bool(self.held)
        self.held.clear()
        return changed

    @property
    def moving(self) -> bool:
        return bool(self.held)

    def twist(self) -> np.ndarray:
        """(vx, vy, vz, wz) in [-1, 1]: the held controls at the chosen speed; opposite keys cancel."""
        motion = np.zeros(ACTION_DIM - 1)
        for control in self.held:
            index, sign = CONTROLS[control]
            motion[index] += sign
        return np.clip(motion, -1.0, 1.0) * self.speed

    def toggle_gripper(self) -> bool:
        """The grip to send next: closed unless the last known target was closed."""
        self.closed = not self.closed if self.closed is not None else True
        return self.closed


class TeleopPanel(QGroupBox):
    """Buttons and (when switched on) keys that drive the arm; emits what to send.

    `twist` carries a (4,) normalised motion, sent at the control rate while something is held
    and once, as zeros, when the last control is let go; `grip` carries a bool (closed),
    sent when the gripper is toggled; `engaged` is emitted when a person starts driving, so the
    window can stop a running policy first (the person's command wins).
    """

    twist = pyqtSignal(object)
    grip = pyqtSignal(bool)
    engaged = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("base_link, hold to move", parent)
        self.teleop = Teleop()
        self._timer = QTimer(self, interval=int(round(1000 / CONTROL_HZ)), timeout=self._send)
        self.keyboard = QCheckBox("keys: W/A/S/D as in the sim camera's picture, R/F up/down, Q/E yaw, Space gripper")
        self.keyboard.setToolTip("while checked and this window has focus, the keys drive the arm: W away from the "
                                 "sim camera (x-), S toward it (x+), A left (y-), D right (y+)")
        self.keyboard.toggled.connect(self._listen_to_keys)
        self.speed_choice = QComboBox()
        for speed in SPEEDS:
            self.speed_choice.addItem(f"speed {speed:g}", speed)
        self.speed_choice.setCurrentIndex(SPEEDS.index(self.teleop.speed))
        self.speed_choice.currentIndexChanged.connect(lambda i: setattr(self.teleop, "speed", SPEEDS[i]))
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        for column, axis in enumerate(("x", "y", "z", "yaw")):
            for row, sign in enumerate("+-"):
                control = f"{axis}{sign}"
                button = QPushButton(control)
                button.setAutoRepeat(False)
                button.pressed.connect(lambda c=control: self.hold(c))
                button.released.connect(lambda c=control: self.let_go(c))
                self.buttons[control] = button
                grid.addWidget(button, row, column)
        self.grip_button = QPushButton("gripper", clicked=self.toggle_gripper)
        self.state_label = QLabel("")
        self.state_label.setWordWrap(True)
        grid.addWidget(self.grip_button, 0, 4)
        grid.addWidget(self.speed_choice, 1, 4)
        grid.addWidget(self.keyboard, 2, 0, 1, 5)
        grid.addWidget(self.state_label, 3, 0, 1, 5)
        self._show()

    # --- what a person does ---------------------------------------------------------------
    def hold(self, control: str) -> None:
        was_moving = self.teleop.moving
        if self.teleop.press(control):
            if not was_moving:
                self.engaged.emit()
                self._timer.start()
            self._send()

    def let_go(self, control: str) -> None:
        if self.teleop.release(control):
            self._after_release()

    def let_go_of_everything(self) -> None:
        """Focus lost or the panel closed: nothing is held any more, and the arm stops now."""
        if self.teleop.release_all():
            self._after_release()

    def toggle_gripper(self) -> None:
        self.engaged.emit()
        self.grip.emit(self.teleop.toggle_gripper())
        self._show()

    def saw_grip_command(self, target: float) -> None:
        """A grip target on the graph (the policy's, say): the next toggle goes the other way."""
        self.teleop.closed = target > 0.5
        self._show()

    # --- what goes out --------------------------------------------------------------------
    def _after_release(self) -> None:
        self._send()  # the remaining controls' motion, or zeros: the arm stops on release
        if not self.teleop.moving:
            self._timer.stop()

    def _send(self) -> None:
        self.twist.emit(self.teleop.twist())
        self._show()

    def _show(self) -> None:
        held = " ".join(sorted(self.teleop.held)) or "nothing held"
        grip = {None: "not known (set it once before recording: a bag needs a grip target)",
                True: "closed", False: "open"}[self.teleop.closed]
        self.state_label.setText(f"{held}; gripper {grip}")

    # --- keys -----------------------------------------------------------------------------
    def _listen_to_keys(self, on: bool) -> None:
        app = QApplication.instance()
        if on:
            app.installEventFilter(self)
        else:
            app.removeEventFilter(self)
            self.let_go_of_everything()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind in (QEvent.Type.WindowDeactivate, QEvent.Type.ApplicationDeactivate):
            if obj is self.window() or kind == QEvent.Type.ApplicationDeactivate:
                self.let_go_of_everything()
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.window():
            return False  # a dialog's text field keeps its keys
        key = Qt.Key(event.key())
        if key not in KEYS and key != GRIPPER_KEY:
            return False
        if not event.isAutoRepeat():
            if key == GRIPPER_KEY:
                if kind == QEvent.Type.KeyPress:
                    self.toggle_gripper()
            elif kind == QEvent.Type.KeyPress:
                self.hold(KEYS[key])
            else:
                self.let_go(KEYS[key])
        return True  # the list's type-to-search and the buttons' Space never see a driving key
