"""The shared vocabulary of robot_app: sizes, rates, topic names and the action scaling.

Everything that two parts of the system must agree on lives here, so the simulator, the
bag writer, the dataset builder, the trainer, the ONNX runtime and the ROS nodes cannot
drift apart. Nothing in this module imports ROS, torch or pybullet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

IMAGE_SIZE = 64  # default camera resolution (square, rgb8); 128 is the supported option
SUPPORTED_IMAGE_SIZES = (64, 128)
ACTION_DIM = 5  # (vx, vy, vz, wz, grip) in [-1, 1]
CONTROL_HZ = 10.0  # one action per camera frame
CONTROL_PERIOD_S = 1.0 / CONTROL_HZ
COMMAND_TIMEOUT_S = 0.5  # a driver halts the arm when commands stop for this long
CAMERA_STALE_S = 0.5  # the policy stops when the newest frame is older than this
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_optical_frame"


class Topics:
    """ROS 2 names of design section 2. All relative so a namespace applies."""

    IMAGE = "camera/image_raw"
    CAMERA_INFO = "camera/camera_info"
    JOINT_STATES = "joint_states"
    EE_POSE = "ee_pose"
    CMD_EE_DELTA = "cmd/ee_delta"
    CMD_GRIPPER = "cmd/gripper"
    GOAL_IMAGE = "goal_image"
    POLICY_STATUS = "policy/status"
    PROPOSED_GOAL = "policy/proposed_goal"  # the goal picture a task model chose for this run (latched)
    TASK_SUCCESS = "task/success"  # an episode's success label, from whoever judges it (the GUI's Stop buttons)
    # The sim's own success check of its goal task, every tick (demo, evaluation through the graph).
    # Not task/success: a live check there would land in recorded bags after the person's label and
    # override it (`dataset build` takes the last label).
    SIM_SUCCESS = "sim/success"
    RESET = "reset"
    POLICY_START = "policy/start"
    POLICY_STOP = "policy/stop"
    RECORDER_START = "recorder/start"  # recorder_node: open a new episode bag
    RECORDER_STOP = "recorder/stop"  # ...and finish it
    RECORDER_STATUS = "recorder/status"  # JSON: recording, path, messages, last_written (latched)


# Topics an episode log holds, with their ROS 2 message types (bag and dataset contract).
EPISODE_TOPICS: dict[str, str] = {
    Topics.IMAGE: "sensor_msgs/msg/Image",
    Topics.JOINT_STATES: "sensor_msgs/msg/JointState",
    Topics.EE_POSE: "geometry_msgs/msg/PoseStamped",
    Topics.CMD_EE_DELTA: "geometry_msgs/msg/TwistStamped",
    Topics.CMD_GRIPPER: "std_msgs/msg/Float64",
}
TASK_SUCCESS_TYPE = "std_msgs/msg/Bool"

# Panda finger joints, whose summed opening (0 .. 0.08 m) gives the gripper state.
FINGER_JOINT_NAMES = ("panda_finger_joint1", "panda_finger_joint2")
FINGER_MAX_OPENING_M = 0.08


@dataclass(frozen=True)
class ActionScaling:
    """Maps a normalised action in [-1, 1]^5 to physical commands and back.

    Stored in every model card, so a policy trained with one scaling is never run with
    another without anyone noticing.
    """

    max_linear_speed: float = 0.2  # m/s for |a| = 1 on vx, vy, vz
    max_angular_speed: float = 1.0  # rad/s for |a| = 1 on wz
    control_hz: float = CONTROL_HZ
    # The gripper only opens or closes (a4 = -1 or +1): true when every logged gripper
    # command of the training data was 0 or 1 (robot_app.store.Store.gripper_is_binary).
    binary_gripper: bool = False

    def settle(self, action: np.ndarray) -> np.ndarray:
        """The action as the robot carries it out: clipped, and with a binary gripper, a4 = +-1.

        A model trained on open/close commands only has never seen a half-closed command;
        its continuous output drifts there when the data disagree about closing (far from
        the object the logged command is open 93% of the time, not 100%). Executed as is,
        the half-closed hand shows in the gripper input on the next step and the model,
        which tends to keep the gripper as it sees it, closes fully in mid-air
        (BENCHMARKS.md, "The gripper command is binary"). Rounding to the nearer command
        keeps the policy inside the data's action space.
        """
        a = np.asarray(action)
        a = np.clip(a.astype(np.float64 if a.dtype == np.float64 else np.float32).reshape(ACTION_DIM), -1.0, 1.0)
        if self.binary_gripper:
            a[4] = 1.0 if a[4] > 0.0 else -1.0
        return a

    def to_command(self, action: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Return (linear velocity xyz in m/s, yaw rate in rad/s, grip target in [0, 1])."""
        a = self.settle(np.asarray(action, dtype=np.float64))
        linear = a[:3] * self.max_linear_speed
        yaw_rate = float(a[3] * self.max_angular_speed)
        grip = float((a[4] + 1.0) / 2.0)
        return linear, yaw_rate, grip

    def from_command(self, linear: np.ndarray, yaw_rate: float, grip: float) -> np.ndarray:
        """Inverse of to_command: recover the normalised action from logged commands."""
        a = np.empty(ACTION_DIM, dtype=np.float32)
        a[:3] = np.asarray(linear, dtype=np.float64) / self.max_linear_speed
        a[3] = yaw_rate / self.max_angular_speed
        a[4] = 2.0 * grip - 1.0
        return np.clip(a, -1.0, 1.0)

    def step_displacement(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """End-effector displacement (m) and yaw change (rad) over one control period."""
        linear, yaw_rate, _ = self.to_command(action)
        dt = 1.0 / self.control_hz
        return linear * dt, yaw_rate * dt

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ActionScaling:
        """Unknown keys are ignored; a missing binary_gripper (cards and stores before it) is False."""
        values = {k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__ and k != "binary_gripper"}
        flag = d.get("binary_gripper", False)
        if not isinstance(flag, bool):
            raise ValueError(f"binary_gripper must be true or false, got {flag!r}")
        return cls(**values, binary_gripper=flag)


DEFAULT_SCALING = ActionScaling()


@dataclass(frozen=True)
class GripperJoints:
    """Which joint_states entries give the gripper state, and how.

    The state is in [0, 1] with the command's convention, 0 open and 1 closed (design section
    3 calls it the opening; the command's sense lets an observed state and a commanded target
    compare directly). It is the sum of the named joints' positions mapped linearly from
    `open_sum` (0) to `closed_sum` (1) and clipped. The Panda's two finger joints sum to 0.08 m
    open and 0 closed (the default); a Robotiq 2F-85 driver's one `finger_joint` runs from
    0 rad open to about 0.8 closed (`--gripper-joints finger_joint --gripper-open 0
    --gripper-closed 0.8`). The dataset builder and the policy node must use the same mapping.
    """

    names: tuple[str, ...] = FINGER_JOINT_NAMES
    open_sum: float = FINGER_MAX_OPENING_M
    closed_sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.names or not all(isinstance(n, str) and n for n in self.names):
            raise ValueError(f"gripper joints: give at least one joint name, got {list(self.names)}")
        if not (np.isfinite(self.open_sum) and np.isfinite(self.closed_sum)) or self.open_sum == self.closed_sum:
            raise ValueError(f"gripper joints: the open ({self.open_sum}) and closed ({self.closed_sum}) "
                             "positions must be finite and differ")

    def state(self, positions) -> float:
        """The state from the named joints' positions, in `names` order."""
        total = float(np.sum(np.asarray(positions, dtype=np.float64)))
        return float(np.clip((total - self.open_sum) / (self.closed_sum - self.open_sum), 0.0, 1.0))

    def to_dict(self) -> dict:
        return {"names": list(self.names), "open_sum": self.open_sum, "closed_sum": self.closed_sum}


PANDA_GRIPPER = GripperJoints()


def gripper_state_from_fingers(finger_positions) -> float:
    """The Panda's gripper state from its two finger joints (GripperJoints, the default)."""
    return PANDA_GRIPPER.state(finger_positions)


class RobotState(NamedTuple):
    """The robot's own state a policy takes beside the camera image (its proprioception).

    QT-Opt's state was the image, the gripper status and the gripper's height above the
    floor. The height is what tells "close now" from "keep going down": one step before the
    grasp and at the grasp the 64x64 frames differ by a few pixels of a hand that hides the
    object, while the height differs by a centimetre (BENCHMARKS.md, "The close step,
    measured in the data"). A model says in its card whether it takes the height.
    """

    gripper: float  # 0 open .. 1 closed (gripper_state_from_fingers)
    ee_height: float | None = None  # grasp point's height in base_link, metres (ee_pose z)


EE_HEIGHT_SCALE_M = 0.25  # height / 0.25 m: the workspace's heights land in about [0, 1]


HELDOUT_TASK = "grasp-heldout"  # the fine-tuning task of design section 8: a collection task and a goal family


def needs_heldout_world(task_or_family: str) -> bool:
    """Whether a collection task or goal family runs in the world variant that has the held-out
    object (PandaWorld(heldout=True), sim_node's `heldout`): only the held-out task does, since
    the pretraining data and every other family must never show that object."""
    return task_or_family == HELDOUT_TASK


GRIPPER_CLOSED_ABOVE = 0.2  # measured gripper state (0 open .. 1 closed) above which it counts as closed; ~0.4 holding a cube
GRIPPER_EMPTY_ABOVE = 0.7  # closed on nothing: ~0.95 (play store: 12,870 frames in 0.3-0.4, 16,450 in 0.9-1.0, ~200 between)


def is_holding(gripper):
    """True where the measured gripper state says the fingers are closed on an object (stopped half way)."""
    return (gripper > GRIPPER_CLOSED_ABOVE) & (gripper < GRIPPER_EMPTY_ABOVE)


def gripper_switches(gripper, action):
    """(B,) bool: samples whose logged gripper command differs from the measured gripper state.

    numpy arrays or torch tensors alike: gripper (B, P) proprio with the gripper first, action (B, 5).

    Those are the moments a gripper closes on an object or lets it go: 1 logged step in 18 of
    the play data, while copying the measured state predicts the command on 94% of steps. A
    cloned policy can therefore fit the data by copying and never switch (measured by
    `robot-app eval --expert`). Weighting these samples up is the keyframe remedy for such
    copycat policies (Wen et al. 2021, "Keyframe-Focused Visual Imitation Learning").
    """
    return (action[:, 4] > 0) != (gripper[:, 0] > GRIPPER_CLOSED_ABOVE)


def proprio_width(height_input: bool) -> int:
    """Width of a network's proprio input (the ONNX `gripper` input): the gripper, and the height."""
    return 2 if height_input else 1


def proprio_vector(state, height_input: bool) -> np.ndarray:
    """The network's proprio input, float32 (1,) [gripper] or (2,) [gripper, height / 0.25 m].

    `state` is a RobotState (or any (gripper, ee_height) pair), or a bare gripper state for
    models that take only the gripper. Raises ValueError saying what is missing or wrong.
    """
    if isinstance(state, (tuple, list, np.ndarray)):
        gripper, height = (state[0], state[1] if len(state) > 1 else None) if len(state) else (None, None)
    else:
        gripper, height = state, None
    try:
        g = float(gripper)
    except (TypeError, ValueError):
        raise ValueError(f"gripper: expected a state in [0, 1], got {gripper!r}") from None
    if not 0.0 <= g <= 1.0:  # NaN fails it too
        raise ValueError(f"gripper: expected a state in [0, 1], got {gripper!r}")
    if not height_input:
        return np.array([g], np.float32)
    if height is None:
        raise ValueError("this model also takes the end effector's height: pass RobotState(gripper, ee_height_m)")
    h = float(height)
    if not np.isfinite(h):
        raise ValueError(f"ee_height: expected a finite height in metres, got {height!r}")
    return np.array([g, h / EE_HEIGHT_SCALE_M], np.float32)


def check_image(image: np.ndarray, size: int | None = None, what: str = "image") -> np.ndarray:
    """Validate an RGB uint8 HxWx3 image and return it; raise ValueError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what}: expected shape HxWx3, got {image.shape}")
    if size is not None and image.shape[:2] != (size, size):
        raise ValueError(f"{what}: expected {size}x{size}, got {image.shape[1]}x{image.shape[0]}")
    return image
