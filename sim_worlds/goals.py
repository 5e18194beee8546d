"""Goal suites of design section 7: start state, target state, goal image, success check.

Every task is drawn from (family, suite seed, index) alone, and both of its states are built
by placing things directly (no physics is stepped), so the same seed gives the same states
and the same goal images bit for bit, in any process. Success is checked on simulator state,
never on pixels.

Families and their checks:
- reach: grasp target within 3 cm of the goal position;
- push: one object moved 8-15 cm on the table, back within 4 cm of its goal place, resting;
- grasp: a named object held between the fingers at least 5 cm above its rest height;
- rearrange: two objects moved, both within 4 cm of their goal places, resting;
- chain: an object put in the tray. No play episode does that in one go (lifting episodes
  end holding an object, "tray" episodes start holding one), so its path needs pieces of
  different logged episodes;
- grasp-heldout: like grasp, for the held-out object (design section 8).

The world a family runs in comes from world_for(family, image_size): the default cubes, plus
the held-out object for "grasp-heldout" only. make_suite builds its own world; run_goal_episode
takes one from world_for (a world with other objects is refused with a clear error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_app.spec import needs_heldout_world
from sim_worlds.panda_world import (
    DEFAULT_OBJECTS,
    HELDOUT_OBJECT,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    PandaWorld,
    in_tray,
    is_free_table_place,
    square_yaw,
    tray_place,
)

FAMILIES = ("reach", "push", "grasp", "rearrange", "chain", "grasp-heldout")
MAX_STEPS = {"reach": 30, "push": 60, "grasp": 50, "rearrange": 100, "chain": 80, "grasp-heldout": 50}
REACH_TOLERANCE = 0.03  # m
PLACE_TOLERANCE = 0.04  # m, in the table plane
HOLD_HEIGHT = 0.05  # m above the rest height
RESTING_SLACK = 0.02  # m: an object this close to its rest height lies on the table (or tray floor)
TRAY_FLOOR = 0.004  # m, the tray floor's thickness

ActFn = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


@dataclass
class GoalTask:
    family: str
    index: int
    seed: int  # the task's own seed (derived from the suite seed, family and index)
    start_state: dict
    goal_state: dict
    goal_image: np.ndarray  # uint8 HxWx3, rendered from goal_state
    max_steps: int
    targets: dict = field(default_factory=dict)  # what check() compares: {"ee": xyz} or {object: xyz}

    def check(self, world: PandaWorld) -> bool:
        """Success on simulator state (design section 7)."""
        if self.family == "reach":
            return bool(np.linalg.norm(world.ee_position() - self.targets["ee"]) < REACH_TOLERANCE)
        if self.family in ("grasp", "grasp-heldout"):
            return all(world.is_held(name, HOLD_HEIGHT) for name in self.targets)
        positions = world.object_positions()
        if self.family == "chain":
            return all(
                in_tray(positions[n]) and _resting(world, n, positions[n], TRAY_FLOOR) for n in self.targets
            )
        return all(  # push, rearrange
            np.linalg.norm(positions[n][:2] - np.asarray(t)[:2]) < PLACE_TOLERANCE
            and _resting(world, n, positions[n])
            for n, t in self.targets.items()
        )

    def distance(self, world: PandaWorld) -> float:
        """Mean distance (m) from each body check() looks at to where the goal has it.

        The end effector for reach, the target objects otherwise. A 0/1 success hides
        whether a policy that fails moves the cube toward its goal, leaves it, or knocks it
        away; this tells them apart.
        """
        if self.family == "reach":
            return float(np.linalg.norm(world.ee_position() - np.asarray(self.targets["ee"])))
        positions = world.object_positions()
        return float(np.mean([np.linalg.norm(positions[n] - np.asarray(t)) for n, t in self.targets.items()]))


@dataclass
class GoalResult:
    success: bool
    steps: int
    frames: list[np.ndarray]  # every observed image (start first) when recorded, else empty
    final_image: np.ndarray
    start_distance: float = float("nan")  # GoalTask.distance at the start, m
    final_distance: float = float("nan")  # and at the end


def world_for(family: str, image_size: int = 64, **kwargs) -> PandaWorld:
    """A world with the objects `family` needs: the default cubes, plus the held-out object
    for "grasp-heldout" only (the rest of the suite never shows it)."""
    _check_family(family)
    return PandaWorld(
        image_size=image_size, objects=DEFAULT_OBJECTS, heldout=needs_heldout_world(family), **kwargs
    )


def task_seed(family: str, seed: int, index: int) -> int:
    """A task's own seed: independent streams per (suite seed, family, index)."""
    return int(np.random.SeedSequence([int(seed), FAMILIES.index(family), int(index)]).generate_state(1)[0])


def make_suite(family: str, n: int, seed: int, image_size: int = 64) -> list[GoalTask]:
    """n tasks of one family; the same arguments give identical tasks, bit for bit."""
    _check_family(family)
    if n < 0:
        raise ValueError(f"make_suite: n must be >= 0, got {n}")
    world = world_for(family, image_size)
    try:
        return [_make_task(world, family, i, task_seed(family, seed, i)) for i in range(n)]
    finally:
        world.close()


def run_goal_episode(
    world: PandaWorld,
    task: GoalTask,
    act_fn: ActFn,
    max_steps: int | None = None,
    record_frames: bool = False,
) -> GoalResult:
    """Run act_fn from the task's start until its check succeeds or the step budget ends.

    act_fn(image uint8 HxWx3, goal uint8 HxWx3, state RobotState) -> action (5,) in [-1, 1].
    """
    if world.image_size != task.goal_image.shape[0]:
        raise ValueError(
            f"run_goal_episode: the world renders {world.image_size}x{world.image_size} but the task's goal image is {task.goal_image.shape[1]}x{task.goal_image.shape[0]}"
        )
    if set(world.object_names) != set(task.start_state["objects"]):
        raise ValueError(
            f"run_goal_episode: task {task.family}#{task.index} needs objects {sorted(task.start_state['objects'])}, "
            f"the world has {sorted(world.object_names)}; create it with sim_worlds.goals.world_for({task.family!r})"
        )
    budget = task.max_steps if max_steps is None else int(max_steps)
    obs = world.set_state(task.start_state)
    start_distance = task.distance(world)
    frames = [obs.image] if record_frames else []
    steps, success = 0, task.check(world)
    while not success and steps < budget:
        action = np.asarray(act_fn(obs.image, task.goal_image, obs.state), dtype=np.float64).reshape(-1)
        if action.shape != (5,) or not np.all(np.isfinite(action)):
            raise ValueError(f"run_goal_episode: act_fn must return 5 finite numbers, got {action!r}")
        obs = world.act(np.clip(action, -1.0, 1.0))
        steps += 1
        if record_frames:
            frames.append(obs.image)
        success = task.check(world)
    return GoalResult(bool(success), steps, frames, obs.image, start_distance, task.distance(world))


# --- building tasks ---
def _make_task(world: PandaWorld, family: str, index: int, seed: int) -> GoalTask:
    world.reset(seed)
    start = world.get_state()
    rng = np.random.default_rng([seed, 1])
    targets = _BUILDERS[family](world, rng)
    goal_image = world.observe().image
    task = GoalTask(family, index, seed, start, world.get_state(), goal_image, MAX_STEPS[family], targets)
    # Both halves of the contract, checked where the task is made rather than hoped for.
    if not task.check(world):
        raise RuntimeError(f"make_suite: {family}#{index}: the goal state fails its own check")
    world.set_state(start)
    if task.check(world):
        raise RuntimeError(f"make_suite: {family}#{index}: the start state already succeeds")
    return task


def _build_reach(world: PandaWorld, rng) -> dict:
    start = world.ee_position()
    while True:
        goal = rng.uniform(WORKSPACE_LOW + (0, 0, 0.03), WORKSPACE_HIGH)
        if np.linalg.norm(goal - start) > 0.08:
            break
    world.place_arm(goal, rng.uniform(-0.6, 0.6), grip=0.0)
    return {"ee": world.ee_position().tolist()}


def _build_push(world: PandaWorld, rng) -> dict:
    name = str(rng.choice(world.object_names))
    xy = _moved_place(world, rng, name, [])
    _hover_after(world, rng, xy, grip=1.0)
    return {name: world.object_positions()[name].tolist()}


def _build_rearrange(world: PandaWorld, rng) -> dict:
    names = [str(n) for n in rng.choice(world.object_names, size=2, replace=False)]
    moved: list = []
    for name in names:
        moved.append(_moved_place(world, rng, name, moved))
    _hover_after(world, rng, moved[-1], grip=0.0)
    positions = world.object_positions()
    return {n: positions[n].tolist() for n in names}


def _build_grasp(world: PandaWorld, rng, name: str | None = None) -> dict:
    name = name or str(rng.choice([n for n in world.object_names if n != HELDOUT_OBJECT]))
    position = world.object_positions()[name]
    lift = (position[0], position[1], rng.uniform(0.12, 0.2))
    world.place_held(name, lift, square_yaw(world.object_yaw(name)))
    return {name: world.object_positions()[name].tolist()}


def _build_grasp_heldout(world: PandaWorld, rng) -> dict:
    return _build_grasp(world, rng, HELDOUT_OBJECT)


def _build_chain(world: PandaWorld, rng) -> dict:
    name = str(rng.choice(world.object_names))
    xy = tray_place(rng, 0.4)
    world.place_object(
        name, (xy[0], xy[1], world.rest_height(name) + TRAY_FLOOR), rng.uniform(-math.pi / 4, math.pi / 4)
    )
    _hover_after(world, rng, xy, grip=0.0)
    return {name: world.object_positions()[name].tolist()}


_BUILDERS = {
    "reach": _build_reach,
    "push": _build_push,
    "grasp": _build_grasp,
    "rearrange": _build_rearrange,
    "chain": _build_chain,
    "grasp-heldout": _build_grasp_heldout,
}


def _moved_place(world: PandaWorld, rng, name: str, taken: list) -> np.ndarray:
    """Move `name` 8-15 cm to a free table place (away from the others and from `taken`)."""
    positions = world.object_positions()
    start = positions[name][:2]
    others = [p for n, p in positions.items() if n != name] + list(taken)
    for _ in range(500):
        angle = rng.uniform(0, 2 * math.pi)
        xy = start + rng.uniform(0.08, 0.15) * np.array([math.cos(angle), math.sin(angle)])
        if is_free_table_place(xy, others):
            world.place_object(
                name, (xy[0], xy[1], world.rest_height(name)), rng.uniform(-math.pi / 4, math.pi / 4)
            )
            return xy
    raise RuntimeError(f"make_suite: found no free place to move {name} to")


def _hover_after(world: PandaWorld, rng, xy, grip: float) -> None:
    """The arm where the scripted skill leaves it: a little above the place it just worked."""
    above = (xy[0] + rng.normal(0, 0.02), xy[1] + rng.normal(0, 0.02), rng.uniform(0.1, 0.16))
    world.place_arm(above, rng.uniform(-0.6, 0.6), grip=grip)


def _resting(world: PandaWorld, name: str, position, floor: float = 0.0) -> bool:
    return bool(position[2] < world.rest_height(name) + floor + RESTING_SLACK)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown goal family {family!r}; known: {FAMILIES}")
