"""The nodes' parts in one process: image and action conversions, parameter validation,
a model that fails to load. The cross-process behaviour is in test_ros_graph.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from robot_app.spec import DEFAULT_SCALING, ActionScaling  # noqa: E402
from ros_nodes.conversions import (  # noqa: E402
    ImageConversionError,
    action_to_twist,
    fit_image,
    image_to_msg,
    msg_to_image,
    ns_to_stamp,
    stamp_to_ns,
    twist_to_action,
)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def raw(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


def test_rgb8_round_trip(image):
    msg = image_to_msg(image, ns_to_stamp(1_500_000_001), frame_id="cam")
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.header.frame_id) == ("rgb8", 64, 48, 192, "cam")
    assert stamp_to_ns(msg.header.stamp) == 1_500_000_001
    np.testing.assert_array_equal(msg_to_image(msg), image)


def test_other_encodings_become_rgb(image):
    np.testing.assert_array_equal(msg_to_image(raw(image[:, :, ::-1].copy(), "bgr8")), image)
    rgba = np.concatenate([image, np.full((48, 64, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(msg_to_image(raw(rgba, "rgba8")), image)
    np.testing.assert_array_equal(msg_to_image(raw(rgba[:, :, [2, 1, 0, 3]].copy(), "bgra8")), image)
    mono = image[:, :, 0].copy()
    assert (msg_to_image(raw(mono, "mono8")) == mono[:, :, None]).all()
    np.testing.assert_array_equal(msg_to_image(raw(image, "rgb8", pad=8)), image)  # padded rows


@pytest.mark.parametrize(
    "msg, colour_only, words",
    [
        (Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8)), False, "'16UC1' is not supported"),
        (Image(height=2, width=2, encoding="mono8", step=2, data=bytes(4)), True, "mono8 has no colour"),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), False, "no pixels"),
        (Image(height=2, width=2, encoding="rgb8", step=4, data=bytes(8)), False, "step 4 is shorter"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), False, "11 bytes of data, expected 12"),
    ],
)
def test_bad_images_are_refused_with_the_reason(msg, colour_only, words):
    with pytest.raises(ImageConversionError, match="goal image") as info:
        msg_to_image(msg, colour_only=colour_only, what="goal image")
    assert words in str(info.value)


def test_fit_image_resizes_near_square_and_refuses_the_rest(image):
    same, note = fit_image(image[:32, :32], 32)
    assert note == "" and same.shape == (32, 32, 3)
    fitted, note = fit_image(image, 64)  # 64x48 is 4:3
    assert fitted.shape == (64, 64, 3) and fitted.dtype == np.uint8 and note == "resized from 64x48 to 64x64"
    with pytest.raises(ImageConversionError, match="too far from square"):
        fit_image(image[:20], 64)
    with pytest.raises(ImageConversionError, match="too small"):
        fit_image(image[:8, :8], 64)


def test_actions_and_twists_convert_both_ways_with_the_scaling():
    action = np.array([0.5, -1.0, 0.25, 0.8, 0.6], dtype=np.float32)
    twist, grip = action_to_twist(action, Time(sec=3))
    assert twist.header.frame_id == "base_link" and twist.header.stamp.sec == 3
    assert (twist.twist.linear.x, twist.twist.linear.y, twist.twist.angular.z) == pytest.approx((0.1, -0.2, 0.8))
    assert grip == pytest.approx(0.8)
    np.testing.assert_allclose(twist_to_action(twist, grip), action, atol=1e-6)
    twist.twist.linear.x = 3.0  # 15x the limit: clipped to it
    assert twist_to_action(twist, grip)[0] == 1.0
    slow = ActionScaling(max_linear_speed=0.05)
    assert action_to_twist(action, Time(), slow)[0].twist.linear.x == pytest.approx(0.025)
    assert DEFAULT_SCALING.max_linear_speed == 0.2


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def test_policy_node_validates_parameters_and_survives_a_missing_model(context):
    from ros_nodes.policy_node import PolicyNode

    with pytest.raises(ValueError, match=r"q_threshold must be in \(0, 1\], got 1.5"):
        PolicyNode(context=context, parameter_overrides=[Parameter("q_threshold", value=1.5)])
    node = PolicyNode(context=context, parameter_overrides=[Parameter("model_path", value="/no/such.onnx")])
    try:
        assert node.state == "error" and "/no/such.onnx" in node.reason
        ok, message = node._start()
        assert not ok and "cannot start" in message
        result = node.set_parameters([Parameter("max_steps", value=0)])[0]
        assert not result.successful and "max_steps must be >= 1" in result.reason
        result = node.set_parameters([Parameter("threads", value=2)])[0]
        assert not result.successful and "restart the node" in result.reason
        result = node.set_parameters([Parameter("model_path", value="/no/other.onnx")])[0]
        assert not result.successful and result.reason.startswith("model /no/other.onnx refused")
        assert "no model loaded" in result.reason and node.state == "error" and node.reason == result.reason
        assert node.set_parameters([Parameter("q_threshold", value=0.5)])[0].successful
    finally:
        node.destroy_node()


def test_policy_node_reads_the_gripper_state_of_the_joints_it_is_given(context):
    """A non-Panda gripper: its joints and their open and closed positions are parameters,
    the same mapping `dataset build --gripper-*` reads bags with."""
    from sensor_msgs.msg import JointState

    from ros_nodes.policy_node import PolicyNode

    with pytest.raises(ValueError, match="open .* and closed .* positions must be finite and differ"):
        PolicyNode(context=context, parameter_overrides=[Parameter("gripper_open", value=0.0)])
    robotiq = [Parameter("gripper_joints", value=["finger_joint"]), Parameter("gripper_open", value=0.0),
               Parameter("gripper_closed", value=0.8)]
    node = PolicyNode(context=context, parameter_overrides=robotiq)
    try:
        panda = JointState(name=["panda_finger_joint1", "panda_finger_joint2"], position=[0.04, 0.04])
        node._on_joints(panda)
        assert node.gripper is None  # not this gripper's joints
        node._on_joints(JointState(name=["shoulder", "finger_joint"], position=[1.0, 0.6]))
        assert node.gripper == pytest.approx(0.75)
        result = node.set_parameters([Parameter("gripper_closed", value=0.0)])[0]  # now equal to gripper_open
        assert not result.successful and "must be finite and differ" in result.reason
        assert node.set_parameters([Parameter("gripper_joints", value=["panda_finger_joint1", "panda_finger_joint2"]),
                                    Parameter("gripper_open", value=0.08), Parameter("gripper_closed", value=0.0)])[0].successful
        node._on_joints(JointState(name=panda.name, position=[0.01, 0.01]))
        assert node.gripper == pytest.approx(0.75)
    finally:
        node.destroy_node()


def test_policy_node_status_is_json_with_the_contract_keys(context):
    from ros_nodes.policy_node import PolicyNode

    node = PolicyNode(context=context)  # no model_path at all
    sent = []
    node.status_pub.publish = lambda msg: sent.append(json.loads(msg.data))
    try:
        with node._lock:
            node._publish_status()
        assert sent[-1] == {"state": "error", "step": 0, "q_value": None, "reason": "no model: set the model_path parameter"}
        node._on_goal(image_to_msg(np.zeros((64, 64, 3), np.uint8)))
        assert sent[-1]["state"] == "error" and sent[-1]["reason"].startswith("goal image ignored")
    finally:
        node.destroy_node()


def test_sim_and_recorder_nodes_refuse_bad_parameters_before_building_anything(context, tmp_path):
    from ros_nodes.recorder_node import RecorderNode, msgtype_of
    from ros_nodes.sim_node import SimNode

    with pytest.raises(ValueError, match=r"image_size must be one of \(64, 128\), got 100"):
        SimNode(context=context, parameter_overrides=[Parameter("image_size", value=100)])
    with pytest.raises(ValueError, match="command_timeout_s must be positive"):
        SimNode(context=context, parameter_overrides=[Parameter("command_timeout_s", value=0.0)])
    with pytest.raises(ValueError, match="goal_family grasp-heldout needs heldout: true"):
        SimNode(context=context, parameter_overrides=[Parameter("goal_family", value="grasp-heldout")])
    with pytest.raises(ValueError, match="storage must be one of"):
        RecorderNode(context=context, parameter_overrides=[Parameter("storage", value="zip"),
                                                           Parameter("output_dir", value=str(tmp_path))])
    with pytest.raises(ValueError, match=r"topics: \['/tf'\]"):
        RecorderNode(context=context, parameter_overrides=[Parameter("topics", value=["/tf"]),
                                                           Parameter("output_dir", value=str(tmp_path))])
    assert msgtype_of(Image) == "sensor_msgs/msg/Image"


def test_rate_limit_answers_a_jittery_10hz_camera_every_frame_and_a_30hz_one_at_10hz(context):
    from ros_nodes.policy_node import BURST, PolicyNode

    node = PolicyNode(context=context)
    try:
        def acted(times) -> int:
            node._tokens, node._last_taken, count = BURST, None, 0
            for t in times:
                if node._allowed(t):
                    node._tokens -= 1.0
                    count += 1
            return count

        jitter = np.random.default_rng(0).uniform(-0.04, 0.04, 200)
        assert acted(1000.0 + np.arange(200) * 0.1 + jitter) == 200
        assert acted(1000.0 + np.arange(300) / 30.0) == pytest.approx(100, abs=1)
        assert acted([1000.0, 1000.1, 5.0, 5.1]) == 4  # a clock that jumps back is followed
    finally:
        node.destroy_node()


STUCK_NODE = """
import time
from rclpy.node import Node
from ros_nodes.runner import run_node

class Stuck(Node):
    def __init__(self):
        super().__init__("stuck_node")
        self.timer = self.create_timer(0.05, self.say_spinning)

    def say_spinning(self):
        print("spinning", flush=True)
        self.timer.cancel()

    def destroy_node(self):  # a teardown that never ends, as a hung DDS participant's
        time.sleep(600)

run_node("stuck_node", Stuck)
"""


def test_a_node_whose_teardown_hangs_exits_with_its_stack_instead_of_waiting_for_sigkill(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from ros_nodes.runner import SHUTDOWN_TIMEOUT_S

    proc = subprocess.Popen([sys.executable, "-c", STUCK_NODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        import select

        assert select.select([proc.stdout], [], [], 60)[0], "the node did not start spinning within 60 s"
        assert proc.stdout.readline().strip() == "spinning"
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT_S + 30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert time.monotonic() - start >= SHUTDOWN_TIMEOUT_S  # not before the teardown had its time
    assert "Timeout" in err and "in destroy_node" in err, err  # faulthandler's dump names where it hung
