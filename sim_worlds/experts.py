"""Scripted experts for the goal suites: the play data's own skills, without noise, aimed at a task's goal.

A policy that scores 0% on a family leaves two questions a success rate cannot answer:
- Can the skills the play data was collected with solve the family's tasks within their
  step budgets at all? If they cannot, no learner is to blame. `solve` runs them from the
  task's start state with the noise and waypoint jitter set to zero and stops at the
  first step whose state passes the task's check.
- Where along the way does the policy part from them? robot_app.expert_agreement asks the
  policy for its action at every state of the expert's path, under the task's goal image,
  and compares, phase by phase (approach, descend, close, lift, ...).

The experts are the collectors' skills (sim_worlds.collectors: SkillScript, grasp_object,
place_held_object, push_object), not a second script:
reach is a move to the target, push is the push skill aimed at the goal place, grasp is
the grasp skill lifted to the goal height, rearrange is two pick-and-places, chain a
grasp and a place into the tray at the goal place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_app.world import Observation
from sim_worlds.collectors import SkillScript, grasp_object, place_held_object, push_object
from sim_worlds.goals import TRAY_FLOOR, GoalTask
from sim_worlds.panda_world import PandaWorld

RELEASE_ABOVE_TRAY = 0.07  # m: grasp-target height the tray skill lets go at (play draws 6-9 cm)
OPEN, CLOSED = -1.0, 1.0  # gripper commands (action[4])


@dataclass
class ExpertTrace:
    observations: list[Observation]  # T+1: the state before each action, then the last
    actions: np.ndarray  # (T, 5) float32, noise-free
    phases: list[str]  # (T,) the skill phase of each action
    success: bool  # the task's check passed within its step budget


def solve(world: PandaWorld, task: GoalTask, seed: int = 0) -> ExpertTrace:
    """Run the family's expert from the task's start state (world must hold the task's objects)."""
    world.set_state(task.start_state)
    script = SkillScript(world, np.random.default_rng(seed), task.max_steps, noise=0.0, jitter=0.0, stop=lambda: task.check(world))
    if not task.check(world):
        _EXPERTS[task.family](script, world, task)
    actions = np.stack(script.actions).astype(np.float32) if script.actions else np.zeros((0, 5), np.float32)
    return ExpertTrace(script.observations, actions, list(script.phases), bool(task.check(world)))


def _reach(s: SkillScript, w: PandaWorld, task: GoalTask) -> None:
    s.phase = "move"
    s.move_to(task.targets["ee"], OPEN, tol=0.01, limit=task.max_steps)


def _push_to_goal(s: SkillScript, w: PandaWorld, task: GoalTask) -> None:
    (name, target), = task.targets.items()
    offset = np.asarray(target[:2]) - w.object_positions()[name][:2]
    distance = float(np.linalg.norm(offset))
    push_object(s, w, name, offset / distance, distance, yaw=0.0)


def _grasp_to_goal(s: SkillScript, w: PandaWorld, task: GoalTask) -> None:
    (name, target), = task.targets.items()
    grasp_object(s, w, name, lift=float(target[2] - w.object_positions()[name][2]))


def _rearrange(s: SkillScript, w: PandaWorld, task: GoalTask) -> None:
    for name, target in task.targets.items():
        grasp_object(s, w, name)
        place_held_object(s, w, target[:2], w.rest_height(name))


def _chain(s: SkillScript, w: PandaWorld, task: GoalTask) -> None:
    (name, target), = task.targets.items()
    grasp_object(s, w, name)
    place_held_object(s, w, target[:2], RELEASE_ABOVE_TRAY + TRAY_FLOOR)


_EXPERTS = {
    "reach": _reach,
    "push": _push_to_goal,
    "grasp": _grasp_to_goal,
    "grasp-heldout": _grasp_to_goal,
    "rearrange": _rearrange,
    "chain": _chain,
}
