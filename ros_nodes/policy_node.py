"""The ONNX policy as a ROS 2 node: camera frame + goal image in, Servo-style commands out.

Each new camera frame (at most one per control period) is scored by CEM over the exported
Q-function, and the best action goes out as a TwistStamped in base_link plus a gripper
target: MoveIt Servo's input, so a real arm running Servo is driven by remapping
cmd/ee_delta onto its twist topic. The command's stamp is the stamp of the camera frame it
was computed from, so anyone listening can measure frame-to-command latency and a driver
can tell how old the observation behind a command is.

The node spins on rclpy's single-threaded executor and scores a frame inside its callback
(CEM takes about a millisecond). It used to run inference in its own callback group on a
MultiThreadedExecutor; under CPU load that executor went without serving the camera
subscription for up to 3 s at a time (rclpy's multi-threaded executor is known to starve
mutually exclusive groups), so frames went unanswered and runs stopped on a "stale"
camera the sim was publishing on time. Side by side, 60 s each with three busy processes
on two cores: 43 of 600 frames unanswered and a 0.56 s command gap with the
multi-threaded executor, 0 of 600 and 0.12 s with the single-threaded one. A model
switch loads inside the parameter callback, which blocks frames for that long; switches
are refused while running, so no run loses frames to one. The node refuses to act rather
than act blindly: without a loaded model (state "error", start refused), without a goal,
on a stale camera, past its step budget, when Q says the goal is reached, and on
policy/stop. Every stop says why on policy/status and sends one zero twist so the arm
stops at once instead of waiting for the driver's watchdog.

The model can be switched live by setting model_path (the GUI does when a user picks a
task): the new model is loaded and tried on one action beside the old one, and swapped in
only when that works and no run is going. A switch while running is refused rather than
stopping the run on the user's behalf: changing the network under a moving arm is a
decision for whoever pressed start, and policy/stop is one call away.

A task model that proposes its own goal (robot-app task-goals) needs no goal image: at the
run's first frame it finds the object, picks the grasp picture for that spot, says where on
policy/status and publishes the picture on policy/proposed_goal (latched), so the GUI and
anyone debugging a miss see what the arm is pursuing, not only a position.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_app.spec import (
    CAMERA_STALE_S,
    CONTROL_HZ,
    PANDA_GRIPPER,
    GripperJoints,
    RobotState,
    Topics,
)
from ros_nodes import qos
from ros_nodes.conversions import (
    ImageConversionError,
    action_to_twist,
    fit_image,
    image_to_msg,
    msg_to_image,
    stamp_to_ns,
)
from ros_nodes.params import change_refused, declare_checked
from ros_nodes.runner import run_node

PARAMETERS = {  # name -> typed default (config/*.yaml repeat them for users)
    "model_path": "",  # .onnx, its .json card, or a name in models/; settable while not running
    "q_threshold": 0.9,  # goal reached when the best action's Q is at least this
    "max_steps": 100,  # commands per run before giving up
    "camera_stale_s": CAMERA_STALE_S,  # stop when the newest frame is older than this
    "control_hz": CONTROL_HZ,  # at most one command per period, one per new frame
    "start_on_goal": False,  # start as soon as a goal is accepted (no policy/start needed)
    "gripper_joints": list(PANDA_GRIPPER.names),  # joint_states names whose summed position gives the gripper state
    "gripper_open": PANDA_GRIPPER.open_sum,  # ...that sum when open (the Panda's fingers: 0.08 m)
    "gripper_closed": PANDA_GRIPPER.closed_sum,  # ...and when closed; as `dataset build --gripper-*` read the bags
    "threads": 1,  # onnxruntime intra-op threads
    "seed": 0,  # CEM noise; reseeded at every start so runs repeat
}
RESTART_ONLY = ("threads",)
GRIPPER_PARAMETERS = ("gripper_joints", "gripper_open", "gripper_closed")
BURST = 2.0  # actions the rate limit may owe: absorbs a period of jitter in frame timing
RUNNING, READY, IDLE, REACHED, STOPPED, ERROR = "running", "ready", "idle", "reached", "stopped", "error"


def load_policy(path: str, threads: int, seed: int):
    """(policy, '') or (None, why not): a model that does not load leaves the node up.

    Beyond Policy.load's checks (card, hash, inputs and outputs), the model scores one
    action on blank images, so a graph that loads but cannot run is refused here and not
    in the middle of a run.
    """
    if not path:
        return None, "no model: set the model_path parameter"
    try:
        from robot_app.policy import Policy

        policy = Policy.load(path, threads=threads, seed=seed)
        policy.act_on_blank()
        return policy, ""
    except Exception as exc:  # any failure is reported on policy/status, never fatal
        return None, f"model {path} failed to load: {exc}"


FIRST_FRAME_GRACE_S = 10.0  # a camera not yet discovered is waited for this long before giving up

class PolicyNode(Node):
    def __init__(self, **node_kwargs):  # node_kwargs: Node's (context, parameter_overrides, ...)
        super().__init__("policy_node", **node_kwargs)
        declare_checked(self, PARAMETERS, self._validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.gripper_joints = self._gripper_with([])  # how joint_states give the gripper state (checked at declare)

        self._lock = threading.Lock()  # guards the run state below should a multi-threaded executor spin the node
        self.policy, why = load_policy(self._param("model_path"), self._param("threads"), self._param("seed"))
        self.goal: np.ndarray | None = None  # fitted to the model's image size
        self._goal_image: np.ndarray | None = None  # as received, to refit for a new model
        self.state, self.reason = (ERROR, why) if self.policy is None else self._idle_or_ready()
        # A task model's goal pictures for the run in progress, proposed from its first frame
        # (None until then). Kept apart from `goal`, the goal image received, which they never replace.
        self._proposed: np.ndarray | None = None
        self._switching = False  # a model is loading: start waits for it (lock held to change)
        self.step = 0
        self.q_value: float | None = None
        self.gripper: float | None = None  # measured, from joint_states
        self.ee_height: float | None = None  # measured, from ee_pose (for models that take it)
        self._grip_target = 0.0  # last commanded, the fallback without joint_states
        self._last_frame = -math.inf  # monotonic receive time of the newest camera frame
        self._tokens = BURST  # actions allowed now (token bucket refilled at control_hz by frame time)
        self._last_taken: float | None = None  # when the previous frame was taken (s, its stamp or receipt)
        self._started = -math.inf

        self.twist_pub = self.create_publisher(TwistStamped, Topics.CMD_EE_DELTA, qos.COMMAND)
        self.grip_pub = self.create_publisher(Float64, Topics.CMD_GRIPPER, qos.COMMAND)
        self.status_pub = self.create_publisher(String, Topics.POLICY_STATUS, qos.STATUS)
        # Latched, so a GUI opened mid-run still shows what the task model is pursuing.
        self.proposed_goal_pub = self.create_publisher(Image, Topics.PROPOSED_GOAL, qos.LATCHED)
        self.create_subscription(Image, Topics.IMAGE, self._on_frame, qos.SENSOR_LATEST)
        self.create_subscription(Image, Topics.GOAL_IMAGE, self._on_goal, qos.LATCHED)
        self.create_subscription(JointState, Topics.JOINT_STATES, self._on_joints, qos.SENSOR)
        self.create_subscription(PoseStamped, Topics.EE_POSE, self._on_pose, qos.SENSOR)
        self.create_service(Trigger, Topics.POLICY_START, self._on_start)
        self.create_service(Trigger, Topics.POLICY_STOP, self._on_stop)
        self.create_timer(0.05, self._watchdog)
        with self._lock:
            self._publish_status()
        log = self.get_logger().error if self.policy is None else self.get_logger().info
        log(self.reason if self.policy is None else f"policy ready: {self.policy.onnx_path} ({self.policy.image_size}px)")

    def _param(self, name: str):
        return self.get_parameter(name).value

    # -- parameters ---------------------------------------------------------------------
    def _validate(self, params) -> str:
        for param in params:
            name, value = param.name, param.value
            if name == "q_threshold" and not 0.0 < value <= 1.0:
                return f"q_threshold must be in (0, 1], got {value}"
            if name in ("max_steps", "threads") and value < 1:
                return f"{name} must be >= 1, got {value}"
            if name in ("camera_stale_s", "control_hz") and not value > 0:
                return f"{name} must be positive, got {value}"
        if any(p.name in GRIPPER_PARAMETERS for p in params):
            try:
                self._gripper_with(params)
            except ValueError as exc:
                return str(exc)
        return ""

    def _gripper_with(self, params) -> GripperJoints:
        """The gripper mapping with these parameter values, the others as they are: the three
        make one mapping, so each change is checked with the values it is not changing."""
        values = {**{n: self._param(n) for n in GRIPPER_PARAMETERS}, **{p.name: p.value for p in params}}
        return GripperJoints(tuple(values["gripper_joints"]), values["gripper_open"], values["gripper_closed"])

    def _on_set_parameters(self, params) -> SetParametersResult:
        reason = change_refused(params, RESTART_ONLY, self._validate)
        model = next((p.value for p in params if p.name == "model_path"), None)
        if not reason and model is not None:
            reason = self._switch_model(str(model))
        if not reason and any(p.name in GRIPPER_PARAMETERS for p in params):
            self.gripper_joints = self._gripper_with(params)
        return SetParametersResult(successful=not reason, reason=reason)

    def _switch_model(self, path: str) -> str:
        """Load `path` and swap it in when no run is going: '' on success, else why not.

        Loading happens outside the lock (camera frames and services keep being served);
        start is refused meanwhile, so the swap itself never meets a running policy.
        """
        with self._lock:
            if self.state == RUNNING:
                return self._refuse_model(path, "the policy is running; call policy/stop first")
            if self._switching:
                return self._refuse_model(path, "another model is still loading")
            self._switching = True
        try:
            policy, why = load_policy(path, self._param("threads"), self._param("seed"))
            with self._lock:
                if policy is None:
                    return self._refuse_model(path, why)
                said = self._install(policy)
        finally:
            with self._lock:
                self._switching = False
        self.get_logger().info(said)
        return ""

    def _refuse_model(self, path: str, why: str) -> str:
        """Say on policy/status why `path` was not taken (lock held); the old model stays."""
        keep = f"keeping {self.policy.onnx_path}" if self.policy is not None else "no model loaded"
        reason = f"model {path} refused: {why}; {keep}"
        self.reason = reason
        self._publish_status()
        self.get_logger().warn(reason)
        return reason

    def _install(self, policy) -> str:
        """Swap in a loaded policy (lock held, not running); the goal is refitted to its size."""
        self.policy = policy
        note = ""
        if self._goal_image is not None:
            try:
                self.goal, _ = fit_image(self._goal_image, policy.image_size, "goal image")
            except ImageConversionError as exc:
                self.goal, self._goal_image, note = None, None, f"; goal dropped: {exc}"
        self.state, waiting = self._idle_or_ready()
        self.reason = f"model switched to {policy.onnx_path} ({policy.image_size}px){note}; {waiting}"
        self._publish_status()
        return self.reason

    def _idle_or_ready(self) -> tuple[str, str]:
        """(state, reason) of a loaded model before a run: ready once it has a goal, or
        when it is a task model that proposes its own goal from the camera at start."""
        if self.policy.goal_proposer is not None:
            return READY, f"ready: task {self.policy.card.task!r} proposes its goal from the camera when started"
        if self.goal is not None:
            return READY, "ready"
        return IDLE, "waiting for a goal image"

    # -- status -------------------------------------------------------------------------
    def _publish_status(self) -> None:
        """Caller holds the lock, so status messages leave in the order states change."""
        status = {"state": self.state, "step": self.step, "q_value": self.q_value, "reason": self.reason}
        self.status_pub.publish(String(data=json.dumps(status)))

    def _stop(self, state: str, reason: str) -> None:
        """End the run (lock held): say why, and command zero velocity so the arm stops now."""
        self.state, self.reason = state, reason
        zero, _ = action_to_twist(np.zeros(5), self.get_clock().now().to_msg())
        self.twist_pub.publish(zero)
        self._publish_status()
        self.get_logger().info(f"{state}: {reason}")

    # -- inputs -------------------------------------------------------------------------
    def _on_goal(self, msg: Image) -> None:
        with self._lock:
            if self.policy is None:
                self.reason = f"goal image ignored: {self.reason}"
                self._publish_status()
                return
            try:
                received = msg_to_image(msg, colour_only=True, what="goal image")
                goal, note = fit_image(received, self.policy.image_size, "goal image")
            except ImageConversionError as exc:
                keep = "; keeping the previous goal" if self.goal is not None else ""
                self.reason = f"goal refused: {exc}{keep}"
                self.get_logger().warn(self.reason)
                self._publish_status()
                return
            self.goal, self._goal_image = goal, received
            if msg.encoding != "rgb8":
                note = f"converted from {msg.encoding}" + (f", {note}" if note else "")
            self.reason = "goal accepted" + (f" ({note})" if note else "")
            if self.state != RUNNING:
                self.state = READY
            self._publish_status()
            start = self.state == READY and self._param("start_on_goal")
        self.get_logger().info(self.reason)
        if start:
            self._start()

    def _on_joints(self, msg: JointState) -> None:
        gripper = self.gripper_joints
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index and index[n] < len(msg.position) for n in gripper.names):
            self.gripper = gripper.state([msg.position[index[n]] for n in gripper.names])

    def _on_pose(self, msg: PoseStamped) -> None:
        self.ee_height = float(msg.pose.position.z)

    def _robot_state(self, policy) -> RobotState | None:
        """What the model takes beside the image; None while a height-input model has no ee_pose yet."""
        if policy.card.height_input and self.ee_height is None:
            self.get_logger().warn(
                f"the model takes the end effector height: waiting for {Topics.EE_POSE} before acting",
                throttle_duration_sec=5.0,
            )
            return None
        return RobotState(self._gripper_state(), self.ee_height)

    def _gripper_state(self) -> float:
        if self.gripper is not None:
            return self.gripper
        self.get_logger().warn(
            f"no joint_states with {self._param('gripper_joints')}: using the last gripper command as its state",
            throttle_duration_sec=10.0,
        )
        return self._grip_target

    def _allowed(self, taken: float) -> bool:
        """Token bucket on frame time (lock held): at most control_hz actions a second on average.

        A camera at the control rate is answered frame by frame even when its timing jitters
        (a late frame then an early one); a faster camera is answered at the control rate.
        Frame time is the stamp, which transport delays do not jitter.
        """
        dt = 0.0 if self._last_taken is None else taken - self._last_taken
        self._last_taken = taken
        if dt < 0:  # the camera's clock jumped back (a replayed bag, sim time): start afresh
            self._tokens = 1.0
        self._tokens = min(BURST, self._tokens + max(dt, 0.0) * self._param("control_hz"))
        return self._tokens >= 1.0 - 1e-3  # float rounding of stamps must not skip a frame

    def _on_frame(self, msg: Image) -> None:
        """Act on this frame when running and the rate limit allows; publish the command."""
        now = time.monotonic()
        self._last_frame = now
        stamp_ns = stamp_to_ns(msg.header.stamp)
        taken = stamp_ns / 1e9 if stamp_ns else now
        with self._lock:
            if self.state != RUNNING or not self._allowed(taken):
                return
            policy = self.policy
            goal = self.goal if policy.goal_proposer is None else self._proposed
        try:
            image, _ = fit_image(msg_to_image(msg, colour_only=True, what="camera frame"), policy.image_size, "camera frame")
        except ImageConversionError as exc:
            with self._lock:
                if self.state == RUNNING:
                    self._stop(STOPPED, f"camera frame refused: {exc}")
            return
        state = self._robot_state(policy)
        if state is None:
            return
        if goal is None and policy.goal_proposer is not None:  # a task model at its run's first frame
            goal = self._propose_goal(policy, image)
            if goal is None:
                return
        try:
            action, q = policy.act(image, goal, state)
        except Exception as exc:  # a runtime failure ends the run, not the node
            with self._lock:
                if self.state == RUNNING:
                    self._stop(STOPPED, f"policy failed: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            if self.state != RUNNING or self.policy is not policy:  # stopped (or switched) meanwhile: send nothing
                return
            self._tokens -= 1.0
            self.q_value = round(float(q), 6)
            if policy.card.q_means_reached and q >= self._param("q_threshold"):
                self._stop(REACHED, f"goal reached: Q {q:.3f} >= {self._param('q_threshold')}")
                return
            stamp = msg.header.stamp if stamp_ns else self.get_clock().now().to_msg()
            twist, grip = action_to_twist(action, stamp, policy.card.action_scaling)
            self.twist_pub.publish(twist)
            self.grip_pub.publish(Float64(data=grip))
            self._grip_target = grip
            self.step += 1
            self.reason = ""
            if self.step >= self._param("max_steps"):
                why = (f"without reaching Q {self._param('q_threshold')}" if policy.card.q_means_reached
                       else f"(a {policy.card.algo} model's q scores actions, not the goal: it runs until the budget or policy/stop)")
                self._stop(STOPPED, f"step budget used up ({self.step} steps) {why}")
            else:
                self._publish_status()

    def _propose_goal(self, policy, image: np.ndarray) -> np.ndarray | None:
        """A task model's goal pictures for this run, from its first frame: where the object
        lies, and the bank pictures of grasps there (robot_app.goal_proposal). None if the run ended."""
        try:
            proposal = policy.goal_proposer.propose(image)
        except Exception as exc:  # a broken localiser ends the run, not the node
            with self._lock:
                if self.state == RUNNING:
                    self._stop(STOPPED, f"goal proposal failed: {type(exc).__name__}: {exc}")
            return None
        x, y = proposal.position
        with self._lock:
            if self.state != RUNNING or self.policy is not policy:
                return None
            self._proposed = proposal.goals
            self.reason = (f"goal proposed: object found at ({x:.3f}, {y:.3f}) m, goal picture {proposal.bank_index} "
                           f"of a grasp {100 * proposal.bank_distance_m:.1f} cm from it"
                           + (f", with the {len(proposal.goals) - 1} next nearest" if len(proposal.goals) > 1 else ""))
            self._publish_status()
            self.proposed_goal_pub.publish(image_to_msg(proposal.goal, self.get_clock().now().to_msg()))
        self.get_logger().info(self.reason)
        return proposal.goals

    def _watchdog(self) -> None:
        with self._lock:
            if self.state != RUNNING:
                return
            age = time.monotonic() - max(self._last_frame, self._started)
            limit = self._param("camera_stale_s")
            if self._last_frame == -math.inf:
                # Never had a frame: DDS discovery of the camera can take seconds after the
                # node starts, which is not a camera going stale; give it FIRST_FRAME_GRACE_S.
                if age > max(limit, FIRST_FRAME_GRACE_S):
                    self._stop(STOPPED, f"no camera frame at all in {age:.1f} s: is {Topics.IMAGE} published?")
            elif age > limit:
                self._stop(STOPPED, f"camera stale: no frame for {age:.2f} s (limit {limit} s)")

    # -- services -----------------------------------------------------------------------
    def _start(self) -> tuple[bool, str]:
        with self._lock:
            if self._switching:
                return False, "cannot start: a new model is loading; try again when policy/status says it switched"
            if self.policy is None:
                return False, f"cannot start: {self.reason}"
            proposes = self.policy.goal_proposer is not None  # a task model finds its own goal at the first frame
            if self.goal is None and not proposes:
                return False, "cannot start: no goal image yet (publish one on goal_image)"
            if self.state == RUNNING:
                return True, "already running"
            self._proposed = None
            self.policy.reseed(self._param("seed"))
            self.state, self.reason, self.step, self.q_value = RUNNING, "started", 0, None
            self._started, self._tokens, self._last_taken = time.monotonic(), BURST, None
            self._publish_status()
        self.get_logger().info("started")
        return True, "started"

    def _on_start(self, request, response):
        response.success, response.message = self._start()
        return response

    def _on_stop(self, request, response):
        with self._lock:
            if self.state == RUNNING:
                self._stop(STOPPED, "stopped by policy/stop")
                response.success, response.message = True, "stopped"
            else:
                response.success, response.message = True, f"not running ({self.state})"
        return response


def main(args=None) -> None:
    run_node("policy_node", PolicyNode, args)


if __name__ == "__main__":
    main()
