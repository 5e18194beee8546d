"""Synthetic episodes shaped like sim_worlds.collectors.Episode, for bag and dataset tests.

They let the bag and dataset code be tested without the simulator: images with structure
(so a resize is checkable), Panda joint names with the finger joints, actions in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_app.world import Observation

JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")


@dataclass
class SyntheticEpisode:
    observations: list
    actions: np.ndarray
    task: str = "play"
    success: bool | None = None
    behaviours: list = field(default_factory=lambda: ["synthetic"])


def synthetic_episode(
    steps: int = 8, size: int = 64, seed: int = 0, success: bool | None = None
) -> SyntheticEpisode:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    observations = []
    for t in range(steps + 1):
        image = np.stack(
            [(xx * 4 + t) % 256, (yy * 4) % 256, np.full_like(xx, (seed * 37 + t * 11) % 256)], -1
        )
        fingers = rng.uniform(0.0, 0.04, size=2)
        positions = np.concatenate([rng.uniform(-1, 1, 7), fingers])
        observations.append(
            Observation(
                image=image.astype(np.uint8),
                gripper=float(1.0 - fingers.sum() / 0.08),
                ee_position=rng.uniform(-0.5, 0.5, 3),
                ee_orientation=np.array([1.0, 0.0, 0.0, 0.0]),
                joint_names=JOINT_NAMES,
                joint_positions=positions,
                joint_velocities=rng.normal(size=9),
                stamp=0.1 * t,
            )
        )
    actions = rng.uniform(-1, 1, size=(steps, 5)).astype(np.float32)
    task = "play" if success is None else "grasp-heldout"
    return SyntheticEpisode(observations=observations, actions=actions, task=task, success=success)
