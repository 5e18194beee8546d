"""Teleop from the window (gui/teleop.py): a person drives the real pybullet driver (sim_node in
its own process) over DDS with keys and buttons, and records what they did as an episode.

What must hold, and why (see the module docstring): the arm moves the way the key says, stops
the moment the key is let go (not 0.5 s later), stops when the window loses focus, never
has its grip changed by a motion key, and an episode recorded while driving builds into a
store whose actions are the commands the person gave.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("rclpy")

from PyQt6.QtCore import QEvent, QSettings, Qt  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402
from ros_helpers import Probe, nodes_running, pose_xyz, sim_and_recorder, wait_for  # noqa: E402

from gui.teleop import CONTROLS, Teleop  # noqa: E402
from robot_app.spec import FINGER_JOINT_NAMES, Topics  # noqa: E402


# --- the state, without a window -----------------------------------------------------------
def test_held_controls_make_the_motion_and_opposites_cancel():
    t = Teleop(speed=0.5)
    assert not t.moving and np.array_equal(t.twist(), np.zeros(4))
    assert t.press("x+") and not t.press("x+")  # a second press of a held key changes nothing
    assert t.press("z-")
    np.testing.assert_allclose(t.twist(), [0.5, 0.0, -0.5, 0.0])
    t.press("x-")  # both x keys: they cancel
    np.testing.assert_allclose(t.twist(), [0.0, 0.0, -0.5, 0.0])
    t.speed = 1.0
    t.press("yaw+")
    np.testing.assert_allclose(t.twist(), [0.0, 0.0, -1.0, 1.0])
    assert t.release("z-") and not t.release("z-")
    assert t.release_all() and not t.moving and not t.release_all()
    with pytest.raises(ValueError, match="unknown control 'grip'"):
        t.press("grip")
    assert set(CONTROLS) == {f"{axis}{sign}" for axis in ("x", "y", "z", "yaw") for sign in "+-"}


def test_the_gripper_toggles_from_what_was_last_seen():
    t = Teleop()
    assert t.toggle_gripper() is True  # nothing known: the first toggle closes
    assert t.toggle_gripper() is False
    t.closed = True  # e.g. the policy left it closed on an object
    assert t.toggle_gripper() is False


# --- against the real driver ------------------------------------------------------------


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("teleop")
    with nodes_running(workdir, sim_and_recorder(workdir)):
        yield workdir


@pytest.fixture(scope="module")
def probe(graph):
    p = Probe("teleop_probe")
    p.listen_to_the_arm()
    wait_for(lambda: p.latest(Topics.EE_POSE), 30, "the sim's end effector pose")
    yield p
    p.close()


@pytest.fixture(scope="module")
def window(qapp, probe, tmp_path_factory):
    from gui.app import MainWindow
    from gui.ros_bridge import RosBridge

    settings = QSettings(str(tmp_path_factory.mktemp("settings") / "gui.ini"), QSettings.Format.IniFormat)
    bridge = RosBridge(node_name="teleop_gui")
    win = MainWindow(bridge, settings)
    win.show()
    for topic in (Topics.CMD_EE_DELTA, Topics.CMD_GRIPPER):  # the window's own, the sim, the recorder, the probe
        wait_for(lambda t=topic: bridge.node.count_subscribers(t) >= 4 and probe.node.count_publishers(t) >= 1, 30,
                 f"everyone hearing the window on {topic}")
    time.sleep(1.0)  # matched both ways: the listing shows one side's discovery, the readers need the other's
    yield win
    win.close()
    bridge.shutdown()


def ee(probe) -> np.ndarray:
    return pose_xyz(probe.latest(Topics.EE_POSE))


def still_for(probe, seconds: float) -> np.ndarray:
    """The end effector's poses over `seconds`: (n, 3)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    return np.array([pose_xyz(m) for m in probe.since(Topics.EE_POSE, t0)])


def fingers(probe) -> float:
    msg = probe.latest(Topics.JOINT_STATES)
    return float(sum(p for n, p in zip(msg.name, msg.position, strict=True) if n in FINGER_JOINT_NAMES))


def grips_sent(probe) -> int:
    return len(probe.since(Topics.CMD_GRIPPER, 0.0))


@pytest.mark.ros
@pytest.mark.slow
def test_a_held_key_drives_the_arm_and_letting_go_stops_it_at_once(qtbot, window, probe):
    window.teleop.keyboard.setChecked(True)
    grips = grips_sent(probe)
    start = ee(probe)
    # Sent to the gallery list, which would take a letter for type-to-search: the drive keys win.
    qtbot.keyPress(window.gallery_list, Qt.Key.Key_W)  # away from the sim camera: x-
    qtbot.wait(1000)  # speed 0.5 = 0.1 m/s
    released = time.monotonic()
    qtbot.keyRelease(window.gallery_list, Qt.Key.Key_W)
    assert not window.teleop.teleop.held
    moved = ee(probe) - start
    assert moved[0] < -0.04, moved  # x- by about 10 cm, and nothing else
    assert np.abs(moved[1:]).max() < 0.01, moved
    zero = wait_for(lambda: next((m for m in probe.since(Topics.CMD_EE_DELTA, released)
                                  if m.twist.linear.x == 0.0), None), 2.0, "a zero twist on release")
    assert zero.header.frame_id == "base_link"
    time.sleep(0.3)  # the zero twist is the command in force from the next tick on
    poses = still_for(probe, 0.6)  # within the driver's 0.5 s watchdog: only the zero twist holds it
    assert len(poses) >= 3 and np.ptp(poses, axis=0).max() < 1e-3, poses
    assert not window.teleop._timer.isActive()
    assert grips_sent(probe) == grips  # motion never sends a grip target


@pytest.mark.ros
@pytest.mark.slow
def test_losing_focus_lets_go_and_unchecked_keys_do_nothing(qtbot, window, probe):
    window.teleop.keyboard.setChecked(True)
    qtbot.keyPress(window, Qt.Key.Key_R)  # up
    qtbot.wait(300)
    assert window.teleop.teleop.held == {"z+"}
    t0 = time.monotonic()
    QApplication.sendEvent(window, QEvent(QEvent.Type.WindowDeactivate))  # the key-up goes elsewhere
    assert not window.teleop.teleop.moving
    wait_for(lambda: any(m.twist.linear.z == 0.0 for m in probe.since(Topics.CMD_EE_DELTA, t0)), 2.0, "a zero twist")
    time.sleep(0.3)
    poses = still_for(probe, 0.6)
    assert np.ptp(poses, axis=0).max() < 1e-3, poses

    window.teleop.keyboard.setChecked(False)
    t1 = time.monotonic()
    qtbot.keyPress(window, Qt.Key.Key_W)
    qtbot.wait(400)
    qtbot.keyRelease(window, Qt.Key.Key_W)
    assert not probe.since(Topics.CMD_EE_DELTA, t1) and not window.teleop.teleop.held


@pytest.mark.ros
@pytest.mark.slow
def test_buttons_drive_while_held_and_the_gripper_toggles(qtbot, window, probe):
    start = ee(probe)
    qtbot.mousePress(window.teleop.buttons["z-"], Qt.MouseButton.LeftButton)
    qtbot.wait(800)
    qtbot.mouseRelease(window.teleop.buttons["z-"], Qt.MouseButton.LeftButton)
    assert ee(probe)[2] < start[2] - 0.03, (start, ee(probe))

    opened = fingers(probe)
    t0 = time.monotonic()
    window.teleop.keyboard.setChecked(True)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert wait_for(lambda: probe.since(Topics.CMD_GRIPPER, t0), 2.0, "a grip target")[-1].data == 1.0
    wait_for(lambda: fingers(probe) < opened - 0.02, 5.0, "the fingers closing")
    window.teleop.grip_button.click()  # and open again
    assert wait_for(lambda: probe.since(Topics.CMD_GRIPPER, t0)[1:], 2.0, "a second target")[-1].data == 0.0
    assert "gripper open" in window.teleop.state_label.text()


@pytest.mark.ros
@pytest.mark.slow
def test_an_episode_recorded_while_driving_builds_into_the_commands_given(qtbot, window, probe, graph):
    from robot_app.dataset_build import episode_from_bag

    qtbot.waitUntil(lambda: window.last_health.get("record") and window.last_health["record"].alive, timeout=30000)
    t0 = time.monotonic()
    window.teleop.grip_button.click()  # a grip target set before the episode, and in force all through it
    wait_for(lambda: probe.since(Topics.CMD_GRIPPER, t0), 2.0, "the grip target")
    grip = 1.0 if window.teleop.teleop.closed else -1.0
    qtbot.wait(300)  # the recorder, another subscriber, has it too
    window.call("record")
    qtbot.waitUntil(lambda: window.recording_since is not None, timeout=15000)
    window.teleop.keyboard.setChecked(True)
    window.teleop.speed_choice.setCurrentIndex(0)  # speed 0.25
    qtbot.keyPress(window, Qt.Key.Key_D)  # to the right in the sim camera's picture: y+
    qtbot.wait(1200)
    qtbot.keyRelease(window, Qt.Key.Key_D)
    qtbot.wait(500)
    window.finish_episode(True)
    qtbot.waitUntil(lambda: window.recording_since is None, timeout=15000)
    bags = sorted((graph / "bags").glob("*"))
    assert bags, "no bag written"
    episode = episode_from_bag(bags[-1])
    actions = episode["actions"]
    driving = actions[np.abs(actions[:, 1]) > 0.01]
    assert len(driving) >= 8, actions  # about 12 ticks at 10 Hz
    np.testing.assert_allclose(driving[:, 1], 0.25, atol=1e-3)  # y+ at a quarter of top speed
    np.testing.assert_allclose(driving[:, [0, 2, 3]], 0.0, atol=1e-6)
    # The recorder opened the bag with the grip target in force: every step has it, not "none" (0).
    np.testing.assert_array_equal(actions[:, 4], grip)
    assert episode["success"] is True  # the label given, not the sim's check (sim/success)
