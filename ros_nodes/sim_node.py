"""The sim world as a robot driver: what a real arm's ROS 2 driver offers, from pybullet.

Publishes the camera, its calibration, joint states and the end-effector pose at the
control rate, and obeys end-effector velocity commands in base_link (MoveIt Servo's
TwistStamped) and gripper targets. Like a real driver it is the last line of safety: when
commands stop for `command_timeout_s` it halts the arm itself, whatever happened to the
node that was commanding it; commands beyond the arm's speed limits are clipped to them
and the world keeps the end effector inside its workspace.

With a goal task set (`goal_family`, `goal_seed`, `goal_index`), `reset` puts the world
in that task's start state and `sim/success` reports the task's success check on
simulator state every tick, which is what `robot-app demo` and evaluation rely on. It is
not `task/success`, the episode label a person gives when recording: the label must be the
last word in a bag, and a check every tick would come after it.
"""

from __future__ import annotations

import importlib
import math
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from robot_app.spec import (
    BASE_FRAME,
    CAMERA_FRAME,
    COMMAND_TIMEOUT_S,
    CONTROL_HZ,
    DEFAULT_SCALING,
    IMAGE_SIZE,
    SUPPORTED_IMAGE_SIZES,
    Topics,
    needs_heldout_world,
)
from ros_nodes import qos
from ros_nodes.conversions import image_to_msg, twist_to_action
from ros_nodes.params import change_refused, declare_checked
from ros_nodes.runner import run_node

# `world` parameter: a short name, or "module:factory" for any World implementation.
WORLDS = {"panda": "sim_worlds.panda_world:PandaWorld"}
PARAMETERS = {  # name -> typed default (config/sim.yaml repeats them for users)
    "world": "panda",  # a name in WORLDS or "module:factory"
    "image_size": IMAGE_SIZE,  # camera frames, 64 or 128
    "seed": 0,  # start-state randomisation of `reset` without a goal task
    "heldout": False,  # the world variant with held-out objects
    "control_hz": CONTROL_HZ,  # one world step and one camera frame per period
    "command_timeout_s": COMMAND_TIMEOUT_S,  # halt when commands stop for this long
    "goal_family": "",  # goal-suite family whose task `reset` restores ("" = none)
    "goal_seed": 0,  # the suite's seed
    "goal_index": 0,  # which task of the suite
}
RESTART_ONLY = ("world", "image_size", "heldout")  # fixed once the world is built


def make_world(spec: str, image_size: int, seed: int, heldout: bool):
    """Build the World named by `spec`; ValueError naming the spec when it cannot be found."""
    module_name, _, attr = WORLDS.get(spec, spec).partition(":")
    if not attr:
        raise ValueError(f"world {spec!r}: expected one of {sorted(WORLDS)} or 'module:factory'")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if factory is None:
        raise ValueError(f"world {spec!r}: {module_name} has no {attr}")
    return factory(image_size=image_size, seed=seed, heldout=heldout)


def load_task(family: str, seed: int, index: int, image_size: int):
    """The goal-suite task whose start state `reset` restores (None without a family)."""
    if not family:
        return None
    from sim_worlds.goals import make_suite

    return make_suite(family, index + 1, seed, image_size)[index]


class SimNode(Node):
    def __init__(self, **node_kwargs):  # node_kwargs: Node's (context, parameter_overrides, ...)
        super().__init__("sim_node", **node_kwargs)
        declare_checked(self, PARAMETERS, self._validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        p = self._param
        self.world = make_world(p("world"), p("image_size"), p("seed"), p("heldout"))
        self.task = None
        self._grip_target = 0.0
        self._twist: np.ndarray = np.zeros(4)  # vx, vy, vz, wz as normalised action parts
        self._last_command = -math.inf  # monotonic time of the newest twist or gripper command
        self._halted = True

        self.image_pub = self.create_publisher(Image, Topics.IMAGE, qos.SENSOR)
        self.info_pub = self.create_publisher(CameraInfo, Topics.CAMERA_INFO, qos.SENSOR)
        self.joint_pub = self.create_publisher(JointState, Topics.JOINT_STATES, qos.SENSOR)
        self.pose_pub = self.create_publisher(PoseStamped, Topics.EE_POSE, qos.SENSOR)
        self.success_pub = self.create_publisher(Bool, Topics.SIM_SUCCESS, qos.COMMAND)
        self.create_subscription(TwistStamped, Topics.CMD_EE_DELTA, self._on_twist, qos.COMMAND)
        self.create_subscription(Float64, Topics.CMD_GRIPPER, self._on_gripper, qos.COMMAND)
        self.create_service(Trigger, Topics.RESET, self._on_reset)

        self.observation = self._reset()
        self.camera_info = self._camera_info()
        self.timer = self.create_timer(1.0 / p("control_hz"), self._tick)
        self.get_logger().info(f"sim ready: world {p('world')}, {p('image_size')}px, {self._task_text()}")

    def _param(self, name: str):
        return self.get_parameter(name).value

    # -- parameters ---------------------------------------------------------------------
    def _validate(self, params) -> str:
        """'' when the values are acceptable, otherwise why not."""
        for param in params:
            name, value = param.name, param.value
            if name == "image_size" and value not in SUPPORTED_IMAGE_SIZES:
                return f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {value}"
            if name in ("control_hz", "command_timeout_s") and not value > 0:
                return f"{name} must be positive, got {value}"
            if name in ("goal_index", "goal_seed") and value < 0:
                return f"{name} must be >= 0, got {value}"
        # The held-out family's tasks need the world variant that has the object; the other world
        # refuses it deep inside, at the first reset, with no word about this parameter.
        given = {param.name: param.value for param in params}
        family, heldout = (given.get(name, self._param(name)) for name in ("goal_family", "heldout"))
        if needs_heldout_world(family) and not heldout:
            return f"goal_family {family} needs heldout: true (the world variant with the held-out object)"
        return ""

    def _on_set_parameters(self, params) -> SetParametersResult:
        reason = change_refused(params, RESTART_ONLY, self._validate)
        if not reason:
            for param in params:
                if param.name == "control_hz":
                    self.timer.timer_period_ns = int(1e9 / param.value)
        return SetParametersResult(successful=not reason, reason=reason)

    # -- commands -----------------------------------------------------------------------
    def _on_twist(self, msg: TwistStamped) -> None:
        frame = msg.header.frame_id
        if frame not in ("", BASE_FRAME):
            self.get_logger().warn(f"cmd/ee_delta in frame {frame!r} ignored: only {BASE_FRAME} is supported",
                                   throttle_duration_sec=5.0)
            return
        values = (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z, msg.twist.angular.z)
        if not all(math.isfinite(v) for v in values):
            self.get_logger().warn("cmd/ee_delta with a non-finite value ignored", throttle_duration_sec=5.0)
            return
        self._twist = twist_to_action(msg, self._grip_target, DEFAULT_SCALING)[:4].astype(np.float64)
        self._last_command = time.monotonic()

    def _on_gripper(self, msg: Float64) -> None:
        if not math.isfinite(msg.data):
            self.get_logger().warn("cmd/gripper with a non-finite value ignored", throttle_duration_sec=5.0)
            return
        self._grip_target = float(np.clip(msg.data, 0.0, 1.0))
        self._last_command = time.monotonic()

    # -- control loop -------------------------------------------------------------------
    def _tick(self) -> None:
        """One control period: obey the command in force, or hold still when commands stopped."""
        if time.monotonic() - self._last_command <= self._param("command_timeout_s"):
            self._halted = False
            action = np.append(self._twist, 2.0 * self._grip_target - 1.0)
            self.observation = self.world.act(action)
        else:
            if not self._halted:
                self.world.halt()
                self._twist = np.zeros(4)
                self._halted = True
                self.get_logger().info(f"no command for {self._param('command_timeout_s')} s: arm halted")
            self.observation = self.world.observe()
        self._publish(self.observation)

    def _publish(self, obs) -> None:
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_to_msg(obs.image, stamp, CAMERA_FRAME))
        self.camera_info.header.stamp = stamp
        self.info_pub.publish(self.camera_info)
        joints = JointState()
        joints.header.stamp = stamp
        joints.header.frame_id = BASE_FRAME
        joints.name = list(obs.joint_names)
        joints.position = [float(v) for v in obs.joint_positions]
        joints.velocity = [float(v) for v in obs.joint_velocities]
        self.joint_pub.publish(joints)
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = BASE_FRAME
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in obs.ee_position)
        q = pose.pose.orientation
        q.x, q.y, q.z, q.w = (float(v) for v in obs.ee_orientation)
        self.pose_pub.publish(pose)
        if self.task is not None:
            self.success_pub.publish(Bool(data=bool(self.task.check(self.world))))

    def _camera_info(self) -> CameraInfo:
        info = CameraInfo()
        info.header.frame_id = CAMERA_FRAME
        intr = self.world.camera_intrinsics
        if intr is None:
            return info
        info.width, info.height = intr.width, intr.height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    # -- reset --------------------------------------------------------------------------
    def _task_text(self) -> str:
        if self.task is None:
            return f"random start (seed {self._param('seed')})"
        return f"{self.task.family} task {self.task.index} (suite seed {self._param('goal_seed')}) start state"

    def _reset(self):
        """Fresh world; the goal task's start state when one is set. Drops commands in force."""
        p = self._param
        self.task = load_task(p("goal_family"), p("goal_seed"), p("goal_index"), p("image_size"))
        obs = self.world.reset(p("seed"))
        if self.task is not None:
            self.world.set_state(self.task.start_state)
            obs = self.world.observe()
        self._twist = np.zeros(4)
        self._grip_target = float(obs.gripper)
        self._last_command = -math.inf
        self._halted = True
        return obs

    def _on_reset(self, request, response):
        try:
            self.observation = self._reset()
        except Exception as exc:  # a bad goal-suite parameter must not kill the driver
            response.success, response.message = False, f"reset failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, f"reset to {self._task_text()}"
        self.get_logger().info(response.message)
        return response

    def destroy_node(self):
        self.world.close()
        return super().destroy_node()


def main(args=None) -> None:
    run_node("sim_node", SimNode, args, fatal=(ValueError, ImportError))  # a bad parameter or a missing world


if __name__ == "__main__":
    main()
