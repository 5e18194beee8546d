"""The GUI's rclpy node, spun in its own thread so the window never waits on ROS.

Qt owns the main thread. The node lives in a private rclpy Context with a single-threaded
executor spinning in a daemon thread; everything it learns reaches Qt through signals
(queued across threads by Qt). Camera frames are handed over "latest wins": the ROS side
keeps only the newest frame and signals once until the GUI has taken it, so a slow repaint
never builds a backlog. Services are called asynchronously with a deadline, so a node
that vanishes mid-call shows up as a message, not as a frozen button.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import rclpy
from geometry_msgs.msg import TwistStamped
from PyQt6.QtCore import QObject, pyqtSignal
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import Trigger

from robot_app.spec import IMAGE_SIZE, Topics
from ros_nodes import qos
from ros_nodes.conversions import action_to_twist, image_to_msg, msg_to_image

HEALTH_PERIOD_S = 0.5
RATE_WINDOW_S = 2.0  # message rates are counted over this window

# Parameters of the GUI node: topic and service names (remappable as usual too).
PARAMETERS = {
    "camera_topic": Topics.IMAGE,
    "status_topic": Topics.POLICY_STATUS,
    "goal_topic": Topics.GOAL_IMAGE,
    "proposed_goal_topic": Topics.PROPOSED_GOAL,
    "cmd_ee_delta_topic": Topics.CMD_EE_DELTA,
    "cmd_gripper_topic": Topics.CMD_GRIPPER,
    "reset_service": Topics.RESET,
    "start_service": Topics.POLICY_START,
    "stop_service": Topics.POLICY_STOP,
    "record_start_service": Topics.RECORDER_START,  # recorder_node's
    "record_stop_service": Topics.RECORDER_STOP,
    "task_success_topic": Topics.TASK_SUCCESS,  # an episode's label, recorded into its bag before it is finished
    "recorder_status_topic": Topics.RECORDER_STATUS,
    "policy_node": "policy_node",  # whose parameter is set when a task is chosen
    "policy_model_parameter": "model_path",  # policy_node's parameter naming its model
    "image_size": IMAGE_SIZE,  # goal size until the first camera frame says otherwise
    "service_timeout_s": 5.0,
}
SERVICE_ROLES = ("start", "stop", "reset", "record", "finish")


@dataclass
class TopicHealth:
    """What the window says about one topic or service."""

    role: str  # "camera", "status", "commands", "start", ...
    name: str  # fully resolved name
    publishers: int  # publishers on a topic, or 1/0 for a service's availability
    age_s: float | None = None  # since the last message; None: never received
    rate_hz: float = 0.0
    is_service: bool = False
    streaming: bool = False  # a stream (camera) is alive only while messages keep coming

    @property
    def alive(self) -> bool:
        """Camera: a message within 2 s. Status and commands are sent on events (a policy
        that waits is silent), so for them and for services a publisher or server is enough."""
        if self.streaming:
            return self.age_s is not None and self.age_s < 2.0
        return self.publishers > 0


class _Watch:
    """Arrival times of one topic's messages, for its age and rate."""

    def __init__(self):
        self.times: deque[float] = deque(maxlen=512)
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.times.append(time.monotonic())

    def age_and_rate(self, now: float) -> tuple[float | None, float]:
        with self.lock:
            if not self.times:
                return None, 0.0
            recent = sum(1 for t in self.times if now - t <= RATE_WINDOW_S)
            return now - self.times[-1], recent / RATE_WINDOW_S


class GuiNode(Node):
    """Subscribes to camera, status and commands; publishes the goal; calls the services."""

    def __init__(self, bridge: RosBridge, context: Context, namespace: str = "", node_name: str = "gui_node"):
        super().__init__(node_name, namespace=namespace, context=context)
        self.bridge = bridge
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.image_size = int(p["image_size"])
        self.service_timeout_s = float(p["service_timeout_s"])
        if self.image_size < 1 or self.service_timeout_s <= 0:
            raise ValueError(
                f"image_size ({self.image_size}) and service_timeout_s ({self.service_timeout_s}) must be positive"
            )
        self.policy_model_parameter = str(p["policy_model_parameter"])
        self.watches = {role: _Watch() for role in ("camera", "status", "commands")}
        self.topic_names = {
            "camera": self.resolve_topic_name(p["camera_topic"]),
            "status": self.resolve_topic_name(p["status_topic"]),
            "commands": self.resolve_topic_name(p["cmd_ee_delta_topic"]),
            "goal": self.resolve_topic_name(p["goal_topic"]),
            "proposed_goal": self.resolve_topic_name(p["proposed_goal_topic"]),
        }
        self.create_subscription(Image, p["camera_topic"], self._on_image, qos.SENSOR)
        self.create_subscription(
            String, p["status_topic"], self._on_status, qos.COMMAND
        )  # reliable, volatile: matches latched too
        # Commands are only watched: best effort matches reliable and best-effort publishers alike.
        # The twist alone: each action also sends a gripper target, and counting both showed
        # twice the control rate.
        self.create_subscription(TwistStamped, p["cmd_ee_delta_topic"], self._on_command, qos.SENSOR)
        # Whoever sets the grip target (a policy, a teleop), the window's gripper toggle goes the other way.
        self.create_subscription(Float64, p["cmd_gripper_topic"], self._on_grip_command, qos.SENSOR)
        # Teleop: the same topics and QoS as the policy node's commands (gui/teleop.py).
        self.twist_pub = self.create_publisher(TwistStamped, p["cmd_ee_delta_topic"], qos.COMMAND)
        self.grip_pub = self.create_publisher(Float64, p["cmd_gripper_topic"], qos.COMMAND)
        self.goal_pub = self.create_publisher(Image, p["goal_topic"], qos.LATCHED)
        # Latched like the goal: a window opened mid-run still shows what a task model pursues.
        self.create_subscription(Image, p["proposed_goal_topic"], self._on_proposed_goal, qos.LATCHED)
        self.clients_by_role = {
            "start": self.create_client(Trigger, p["start_service"]),
            "stop": self.create_client(Trigger, p["stop_service"]),
            "reset": self.create_client(Trigger, p["reset_service"]),
            "record": self.create_client(Trigger, p["record_start_service"]),
            "finish": self.create_client(Trigger, p["record_stop_service"]),
        }
        self.label_pub = self.create_publisher(Bool, p["task_success_topic"], qos.COMMAND)
        self.create_subscription(String, p["recorder_status_topic"], self._on_recorder_status, qos.LATCHED)
        self.service_names = {
            role: self.resolve_service_name(c.srv_name) for role, c in self.clients_by_role.items()
        }
        self.set_params_client = self.create_client(SetParameters, f"{p['policy_node']}/set_parameters")
        self.pending: list[tuple[str, float, rclpy.task.Future]] = []
        self.pending_lock = threading.Lock()
        self._last_image_problem = ""
        self._last_problems: dict[str, str] = {}  # per status topic, the problem last reported
        self.create_timer(HEALTH_PERIOD_S, self._report_health)

    # --- incoming -------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self.watches["camera"].tick()
        try:
            image = msg_to_image(msg)
        except ValueError as exc:
            problem = f"camera {self.topic_names['camera']}: {exc}"
            if problem != self._last_image_problem:  # say it once, not 30 times a second
                self._last_image_problem = problem
                self.bridge.problem.emit(problem)
            return
        self._last_image_problem = ""
        self.bridge.offer_frame(image)

    def _on_proposed_goal(self, msg: Image) -> None:
        try:
            image = msg_to_image(msg)
        except ValueError as exc:
            self.bridge.problem.emit(f"proposed goal {self.topic_names['proposed_goal']}: {exc}")
            return
        self.bridge.proposed_goal.emit(image)

    def _on_status(self, msg: String) -> None:
        self.watches["status"].tick()
        status = self._json_object(msg, f"status {self.topic_names['status']}")
        if status is not None:
            self.bridge.status.emit(status)

    def _on_recorder_status(self, msg: String) -> None:
        status = self._json_object(msg, "recorder status", required={"recording": bool})
        if status is not None:
            self.bridge.recorder_status.emit(status)

    def _json_object(self, msg: String, what: str, required: dict | None = None) -> dict | None:
        """A status topic's JSON object, or None after saying once (not at every message) what is wrong."""
        try:
            status = json.loads(msg.data)
            if not isinstance(status, dict):
                raise ValueError(f"expected a JSON object, got {type(status).__name__}")
            for key, kind in (required or {}).items():
                if not isinstance(status.get(key), kind):
                    raise ValueError(f"{key!r} must be a {kind.__name__}")
        except ValueError as exc:
            problem = f"{what}: unreadable ({exc}): {msg.data[:80]!r}"
            if problem != self._last_problems.get(what):
                self._last_problems[what] = problem
                self.bridge.problem.emit(problem)
            return None
        return status

    def _on_command(self, _msg) -> None:
        self.watches["commands"].tick()

    def _on_grip_command(self, msg: Float64) -> None:
        if np.isfinite(msg.data):
            self.bridge.grip_command.emit(float(msg.data))

    # --- health and deadlines -------------------------------------------------------
    def _report_health(self) -> None:
        now = time.monotonic()
        health = {}
        for role, watch in self.watches.items():
            name = self.topic_names[role]
            age, rate = watch.age_and_rate(now)
            health[role] = TopicHealth(role, name, self._other_publishers(name), age, rate, streaming=role == "camera")
        for role, client in self.clients_by_role.items():
            name = self.service_names[role]
            health[role] = TopicHealth(role, name, int(client.service_is_ready()), is_service=True)
        self.bridge.health.emit(health)
        self._expire_calls(now)

    def _other_publishers(self, topic: str) -> int:
        """Publishers on a topic other than this window's own teleop: the window driving the arm
        does not make a missing policy or driver look alive."""
        return sum(1 for info in self.get_publishers_info_by_topic(topic)
                   if (info.node_name, info.node_namespace) != (self.get_name(), self.get_namespace()))

    def _expire_calls(self, now: float) -> None:
        with self.pending_lock:
            expired = [item for item in self.pending if now > item[1] and not item[2].done()]
            self.pending = [item for item in self.pending if not item[2].done() and item not in expired]
        for what, _, future in expired:
            future.cancel()
            self.bridge.service_result.emit(what, False, f"no answer within {self.service_timeout_s:g} s")

    def track(self, what: str, future) -> None:
        with self.pending_lock:
            self.pending.append((what, time.monotonic() + self.service_timeout_s, future))


class RosBridge(QObject):
    """Owns the GUI node and its spinning thread; the window talks to ROS only through this."""

    frame_ready = pyqtSignal()  # take it with latest_frame()
    status = pyqtSignal(dict)  # policy/status JSON
    recorder_status = pyqtSignal(dict)  # recorder/status JSON: recording, path, messages, last_written
    proposed_goal = pyqtSignal(object)  # the goal picture a task model proposed (np.ndarray)
    grip_command = pyqtSignal(float)  # a grip target someone sent on cmd/gripper (0 open .. 1 closed)
    health = pyqtSignal(dict)  # role -> TopicHealth, every HEALTH_PERIOD_S
    service_result = pyqtSignal(str, bool, str)  # what was called, success, message
    problem = pyqtSignal(str)  # something the user should read

    def __init__(self, namespace: str = "", ros_args: list[str] | None = None, node_name: str = "gui_node"):
        super().__init__()
        self._context = Context()
        rclpy.init(args=["gui", "--ros-args", *ros_args] if ros_args else None, context=self._context)
        try:
            self.node = GuiNode(self, self._context, namespace=namespace, node_name=node_name)
        except Exception:
            rclpy.shutdown(context=self._context)
            raise
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._frame_lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._frame_time = 0.0
        self._frame_signalled = False
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="ros-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self._context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except (ExternalShutdownException, rclpy.executors.ShutdownException):
                break
            except Exception as exc:  # a bad callback must not kill the ROS thread
                self.problem.emit(f"ROS: {type(exc).__name__}: {exc}")

    # --- frames: latest wins ------------------------------------------------------------
    def offer_frame(self, image: np.ndarray) -> None:
        with self._frame_lock:
            self._frame, self._frame_time = image, time.monotonic()
            signal = not self._frame_signalled
            self._frame_signalled = True
        if signal:
            self.frame_ready.emit()

    def latest_frame(self) -> tuple[np.ndarray | None, float]:
        """The newest camera frame (or None) and its arrival time (monotonic seconds)."""
        with self._frame_lock:
            self._frame_signalled = False
            return self._frame, self._frame_time

    @property
    def image_size(self) -> int:
        return self.node.image_size

    @property
    def goal_topic(self) -> str:
        return self.node.topic_names["goal"]

    # --- outgoing ---------------------------------------------------------------------
    def publish_goal(self, image: np.ndarray) -> None:
        self.node.goal_pub.publish(image_to_msg(image, stamp=self.node.get_clock().now().to_msg()))

    def send_twist(self, motion: np.ndarray) -> None:
        """Teleop: a normalised (vx, vy, vz, wz) as the policy node sends it, without a grip target."""
        twist, _ = action_to_twist(np.append(motion, 0.0), self.node.get_clock().now().to_msg())
        self.node.twist_pub.publish(twist)

    def send_grip(self, closed: bool) -> None:
        """Teleop: close or open the gripper (cmd/gripper 1 or 0)."""
        self.node.grip_pub.publish(Float64(data=1.0 if closed else 0.0))

    def label_episode(self, success: bool) -> None:
        """The episode being recorded succeeded or failed (task/success, what `dataset build` reads)."""
        self.node.label_pub.publish(Bool(data=bool(success)))

    def call_service(self, role: str) -> None:
        """Call a SERVICE_ROLES service; the answer arrives as service_result(role, ok, message)."""
        client = self.node.clients_by_role[role]
        if not client.service_is_ready():
            self.service_result.emit(
                role, False, f"service {self.node.service_names[role]} not available (is its node running?)"
            )
            return
        future = client.call_async(Trigger.Request())
        self.node.track(role, future)
        future.add_done_callback(lambda f: self._trigger_done(role, f))

    def _trigger_done(self, role: str, future) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            self.service_result.emit(role, False, f"failed: {future.exception()}")
            return
        response = future.result()
        self.service_result.emit(role, bool(response.success), response.message)

    def set_policy_model(self, model_path: str) -> None:
        """Ask the policy node to switch model (its parameter); answer via service_result."""
        what = "set model"
        client = self.node.set_params_client
        if not client.service_is_ready():
            self.service_result.emit(
                what,
                False,
                f"{self.node.resolve_service_name(client.srv_name)} not available (is the policy node running?)",
            )
            return
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(model_path))
        request = SetParameters.Request(
            parameters=[Parameter(name=self.node.policy_model_parameter, value=value)]
        )
        future = client.call_async(request)
        self.node.track(what, future)
        future.add_done_callback(lambda f: self._set_params_done(what, model_path, f))

    def _set_params_done(self, what: str, model_path: str, future) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            self.service_result.emit(what, False, f"failed: {future.exception()}")
            return
        results = future.result().results
        ok = bool(results) and all(r.successful for r in results)
        reason = "; ".join(r.reason for r in results if r.reason)
        self.service_result.emit(what, ok, f"{model_path}" + (f" ({reason})" if reason else ""))

    def shutdown(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self._context.ok():
            rclpy.shutdown(context=self._context)
