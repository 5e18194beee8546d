"""The world interface: what a robot (simulated or real) offers to collectors, evaluation
and the ROS 2 driver node.

A LeRobot-style robot abstraction: the sim world in `sim_worlds` implements it, and a real
arm could too, so the code that collects episodes, evaluates policies and drives the ROS
graph does not care which one is behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robot_app.spec import ACTION_DIM, CONTROL_HZ, IMAGE_SIZE, RobotState


@dataclass(frozen=True)
class ObservationSpec:
    image_shape: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 3)  # uint8 rgb8
    joint_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    dim: int = ACTION_DIM  # (vx, vy, vz, wz, grip), each in [-1, 1]
    low: float = -1.0
    high: float = 1.0
    control_hz: float = CONTROL_HZ


@dataclass
class Observation:
    """One control tick's view of the robot. Positions in metres in base_link."""

    image: np.ndarray  # uint8 H x W x 3
    gripper: float  # 0 open .. 1 closed
    ee_position: np.ndarray  # (3,)
    ee_orientation: np.ndarray  # quaternion (x, y, z, w)
    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    stamp: float  # seconds since the world's epoch (sim time for the simulator)
    info: dict = field(default_factory=dict)

    @property
    def state(self) -> RobotState:
        """What a policy takes beside the image: the gripper state and the end effector's height."""
        return RobotState(float(self.gripper), float(self.ee_position[2]))


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


class World(ABC):
    """A manipulator with a fixed RGB camera, driven at the control rate."""

    observation_spec: ObservationSpec
    action_spec: ActionSpec

    @abstractmethod
    def reset(self, seed: int | None = None) -> Observation:
        """Put the world in a fresh start state (randomised from `seed`) and observe it."""

    @abstractmethod
    def observe(self) -> Observation:
        """Observe without acting."""

    @abstractmethod
    def act(self, action: np.ndarray) -> Observation:
        """Apply a normalised action for one control period, then observe."""

    def halt(self) -> None:
        """Stop the arm where it is (watchdog, stop). Default: nothing to do."""
        return None

    @property
    def camera_intrinsics(self) -> CameraIntrinsics | None:
        return None

    def close(self) -> None:
        """Release resources. Safe to call twice."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
