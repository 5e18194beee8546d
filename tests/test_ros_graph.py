"""The ROS 2 graph across processes over real DDS: sim driver, ONNX policy node, recorder.

Nodes run as subprocesses (as `robot-app launch` runs them); the test talks to them from a
probe node, as the GUI would. One graph serves the module (startup and discovery cost
seconds); tests that break a node (stale camera, bad model, kills) use their own process
or run last.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rcl_interfaces.msg import Parameter as RosParameter  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from ros_helpers import (  # noqa: E402
    Probe,
    make_tiny_bc_model,
    make_tiny_model,
    nodes_running,
    pose_xyz,
    sim_and_recorder,
    start_node,
    stop_node,
    wait_for,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from robot_app.spec import FINGER_JOINT_NAMES, Topics  # noqa: E402
from ros_nodes import qos  # noqa: E402
from ros_nodes.conversions import image_to_msg, msg_to_image, stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
GOAL_SEED = 0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ros_graph")


@pytest.fixture(scope="module")
def model(workdir) -> Path:
    return make_tiny_model(workdir / "models")


@pytest.fixture(scope="module")
def graph(workdir, model):
    """sim_node on the first reach task, policy_node on a random-weight model, recorder_node."""
    policy = ("ros_nodes.policy_node", "-p", f"model_path:={model}", "-p", "q_threshold:=1.0", "-p", "max_steps:=10000")
    with nodes_running(workdir, {**sim_and_recorder(workdir, GOAL_SEED), "policy": policy}) as procs:
        yield procs


@pytest.fixture(scope="module")
def probe(graph):
    p = Probe("graph_probe")
    p.listen(Image, Topics.IMAGE, qos.SENSOR)
    p.listen(CameraInfo, Topics.CAMERA_INFO, qos.SENSOR)
    p.listen_to_the_arm()
    p.listen(Bool, Topics.SIM_SUCCESS, qos.COMMAND)
    p.listen(String, Topics.POLICY_STATUS, qos.STATUS)
    p.goal_pub = p.node.create_publisher(Image, Topics.GOAL_IMAGE, qos.LATCHED)
    p.twist_pub = p.node.create_publisher(TwistStamped, Topics.CMD_EE_DELTA, qos.COMMAND)
    wait_for(lambda: p.latest(Topics.EE_POSE) and p.latest(Topics.POLICY_STATUS), 30, "the sim and the policy node")
    for service in (Topics.RESET, Topics.POLICY_START, Topics.POLICY_STOP):  # tests time what follows a call
        p.connect(Trigger, service)
    yield p
    p.close()


@pytest.fixture(scope="module")
def task():
    from sim_worlds.goals import make_suite

    return make_suite("reach", 1, GOAL_SEED)[0]


def status_after(probe, t0: float, predicate, what: str, timeout: float = 10.0, topic: str = "policy/status") -> dict:
    return wait_for(lambda: next((s for s in reversed(probe.statuses(topic, t0)) if predicate(s)), None), timeout, what)


def send_twist(probe, vx=0.0, vy=0.0, vz=0.0, seconds=1.0, frame="base_link"):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        msg = TwistStamped()
        msg.header.frame_id = frame
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = vx, vy, vz
        probe.twist_pub.publish(msg)
        time.sleep(0.1)


def test_topics_types_and_services_are_there(probe):
    expected = {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/ee_pose": "geometry_msgs/msg/PoseStamped",
        "/cmd/ee_delta": "geometry_msgs/msg/TwistStamped",
        "/cmd/gripper": "std_msgs/msg/Float64",
        "/goal_image": "sensor_msgs/msg/Image",
        "/policy/status": "std_msgs/msg/String",
        "/task/success": "std_msgs/msg/Bool",  # the recorder's: labels come from the GUI
        "/sim/success": "std_msgs/msg/Bool",
    }
    def all_there():
        topics = probe.topics()
        return topics if all(n in topics for n in expected) else None

    topics = wait_for(all_there, 15, "every topic")
    for name, msgtype in expected.items():
        assert topics[name] == [msgtype], name
    wanted = ("/reset", "/policy/start", "/policy/stop", "/recorder/start", "/recorder/stop")

    def all_served():
        services = dict(probe.node.get_service_names_and_types())
        return services if all(n in services for n in wanted) else None

    services = wait_for(all_served, 15, "every service")
    for name in wanted:
        assert services[name] == ["std_srvs/srv/Trigger"], name


def test_sim_publishes_the_driver_interface(probe):
    image = probe.latest(Topics.IMAGE)
    assert (image.encoding, image.width, image.height, image.header.frame_id) == ("rgb8", 64, 64, "camera_optical_frame")
    info = probe.latest(Topics.CAMERA_INFO)
    assert info.width == 64 and info.k[0] > 0 and info.k[8] == 1.0
    joints = probe.latest(Topics.JOINT_STATES)
    assert set(FINGER_JOINT_NAMES) <= set(joints.name) and len(joints.position) == len(joints.name)
    pose = probe.latest(Topics.EE_POSE)
    assert pose.header.frame_id == "base_link" and 0.0 < pose.pose.position.z < 0.5
    # sim/success is reliable: its own match may complete after the sensor topics'
    success = wait_for(lambda: probe.latest(Topics.SIM_SUCCESS), 10, "sim/success")
    assert success.data is False  # the reach task's start state


def test_sim_obeys_twists_clamps_them_and_halts_when_they_stop(probe):
    start = pose_xyz(probe.latest(Topics.EE_POSE))
    send_twist(probe, vz=-0.05, seconds=1.0)  # 5 cm/s down for 1 s
    moved = pose_xyz(probe.latest(Topics.EE_POSE))
    assert moved[2] < start[2] - 0.02, (start, moved)
    assert abs(moved[0] - start[0]) < 0.01 and abs(moved[1] - start[1]) < 0.01

    t0 = time.monotonic()
    send_twist(probe, vx=5.0, seconds=0.6)  # 25x the arm's speed limit: clipped to 0.2 m/s
    poses = [pose_xyz(m) for m in probe.since(Topics.EE_POSE, t0)]
    steps = np.abs(np.diff([p[0] for p in poses]))
    assert steps.max() <= 0.02 + 0.003, steps  # at most 2 cm per 10 Hz tick

    send_twist(probe, vx=0.1, frame="tool0", seconds=0.5)  # not base_link: ignored
    time.sleep(1.0)  # the watchdog (0.5 s) has halted the arm
    t1 = time.monotonic()
    time.sleep(0.6)
    still = np.array([pose_xyz(m) for m in probe.since(Topics.EE_POSE, t1)])
    assert len(still) >= 3 and np.ptp(still, axis=0).max() < 1e-4, still


def test_reset_restores_the_task_start_state(probe):
    result = probe.call(Trigger, Topics.RESET)
    t0 = time.monotonic()  # after the answer: the reset is done (a first call may wait for discovery)
    assert result.success and "reach task 0" in result.message, result.message
    first = wait_for(lambda: probe.since(Topics.EE_POSE, t0 + 0.2), 5, "a pose after reset")[0]
    send_twist(probe, vy=0.1, seconds=0.5)
    probe.call(Trigger, Topics.RESET)
    t1 = time.monotonic()
    again = wait_for(lambda: probe.since(Topics.EE_POSE, t1 + 0.2), 5, "a pose after the second reset")[0]
    np.testing.assert_allclose(pose_xyz(again), pose_xyz(first), atol=1e-3)


def test_goal_image_and_start_lead_to_servo_commands(probe, task):
    t0 = time.monotonic()
    refused = probe.call(Trigger, Topics.POLICY_START)
    if not probe.statuses():
        pytest.fail("no status from the policy node")
    probe.goal_pub.publish(image_to_msg(task.goal_image))
    status_after(probe, t0, lambda s: s["state"] == "ready", "the goal to be accepted")
    assert refused.success is False and "no goal" in refused.message

    t1 = time.monotonic()
    assert probe.call(Trigger, Topics.POLICY_START).success
    wait_for(lambda: len(probe.since(Topics.CMD_EE_DELTA, t1)) >= 5, 10, "5 commands")
    twists = probe.since(Topics.CMD_EE_DELTA, t1)
    frame_stamps = {stamp_to_ns(m.header.stamp) for m in probe.since(Topics.IMAGE, t1 - 1.0)}
    for twist in twists:
        assert twist.header.frame_id == "base_link"
        assert stamp_to_ns(twist.header.stamp) in frame_stamps  # stamped with the frame it answers
        assert max(abs(twist.twist.linear.x), abs(twist.twist.linear.y), abs(twist.twist.linear.z)) <= 0.2 + 1e-6
    grips = [m.data for m in probe.since(Topics.CMD_GRIPPER, t1)]
    assert grips and all(0.0 <= g <= 1.0 for g in grips)
    running = status_after(probe, t1, lambda s: s["state"] == "running" and s["step"] >= 3, "steps counted")
    assert 0.0 < running["q_value"] < 1.0

    t2 = time.monotonic()
    stop = probe.call(Trigger, Topics.POLICY_STOP)
    assert stop.success
    stopped = status_after(probe, t2, lambda s: s["state"] == "stopped", "the stop")
    assert "policy/stop" in stopped["reason"]
    time.sleep(0.5)
    after = probe.since(Topics.CMD_EE_DELTA, t2)
    assert len(after) <= 2  # at most one in flight, then the zero twist of the stop
    last = after[-1].twist
    assert (last.linear.x, last.linear.y, last.linear.z, last.angular.z) == (0.0, 0.0, 0.0, 0.0)


def test_bad_goal_images_are_converted_or_refused_and_the_node_stays_up(probe, task):
    def send(msg, what):
        t0 = time.monotonic()
        probe.goal_pub.publish(msg)
        return status_after(probe, t0, lambda s: "goal" in s["reason"], what)

    bgr_small = image_to_msg(np.ascontiguousarray(task.goal_image[::2, ::2, ::-1]))
    bgr_small.encoding = "bgr8"
    ok = send(bgr_small, "a bgr8 32x32 goal")
    assert ok["state"] == "ready" and "converted from bgr8" in ok["reason"] and "resized from 32x32" in ok["reason"]

    mono = Image(height=64, width=64, encoding="mono8", step=64, data=bytes(64 * 64))
    refused = send(mono, "a mono8 goal")
    assert "goal refused" in refused["reason"] and "mono8" in refused["reason"]
    assert refused["state"] == "ready"  # the previous goal is kept

    strip = image_to_msg(np.zeros((16, 64, 3), np.uint8))
    assert "too far from square" in send(strip, "a 64x16 goal")["reason"]
    weird = Image(height=64, width=64, encoding="yuv422", step=128, data=bytes(64 * 128))
    assert "yuv422" in send(weird, "a yuv422 goal")["reason"]
    short = image_to_msg(task.goal_image)
    short.data = short.data[:100]
    assert "bytes of data" in send(short, "a truncated goal")["reason"]
    assert probe.call(Trigger, Topics.POLICY_START).success  # still up, with the last good goal
    assert probe.call(Trigger, Topics.POLICY_STOP).success


def test_recorder_writes_a_bag_that_reads(probe, workdir):
    from robot_app.bags import BagReader

    started = probe.call(Trigger, "recorder/start")
    assert started.success, started.message
    assert probe.call(Trigger, "recorder/start").success is False  # one episode at a time
    send_twist(probe, vx=0.05, seconds=1.2)
    stopped = probe.call(Trigger, "recorder/stop")
    assert stopped.success and started.message in stopped.message
    with BagReader(started.message) as bag:
        counts = bag.message_counts
        assert bag.topics["/camera/image_raw"] == "sensor_msgs/msg/Image"
        assert counts["/camera/image_raw"] >= 5 and counts["/ee_pose"] >= 5 and counts["/cmd/ee_delta"] >= 5
        _, _, _, image = next(bag.messages(["/camera/image_raw"]))
        assert (image.width, image.height, image.encoding) == (64, 64, "rgb8")
        assert len(image.data) == 64 * 64 * 3


def test_a_killed_recorder_leaves_a_partial_bag_that_recovers(probe, graph, workdir):
    from robot_app.bags import BagReader

    started = probe.call(Trigger, "recorder/start")
    assert started.success
    time.sleep(1.5)  # several flush periods
    graph["recorder"].send_signal(signal.SIGKILL)
    graph["recorder"].wait(10)
    partial = Path(started.message + ".partial")
    assert partial.is_dir() and not Path(started.message).exists()
    # A recorder started on the same directory completes what the killed one left.
    again = start_node("ros_nodes.recorder_node", "-p", f"output_dir:={workdir / 'bags'}", log=workdir / "recorder2.log")
    graph["recorder"] = again
    wait_for(lambda: Path(started.message).is_dir() and not partial.exists(), 30, "the partial bag to be recovered")
    with BagReader(started.message) as bag:
        assert bag.message_counts["/camera/image_raw"] >= 5
        assert sum(1 for _ in bag.messages(["/ee_pose"])) >= 5


def test_killing_the_policy_leaves_the_arm_halted_by_the_driver(probe, graph, task):
    probe.call(Trigger, Topics.RESET)
    probe.goal_pub.publish(image_to_msg(task.goal_image))
    t0 = time.monotonic()
    assert probe.call(Trigger, Topics.POLICY_START).success
    wait_for(lambda: len(probe.since(Topics.CMD_EE_DELTA, t0)) >= 8, 10, "the policy commanding the arm")
    moving = np.array([pose_xyz(m) for m in probe.since(Topics.EE_POSE, t0)])
    assert np.ptp(moving, axis=0).max() > 0.005, "the random policy should move the arm"
    graph["policy"].send_signal(signal.SIGKILL)
    graph["policy"].wait(10)
    time.sleep(1.0)  # twice the driver's command timeout
    t1 = time.monotonic()
    time.sleep(0.8)
    still = np.array([pose_xyz(m) for m in probe.since(Topics.EE_POSE, t1)])
    assert len(still) >= 4 and np.ptp(still, axis=0).max() < 1e-4, still


@pytest.fixture
def lone_policy(workdir, model, request):
    """A policy node in its own namespace, fed by the test instead of the sim."""
    ns = request.node.name.replace("test_", "")[:20]
    model_path = getattr(request, "param", None) or str(model)
    if model_path in request.fixturenames:  # the name of another fixture: the model it makes
        model_path = str(request.getfixturevalue(model_path))
    proc = start_node("ros_nodes.policy_node", "-r", f"__ns:=/{ns}", "-p", f"model_path:={model_path}",
                      "-p", "start_on_goal:=true", log=workdir / f"{ns}.log")
    p = Probe(f"{ns}_probe")
    p.listen(String, f"/{ns}/policy/status", qos.STATUS)
    p.listen(TwistStamped, f"/{ns}/cmd/ee_delta", qos.COMMAND)
    p.ns = ns
    for service in (Topics.POLICY_START, Topics.POLICY_STOP):  # tests time what follows a call
        p.connect(Trigger, f"/{ns}/{service}")
    yield p
    p.close()
    stop_node(proc)


def start_and_stream(p, task, seconds: float = 1.5) -> float:
    """Send the lone policy the task's goal (start_on_goal: it runs at once), then stream 10 Hz
    camera frames for `seconds`; returns when the stream began."""
    camera = p.node.create_publisher(Image, f"/{p.ns}/camera/image_raw", qos.SENSOR)
    goal = p.node.create_publisher(Image, f"/{p.ns}/goal_image", qos.LATCHED)
    wait_for(lambda: p.statuses(f"/{p.ns}/policy/status"), 20, "the lone policy node")
    goal.publish(image_to_msg(task.goal_image))
    t0 = time.monotonic()
    while time.monotonic() < t0 + seconds:
        camera.publish(image_to_msg(task.goal_image[::-1].copy(), p.node.get_clock().now().to_msg()))
        time.sleep(0.1)
    return t0


def test_stale_camera_stops_the_policy(lone_policy, task):
    p, ns = lone_policy, lone_policy.ns
    topic = f"/{ns}/policy/status"
    t0 = start_and_stream(p, task)
    assert len(p.since(f"/{ns}/cmd/ee_delta", t0)) >= 5
    stopped = wait_for(lambda: next((s for s in p.statuses(topic) if s["state"] == "stopped"), None), 5, "the stop")
    assert "camera stale" in stopped["reason"], stopped


@pytest.mark.parametrize("lone_policy", ["/nonexistent/model.onnx"], indirect=True)
def test_a_model_that_fails_to_load_keeps_the_node_up_and_refuses_start(lone_policy):
    p, ns = lone_policy, lone_policy.ns
    topic = f"/{ns}/policy/status"
    status = wait_for(lambda: p.statuses(topic), 20, "the status of the lone policy node")[-1]
    assert status["state"] == "error" and "/nonexistent/model.onnx" in status["reason"]
    result = p.call(Trigger, f"/{ns}/policy/start")
    assert result.success is False and "cannot start" in result.message


@pytest.fixture(scope="module")
def height_model(workdir) -> Path:
    return make_tiny_model(workdir / "height_models", name="height", height_input=True)


@pytest.mark.parametrize("lone_policy", ["height_model"], indirect=True)
def test_a_height_input_model_waits_for_ee_pose_then_acts(height_model, lone_policy, task):
    """A model that takes the end effector height does not act on a guessed one: no command
    before the first ee_pose, commands once it comes."""
    p, ns = lone_policy, lone_policy.ns
    camera = p.node.create_publisher(Image, f"/{ns}/camera/image_raw", qos.SENSOR)
    goal = p.node.create_publisher(Image, f"/{ns}/goal_image", qos.LATCHED)
    pose = p.node.create_publisher(PoseStamped, f"/{ns}/ee_pose", qos.SENSOR)
    topic = f"/{ns}/policy/status"
    wait_for(lambda: p.statuses(topic), 20, "the lone policy node")
    goal.publish(image_to_msg(task.goal_image))  # start_on_goal: runs at once
    wait_for(lambda: any(s["state"] == "running" for s in p.statuses(topic)), 10, "the run")

    def frames(seconds: float, with_pose: bool) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = p.node.get_clock().now().to_msg()
            if with_pose:
                msg = PoseStamped()
                msg.header.stamp, msg.pose.position.z = stamp, 0.12
                pose.publish(msg)
            camera.publish(image_to_msg(task.goal_image[::-1].copy(), stamp))
            time.sleep(0.1)

    t0 = time.monotonic()
    frames(1.0, with_pose=False)
    assert p.since(f"/{ns}/cmd/ee_delta", t0) == []
    assert p.statuses(topic)[-1]["state"] == "running", "waiting is not a failure"
    t1 = time.monotonic()
    frames(1.0, with_pose=True)
    assert len(p.since(f"/{ns}/cmd/ee_delta", t1)) >= 3


@pytest.fixture(scope="module")
def bc_model(workdir) -> Path:
    return make_tiny_bc_model(workdir / "bc_models")


@pytest.mark.parametrize("lone_policy", ["bc_model"], indirect=True)
def test_a_cloned_policy_is_not_stopped_by_its_score(bc_model, lone_policy, task):
    """A GCBC model's q is how close an action is to its own (near 1 at every step), not a
    probability of reaching the goal: the Q threshold must not end its run."""
    p, ns = lone_policy, lone_policy.ns
    t0 = start_and_stream(p, task)
    statuses = p.statuses(f"/{ns}/policy/status", t0)
    assert max(s["q_value"] or 0.0 for s in statuses) >= 0.9  # the default threshold would have stopped it
    assert len(p.since(f"/{ns}/cmd/ee_delta", t0)) >= 8
    assert not any(s["state"] == "reached" for s in statuses), statuses[-1]


@pytest.fixture(scope="module")
def proposing_task_model(workdir) -> Path:
    from task_model_fixtures import make_tiny_task_model

    out = workdir / "task_model"
    out.mkdir()
    make_tiny_task_model(out, base=make_tiny_bc_model(out))
    return out / "task_model.onnx"


@pytest.mark.parametrize("lone_policy", ["proposing_task_model"], indirect=True)
def test_a_task_model_proposes_its_goal_from_the_first_frame_and_acts(proposing_task_model, lone_policy, task, model):
    """A task model with a goal proposer needs no goal image: it is ready at once, and started,
    it finds the object in the first camera frame, says where, and drives the arm. Its proposal
    is the run's alone: a goal-image model switched in afterwards still waits for a goal image."""
    p, ns = lone_policy, lone_policy.ns
    topic = f"/{ns}/policy/status"
    p.listen(Image, f"/{ns}/policy/proposed_goal", qos.LATCHED)
    ready = wait_for(lambda: p.statuses(topic), 20, "the lone policy node")[-1]
    assert ready["state"] == "ready" and "proposes its goal" in ready["reason"], ready
    result = p.call(Trigger, f"/{ns}/policy/start")
    assert result.success, result.message
    camera = p.node.create_publisher(Image, f"/{ns}/camera/image_raw", qos.SENSOR)
    t0 = time.monotonic()
    while time.monotonic() < t0 + 1.5:
        camera.publish(image_to_msg(task.goal_image, p.node.get_clock().now().to_msg()))
        time.sleep(0.1)
    reasons = [s["reason"] for s in p.statuses(topic, t0)]
    assert any(r.startswith("goal proposed: object found at") for r in reasons), reasons
    assert len(p.since(f"/{ns}/cmd/ee_delta", t0)) >= 5
    proposed = msg_to_image(wait_for(lambda: p.latest(f"/{ns}/policy/proposed_goal"), 5, "the proposed goal"))
    bank = np.load(proposing_task_model.with_name("task_model_bank.npz"))["images"]
    index = int(next(r for r in reasons if r.startswith("goal proposed")).split("goal picture ")[1].split()[0])
    assert np.array_equal(proposed, bank[index])  # the very bank picture the status names

    assert p.call(Trigger, f"/{ns}/policy/stop").success
    assert set_model(p, ns, str(model)).successful
    switched = wait_for(lambda: [s for s in p.statuses(topic) if s["reason"].startswith("model switched")], 20,
                        "the model switch")[-1]
    assert switched["state"] == "idle" and "waiting for a goal image" in switched["reason"], switched


def set_model(probe, ns: str, path: str):
    """SetParameters on the lone policy's model_path over DDS, as the GUI sends it."""
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=path)
    request = SetParameters.Request(parameters=[RosParameter(name="model_path", value=value)])
    return probe.call(SetParameters, f"/{ns}/policy_node/set_parameters", request=request).results[0]


def test_model_path_switches_the_model_live_and_refuses_bad_ones(lone_policy, workdir, task):
    """Refused while running; switched when stopped (goal refitted to the new size); a
    missing model is refused with the reason, on the answer and on policy/status, and the
    node goes on with the model it had."""
    p, ns = lone_policy, lone_policy.ns
    other = make_tiny_model(workdir / "other_models", name="other", image_size=128, seed=1)
    topic = f"/{ns}/policy/status"
    camera = p.node.create_publisher(Image, f"/{ns}/camera/image_raw", qos.SENSOR)
    goal = p.node.create_publisher(Image, f"/{ns}/goal_image", qos.LATCHED)
    wait_for(lambda: p.statuses(topic), 20, "the lone policy node")
    streaming = threading.Event()
    streaming.set()

    def stream():  # a 10 Hz camera, so runs end by the test and not by the stale-camera stop
        while streaming.is_set():
            camera.publish(image_to_msg(task.goal_image[::-1].copy(), p.node.get_clock().now().to_msg()))
            time.sleep(0.1)

    feeder = threading.Thread(target=stream, daemon=True)
    feeder.start()
    try:
        goal.publish(image_to_msg(task.goal_image))  # start_on_goal: runs at once
        wait_for(lambda: any(s["state"] == "running" for s in p.statuses(topic)), 10, "the run")
        switch_while_running_stopped_and_bad(p, ns, other, topic)
    finally:
        streaming.clear()
        feeder.join(timeout=2)


def switch_while_running_stopped_and_bad(p, ns: str, other: Path, topic: str) -> None:
    result = set_model(p, ns, str(other))
    assert not result.successful and "running" in result.reason and "policy/stop" in result.reason
    assert p.call(Trigger, f"/{ns}/policy/stop").success

    t0 = time.monotonic()
    result = set_model(p, ns, str(other))
    assert result.successful, result.reason
    switched = status_after(p, t0, lambda s: "switched" in s["reason"], "the switch", topic=topic)
    assert switched["state"] == "ready" and "other.onnx (128px)" in switched["reason"], switched

    t1 = time.monotonic()
    result = set_model(p, ns, "/nonexistent/bad.onnx")
    assert not result.successful and "/nonexistent/bad.onnx" in result.reason and "other.onnx" in result.reason
    refused = status_after(p, t1, lambda s: "refused" in s["reason"], "the refusal", topic=topic)
    assert refused["reason"] == result.reason and refused["state"] == "ready", refused

    t2 = time.monotonic()  # the switched model drives: 64 px frames are scaled to its 128
    assert p.call(Trigger, f"/{ns}/policy/start").success
    wait_for(lambda: len(p.since(f"/{ns}/cmd/ee_delta", t2)) >= 3, 10, "commands from the switched model")


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "models" / "am_default.onnx").exists(),
                    reason="needs the shipped trained model models/am_default.onnx (train and export it first)")
def test_the_shipped_model_reaches_a_goal_through_the_graph(tmp_path):
    """Through the whole graph as `robot-app demo` runs it: one of three reach tasks at least."""
    from robot_app.commands import demo

    results = []
    for seed in range(3):
        results.append(demo.run_demo(model=None, seed=seed, out_dir=tmp_path / str(seed), gui=False))
        if results[-1].sim_success:
            break
    assert results[-1].sim_success, [r.line() for r in results]
