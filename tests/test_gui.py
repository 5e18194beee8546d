"""The goal-image GUI against real ROS 2 nodes over DDS, on Qt's offscreen platform.

A small fake robot (camera publisher, policy/start and policy/stop services, a status
publisher, a goal subscriber and a `model` parameter, named like the policy node) runs in
its own rclpy context and thread, so the GUI reaches it through DDS discovery exactly as
it reaches a real driver in another process. `reset` is deliberately not offered: the GUI
must say so instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from PyQt6.QtCore import QSettings, Qt  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from gui import gallery  # noqa: E402
from gui.images import GoalImageError, fit_to_camera  # noqa: E402
from robot_app.spec import Topics  # noqa: E402
from robot_app.store import Store, write_store  # noqa: E402
from ros_nodes import qos  # noqa: E402
from ros_nodes.conversions import image_to_msg, msg_to_image  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
WAIT_MS = 15000  # DDS discovery takes ~3 s; generous for a loaded CI machine


def frame(step: int, size: int = 64) -> np.ndarray:
    """A camera frame whose top-left pixel encodes the step, so a test can tell frames apart."""
    image = np.zeros((size, size, 3), np.uint8)
    image[:, :, 2] = np.linspace(60, 200, size, dtype=np.uint8)[None, :]
    x = 8 + step % (size - 24)
    image[24:40, x : x + 12] = (230, 60, 40)
    image[0, 0] = (step % 256, 0, 0)
    return image


class FakeRobot(Node):
    """Driver and policy stand-in: camera, status, start/stop services, goal subscriber."""

    def __init__(self, context: Context, camera_size: int = 64):
        super().__init__("policy_node", context=context)
        self.declare_parameter("model_path", "")
        self.camera_size = camera_size
        self.step = 0
        self.goals: list[np.ndarray] = []
        self.calls = {"start": 0, "stop": 0}
        self.camera_pub = self.create_publisher(Image, Topics.IMAGE, qos.SENSOR)
        self.status_pub = self.create_publisher(String, Topics.POLICY_STATUS, qos.STATUS)
        self.proposed_goal_pub = self.create_publisher(Image, Topics.PROPOSED_GOAL, qos.LATCHED)
        self.twist_pub = self.create_publisher(TwistStamped, Topics.CMD_EE_DELTA, qos.COMMAND)
        self.grip_pub = self.create_publisher(Float64, Topics.CMD_GRIPPER, qos.COMMAND)
        self.create_subscription(
            Image, Topics.GOAL_IMAGE, lambda m: self.goals.append(msg_to_image(m)), qos.LATCHED
        )
        self.create_service(Trigger, Topics.POLICY_START, self._trigger("start"))
        self.create_service(Trigger, Topics.POLICY_STOP, self._trigger("stop"))
        self.create_timer(0.05, self._tick)

    def _trigger(self, role):
        def handle(_request, response):
            self.calls[role] += 1
            response.success, response.message = True, f"{role}ed"
            return response

        return handle

    def _tick(self):
        self.step += 1
        self.camera_pub.publish(image_to_msg(frame(self.step, self.camera_size)))
        self.twist_pub.publish(TwistStamped())  # one action per frame: a twist and a gripper target
        self.grip_pub.publish(Float64(data=0.0))
        q = 0.5 + 0.4 * np.sin(self.step / 10)
        status = {"state": "running", "step": self.step, "q_value": q, "reason": ""}
        self.status_pub.publish(String(data=json.dumps(status)))


@pytest.fixture(scope="module")
def robot():
    context = Context()
    rclpy.init(context=context)
    node = FakeRobot(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=2.0)


def write_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image[:, :, ::-1])
    return path


@pytest.fixture(scope="module")
def goal_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("goals")
    write_png(d / "a_exact.png", frame(3))
    write_png(d / "b_large.png", cv2.resize(frame(5), (128, 128), interpolation=cv2.INTER_NEAREST))
    write_png(d / "c_wide.png", np.zeros((40, 120, 3), np.uint8))  # aspect 3: refused
    (d / "d_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "notes.txt").write_text("ignored: not an image")
    return d


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    (d / "grasp_heldout.onnx").write_bytes(b"stand-in")
    (d / "grasp_heldout.json").write_text(json.dumps({"task": "grasp-heldout", "image_size": 64}))
    write_png(d / "grasp_heldout_goal.png", frame(40))
    (d / "general.json").write_text(json.dumps({"image_size": 64, "algo": "gcbc",  # no task: not in the gallery,
                                                "evaluation": {"families": {"grasp": {"success_rate": 0.44}}}}))
    (d / "general.onnx").write_bytes(b"stand-in")  # but offered as a model to load
    (d / "no_graph.json").write_text(json.dumps({"image_size": 64}))  # no .onnx beside it: not offered
    (d / "broken.json").write_text("{not json")
    return d


@pytest.fixture(scope="module")
def window(qapp, robot, tmp_path_factory, models_dir):
    from gui.app import MainWindow
    from gui.ros_bridge import RosBridge

    settings = QSettings(str(tmp_path_factory.mktemp("settings") / "gui.ini"), QSettings.Format.IniFormat)
    bridge = RosBridge()
    win = MainWindow(bridge, settings, models_dir)
    win.show()
    # The tests that switch the model need the robot's parameter service discovered; alone (-k),
    # one of them could otherwise come first, before DDS has found it.
    deadline = time.monotonic() + WAIT_MS / 1000
    while not bridge.node.set_params_client.service_is_ready() and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.05)
    yield win
    win.close()
    bridge.shutdown()


# --- without a window -------------------------------------------------------------------
def test_fit_to_camera_resizes_when_sound_and_refuses_otherwise():
    same, note = fit_to_camera(frame(1), 64, 64, "same")
    assert note is None and same is not None
    big = cv2.resize(frame(1), (128, 128), interpolation=cv2.INTER_NEAREST)
    small, note = fit_to_camera(big, 64, 64, "big.png")
    assert small.shape == (64, 64, 3) and "128x128 resized to 64x64" in note
    assert np.abs(small.astype(int) - frame(1).astype(int)).mean() < 3
    cropped, note = fit_to_camera(np.zeros((60, 70, 3), np.uint8), 64, 64, "near_square")
    assert cropped.shape == (64, 64, 3) and note
    with pytest.raises(GoalImageError, match="too far from square"):
        fit_to_camera(np.zeros((40, 120, 3), np.uint8), 64, 64, "wide")
    with pytest.raises(GoalImageError, match="too small"):
        fit_to_camera(np.zeros((8, 8, 3), np.uint8), 64, 64, "tiny")


def test_folder_gallery_keeps_good_images_and_names_refused_ones(goal_dir):
    load = gallery.from_folder(goal_dir)
    assert [e.name for e in load.entries] == ["a_exact", "b_large"]
    assert np.array_equal(load.entries[0].image, frame(3))
    problems = "\n".join(load.problems)
    assert "c_wide.png" in problems and "too far from square" in problems
    assert "d_broken.png" in problems and "not a readable image" in problems
    assert "notes.txt" not in problems
    assert gallery.from_folder(goal_dir / "missing").problems


def test_dataset_gallery_shows_each_episode_final_frame(tmp_path):
    episodes = []
    for e in range(3):
        images = np.stack([frame(10 * e + t) for t in range(4 + e)])
        n = len(images)
        episodes.append(
            {
                "images": images,
                "actions": np.zeros((n, 5), np.float32),
                "gripper": np.zeros(n),
                "timestamps": np.arange(n, dtype=np.float64),
                "success": e != 1,
                "source": f"bag{e}",
            }
        )
    store = write_store(tmp_path / "store", episodes)
    load = gallery.from_dataset(store)
    assert len(load.entries) == 3 and not load.problems
    for e, entry in enumerate(load.entries):
        assert np.array_equal(entry.image, frame(10 * e + 3 + e))
    assert "failure" in load.entries[1].name and "success" in load.entries[0].name
    assert len(Store.open(store)) == 15
    bad = gallery.from_dataset(tmp_path)
    assert not bad.entries and "not a dataset store" in bad.problems[0]


def test_task_gallery_reads_cards_with_a_task(models_dir):
    load = gallery.from_models(models_dir)
    assert [e.task for e in load.entries] == ["grasp-heldout"]
    assert load.entries[0].model == models_dir / "grasp_heldout.onnx"
    assert any("broken.json" in p for p in load.problems)


def test_suite_gallery_renders_each_family():
    pytest.importorskip("pybullet")
    from sim_worlds.goals import FAMILIES

    load = gallery.from_suites(64, per_family=1)
    assert not load.problems
    assert [e.name for e in load.entries] == [f"{family} 0" for family in FAMILIES]
    assert all(e.image.shape == (64, 64, 3) and e.image.std() > 5 for e in load.entries)


# --- the window against real nodes -------------------------------------------------------
def messages(win) -> str:
    return "\n".join(text for _, text in win.messages)


def test_camera_view_updates_and_graph_shows_alive(qtbot, window, robot):
    qtbot.waitUntil(lambda: window.frames_shown >= 3, timeout=WAIT_MS)
    first = int(window.live_view.image[0, 0, 0])
    qtbot.waitUntil(lambda: int(window.live_view.image[0, 0, 0]) != first, timeout=WAIT_MS)
    assert window.live_view.image.shape == (64, 64, 3)
    qtbot.waitUntil(lambda: window.health_panel.lines.get("camera", ("", False))[1], timeout=WAIT_MS)
    text, ok = window.health_panel.lines["camera"]
    assert "/camera/image_raw" in text and "Hz" in text
    assert window.health_panel.lines["start"][1] and not window.health_panel.lines["reset"][1]


def test_command_rate_counts_actions_not_messages(qtbot, window):
    """Each action is a twist and a gripper target; the panel's command rate is the action
    rate (here the camera's, one action per frame), not twice it."""
    def rates():
        health = window.last_health
        return (health["commands"].rate_hz, health["camera"].rate_hz) if "commands" in health else (0.0, 0.0)

    qtbot.waitUntil(lambda: min(rates()) > 5, timeout=WAIT_MS)
    qtbot.wait(2500)  # a full rate window of both
    commands, camera = rates()
    assert 0.7 * camera <= commands <= 1.3 * camera, (commands, camera)


def test_status_shown_as_text_and_q_plot(qtbot, window):
    qtbot.waitUntil(lambda: len(window.q_plot.values) >= 5, timeout=WAIT_MS)
    assert "running" in window.status_label.text() and "Q 0." in window.status_label.text()
    assert all(0.0 <= q <= 1.0 for q in window.q_plot.values)


def test_choosing_a_goal_publishes_it_resized_to_the_camera(qtbot, window, robot, goal_dir):
    window.load_folder(str(goal_dir))
    qtbot.waitUntil(lambda: window.gallery_list.count() >= 2, timeout=WAIT_MS)
    assert window.settings.value("goal_folder") == str(goal_dir)
    item = next(
        window.gallery_list.item(i)
        for i in range(window.gallery_list.count())
        if window.gallery_list.item(i).text() == "b_large"
    )
    rect = window.gallery_list.visualItemRect(item)
    qtbot.mouseClick(window.gallery_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: len(robot.goals) >= 1, timeout=WAIT_MS)
    goal = robot.goals[-1]
    assert goal.shape == (64, 64, 3)
    assert np.abs(goal.astype(int) - frame(5).astype(int)).mean() < 3
    assert "128x128 resized to 64x64" in messages(window)
    assert np.array_equal(window.goal_view.image, goal)
    assert "c_wide.png" in messages(window) and "d_broken.png" in messages(window)


def test_use_current_view_as_goal(qtbot, window, robot):
    before = len(robot.goals)
    window.source_buttons["Use current view as goal"].click()
    qtbot.waitUntil(lambda: len(robot.goals) > before, timeout=WAIT_MS)
    assert window.entries[-1].source == "camera"
    assert np.array_equal(robot.goals[-1], window.entries[-1].image)


def test_start_button_calls_the_service_and_missing_reset_is_reported(qtbot, window, robot):
    qtbot.waitUntil(lambda: window.health_panel.lines.get("start", ("", False))[1], timeout=WAIT_MS)
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: robot.calls["start"] == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "start: ok (started)" in messages(window), timeout=WAIT_MS)
    qtbot.mouseClick(window.reset_button, Qt.MouseButton.LeftButton)
    assert "reset" in window.message_bar.text() and "not available" in window.message_bar.text()


@pytest.fixture
def recorder(tmp_path):
    """A real recorder_node, as `robot-app launch` starts it beside the GUI."""
    from ros_nodes.recorder_node import RecorderNode

    context = Context()
    rclpy.init(context=context)
    node = RecorderNode(context=context, parameter_overrides=[rclpy.parameter.Parameter("output_dir", value=str(tmp_path))])
    other = rclpy.create_node("another_client", context=context)  # someone else driving the recorder
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(other)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield tmp_path, other
    executor.shutdown(timeout_sec=1.0)
    other.destroy_node()
    node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=2.0)


def test_recording_an_episode_from_the_window_labels_its_bag(qtbot, window, robot, recorder):
    """Record, then "Stop: success": the recorder's bag holds the camera frames and the label
    the window published before it asked for the bag to be finished."""
    from robot_app.bags import BagReader

    recorder, _ = recorder
    qtbot.waitUntil(lambda: window.health_panel.lines.get("record", ("", False))[1], timeout=WAIT_MS)
    assert window.record_button.isEnabled() and not window.finish_buttons["success"].isEnabled()
    qtbot.mouseClick(window.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.recording_since is not None, timeout=WAIT_MS)
    assert not window.record_button.isEnabled() and window.finish_buttons["success"].isEnabled()
    assert window.recording_path.startswith(str(recorder))
    qtbot.waitUntil(lambda: window.recording_messages > 10, timeout=WAIT_MS)  # recorder/status counts what it wrote
    assert f"{window.recording_messages} messages" in window.record_label.text()
    qtbot.mouseClick(window.finish_buttons["success"], Qt.MouseButton.LeftButton)
    assert not window.finish_buttons["failure"].isEnabled()  # one label per episode
    qtbot.waitUntil(lambda: window.recording_since is None, timeout=WAIT_MS)
    assert window.record_label.text().startswith(f"wrote {window.recording_path}")
    assert window.episodes_written["success"] == 1 and "this session: 1 success" in window.record_label.text()
    (bag,) = [p for p in recorder.iterdir() if p.is_dir()]
    with BagReader(bag) as reader:
        labels = [msg.data for _, _, _, msg in reader.messages([f"/{Topics.TASK_SUCCESS}"])]
        frames = sum(1 for _ in reader.messages([f"/{Topics.IMAGE}"]))
    assert labels == [True] and frames >= 5
    assert window.record_button.isEnabled() and not window.finish_buttons["failure"].isEnabled()


def test_the_window_follows_a_recording_someone_else_started(qtbot, window, robot, recorder):
    """recorder/status is the truth: a recording started or stopped elsewhere shows in the window."""
    out, other = recorder

    def call(service: str):
        client = other.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=WAIT_MS / 1000)
        future = client.call_async(Trigger.Request())
        qtbot.waitUntil(future.done, timeout=WAIT_MS)
        return future.result()

    started = call(Topics.RECORDER_START)
    assert started.success
    qtbot.waitUntil(lambda: window.recording_since is not None, timeout=WAIT_MS)
    assert window.recording_path == started.message and window.finish_buttons["unlabelled"].isEnabled()
    stopped = call(Topics.RECORDER_STOP)
    qtbot.waitUntil(lambda: window.recording_since is None, timeout=WAIT_MS)
    assert window.record_label.text().startswith(f"wrote {stopped.message}") and window.record_button.isEnabled()
    assert window.record_label.text().endswith("1 unlabelled")  # finished elsewhere: no label from this window


def test_bad_image_file_shows_error(qtbot, window, goal_dir):
    count = window.gallery_list.count()
    window.load_file(str(goal_dir / "d_broken.png"))
    qtbot.waitUntil(lambda: "refused d_broken.png" in window.message_bar.text(), timeout=WAIT_MS)
    assert "not a readable image" in window.message_bar.text()
    assert window.gallery_list.count() == count


def test_choosing_a_task_publishes_its_goal_and_sets_the_model(qtbot, window, robot, models_dir):
    window.load_tasks()
    qtbot.waitUntil(lambda: any(e.source == "task" for e in window.entries), timeout=WAIT_MS)
    entry = next(e for e in window.entries if e.source == "task")
    before = len(robot.goals)
    assert window.choose(entry)
    qtbot.waitUntil(lambda: len(robot.goals) > before, timeout=WAIT_MS)
    assert np.array_equal(robot.goals[-1], frame(40))
    model = str(models_dir / "grasp_heldout.onnx")
    qtbot.waitUntil(lambda: robot.get_parameter("model_path").value == model, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "set model: ok" in messages(window), timeout=WAIT_MS)


def test_a_proposed_goal_is_shown_in_the_goal_pane(qtbot, window, robot):
    """A task model publishes the goal it chose for the run; the window shows that picture
    where a chosen goal would be, and publishes nothing back as a goal."""
    proposed = frame(77)
    before = len(robot.goals)
    robot.proposed_goal_pub.publish(image_to_msg(proposed))
    qtbot.waitUntil(lambda: window.goal_view.image is not None and np.array_equal(window.goal_view.image, proposed),
                    timeout=WAIT_MS)
    assert "proposed by the task model" in window.goal_view.caption
    assert "proposed its goal picture" in messages(window)
    assert len(robot.goals) == before


def test_goal_models_are_offered_and_picking_one_sets_the_model(qtbot, window, robot, models_dir):
    offered = [window.model_choice.itemText(i) for i in range(window.model_choice.count())]
    assert offered == ["model: as launched", "model: general (gcbc: grasp 44%)"]  # no task cards, no graphless ones
    window.choose_model(1)
    model = str(models_dir / "general.onnx")
    qtbot.waitUntil(lambda: robot.get_parameter("model_path").value == model, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "asking the policy to load general.onnx" in messages(window), timeout=WAIT_MS)


def test_a_model_exported_while_the_window_is_open_is_offered_without_a_restart(qtbot, window, models_dir):
    def offered():
        return [window.model_choice.itemText(i) for i in range(window.model_choice.count())]

    before = offered()
    window.model_choice.setCurrentIndex(1)  # "general", picked: it stays picked across the refresh
    (models_dir / "fresh.json").write_text(json.dumps({"image_size": 64, "algo": "gcbc"}))
    (models_dir / "fresh.onnx").write_bytes(b"stand-in")
    try:
        qtbot.waitUntil(lambda: "model: fresh (gcbc)" in offered(), timeout=WAIT_MS)
        assert window.model_choice.currentText() == "model: general (gcbc: grasp 44%)"
    finally:
        (models_dir / "fresh.json").unlink()
        (models_dir / "fresh.onnx").unlink()
    qtbot.waitUntil(lambda: offered() == before, timeout=WAIT_MS)  # and a deleted one goes


def test_cli_screenshot_renders_the_window_with_its_goal(tmp_path, goal_dir, robot):
    out = tmp_path / "gui.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = [
        sys.executable,
        "-m",
        "robot_app.cli",
        "gui",
        "--goals",
        str(goal_dir),
        "--goal",
        str(goal_dir / "a_exact.png"),
        "--screenshot",
        str(out),
        "--quit-after",
        "4",
        "--settings-file",
        str(tmp_path / "s.ini"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 400 and picture.shape[1] > 600
    assert picture.std() > 10  # not a blank window
    assert "goal 'a_exact' published on /goal_image" in result.stderr  # the node's log


def test_cli_refuses_bad_options(tmp_path):
    from robot_app.cli import main

    assert main(["gui", "--param", "camera_topic", "--quit-after", "0"]) == 2
    assert main(["gui", "--goals", str(tmp_path / "missing"), "--quit-after", "0"]) == 2
    assert main(["gui", "--goal", str(tmp_path / "missing.png"), "--quit-after", "0"]) == 2


def test_namespace_and_topic_parameters_resolve(qapp):
    from gui.ros_bridge import RosBridge

    bridge = RosBridge(
        namespace="arm1", ros_args=["-p", "camera_topic:=/cam/color/image_raw"], node_name="gui_ns"
    )
    try:
        names = bridge.node.topic_names
        assert names["camera"] == "/cam/color/image_raw"
        assert names["goal"] == "/arm1/goal_image" and names["status"] == "/arm1/policy/status"
        assert bridge.node.service_names["start"] == "/arm1/policy/start"
    finally:
        bridge.shutdown()
    with pytest.raises(Exception, match="image_size"):
        RosBridge(ros_args=["-p", "image_size:=not-a-number"], node_name="gui_bad")


def test_missing_nodes_are_reported_not_waited_for(qtbot, qapp, tmp_path):
    from gui.app import MainWindow
    from gui.ros_bridge import RosBridge

    bridge = RosBridge(namespace="nobody_here", node_name="gui_alone")
    win = MainWindow(bridge, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    try:
        win.show()
        qtbot.waitUntil(lambda: win.live_view.message.startswith("No camera"), timeout=WAIT_MS)
        assert "/nobody_here/camera/image_raw" in win.live_view.message
        qtbot.mouseClick(win.start_button, Qt.MouseButton.LeftButton)
        assert "/nobody_here/policy/start not available" in win.message_bar.text()
        win.source_buttons["Use current view as goal"].click()
        assert "no camera frame yet" in win.message_bar.text()
        lines = win.health_panel.lines
        assert not any(ok for _, ok in lines.values()) and "no publisher" in lines["status"][0]
    finally:
        win.close()
        bridge.shutdown()


def test_frame_arriving_before_the_window_connects_is_not_lost(qtbot, qapp, tmp_path):
    from gui.app import MainWindow
    from gui.ros_bridge import RosBridge

    bridge = RosBridge(namespace="early", node_name="gui_early")
    bridge.offer_frame(frame(7))  # what the ROS thread does when a frame beats the window
    win = MainWindow(bridge, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    try:
        assert np.array_equal(win.live_view.image, frame(7))
        bridge.offer_frame(frame(8))  # and the frames after it still signal
        qtbot.waitUntil(lambda: np.array_equal(win.live_view.image, frame(8)), timeout=WAIT_MS)
    finally:
        win.close()
        bridge.shutdown()


def test_a_service_that_never_answers_times_out_with_a_message(qtbot, qapp, tmp_path):
    from gui.app import MainWindow
    from gui.ros_bridge import RosBridge

    release = threading.Event()
    context = Context()
    rclpy.init(context=context)
    server = Node("hung_policy", namespace="hung", context=context)
    server.create_service(Trigger, Topics.POLICY_START, lambda req, res: (release.wait(10), res)[1])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(server)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    bridge = RosBridge(namespace="hung", ros_args=["-p", "service_timeout_s:=0.5"], node_name="gui_hung")
    win = MainWindow(bridge, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    try:
        qtbot.waitUntil(lambda: win.health_panel.lines.get("start", ("", False))[1], timeout=WAIT_MS)
        win.start_button.click()
        qtbot.waitUntil(lambda: "start: no answer within 0.5 s" in messages(win), timeout=WAIT_MS)
        win.stop_button.click()  # the window still works
        assert "stop" in win.message_bar.text() and "not available" in win.message_bar.text()
    finally:
        release.set()
        win.close()
        bridge.shutdown()
        executor.shutdown(timeout_sec=1.0)
        server.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(timeout=2.0)


def test_a_bad_status_message_is_reported_once(qtbot, window):
    before = len(window.messages)
    for _ in range(3):  # said once, not at every message
        window.bridge.node._on_recorder_status(String(data='{"recording": "yes"}'))
    window.bridge.node._on_status(String(data="[1, 2]"))
    qtbot.waitUntil(lambda: len(window.messages) >= before + 2, timeout=WAIT_MS)
    new = [text for _, text in window.messages[before:] if "unreadable" in text]
    assert len(new) == 2 and "recorder status: unreadable ('recording' must be a bool)" in new[0]
    assert "unreadable (expected a JSON object, got list)" in new[1]


def test_driving_by_hand_stops_a_running_policy_first(qtbot, window, robot):
    """The fake policy says "running": the first teleop command asks it to stop, so the person's
    commands and the policy's never mix on cmd/ee_delta (gui/teleop.py)."""
    qtbot.waitUntil(lambda: window.policy_state == "running", timeout=WAIT_MS)
    before = robot.calls["stop"]
    qtbot.mousePress(window.teleop.buttons["x+"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: robot.calls["stop"] == before + 1, timeout=WAIT_MS)
    assert "teleop takes over" in messages(window)
    qtbot.mouseRelease(window.teleop.buttons["x+"], Qt.MouseButton.LeftButton)
    assert not window.teleop.teleop.moving
