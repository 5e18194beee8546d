"""Scripted, noisy play collectors: episodes that need no reward.

Each play episode runs one main skill (reach, push, pick and place, lift, drop, carry into
the tray, carry to a table place, random motion) and fills the rest of its steps with
reaches and random motion. Waypoints are jittered and every action gets Gaussian noise, so
the data covers the workspace rather than one scripted path.

Behaviour is split across episodes on purpose, for goal chaining (design section 5): no
scripted skill takes an object from the table into the tray. Lifting episodes end with an
object in the hand; "tray" episodes start with an object already in the hand and put it in
the tray. Reaching the chain family's goals (an object in the tray, goals.py) therefore
needs pieces of two episodes. (Random motion can still let go of a lifted cube over the
tray by accident: 3 of 60 play episodes counted.)

The held-out object (panda_world.HELDOUT_OBJECT) is never in a play episode: play refuses a
world built with heldout=True. Its only data are the labelled "grasp-heldout" attempts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_app.spec import needs_heldout_world
from robot_app.world import Observation
from sim_worlds.panda_world import (
    HELDOUT_OBJECT,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    PandaWorld,
    is_free_table_place,
    square_yaw,
    tray_place,
)
from sim_worlds.play_objects import draw_play_objects

TASKS = ("play", "play-varied", "grasp-heldout")

# Main skill of a play episode and how often it is drawn.
PLAY_SKILLS = {
    "reach": 0.12,
    "push": 0.20,
    "pick_place": 0.16,
    "lift": 0.16,
    "drop": 0.08,
    "tray": 0.14,  # starts holding an object
    "carry": 0.06,  # starts holding an object
    "random": 0.08,
}
ACTION_NOISE = 0.2  # std of the Gaussian added to every xyz and yaw action
WAYPOINT_JITTER = 0.006  # m, std of the offset added to each scripted waypoint
HELDOUT_GRASP_JITTER = 0.02  # m, std of the aim error of a held-out grasp attempt
HELDOUT_YAW_JITTER = 0.5  # rad, std of its yaw error
HELDOUT_HEIGHT_JITTER = 0.02  # m, std of how far above the object it closes (too high: a miss)
STEP = 0.02  # m: the largest move of one control step (design section 3)


@dataclass
class Episode:
    observations: list[Observation]  # T+1 observations
    actions: np.ndarray  # (T, 5) float32, action t applied after observation t
    task: str  # "play" or "grasp-heldout"
    success: bool | None  # None for play, a label for grasp-heldout
    behaviours: list[str] = field(default_factory=list)  # which scripted skills ran
    seed: int = 0
    objects: dict[str, dict] = field(default_factory=dict)  # name -> ObjectKind.to_dict(), the scene's objects


class SkillScript:
    """Drives the world with noisy proportional control and records what it did.

    `noise` and `jitter` are the play data's by default; sim_worlds.experts runs the same
    skills with both at zero. Each step is recorded under the skill phase that took it
    ("approach", "descend", ...), and `stop` (checked after every step) ends the script
    early, e.g. once a goal task's check passes.
    """

    def __init__(
        self,
        world: PandaWorld,
        rng: np.random.Generator,
        max_steps: int,
        noise: float = ACTION_NOISE,
        jitter: float = WAYPOINT_JITTER,
        stop: Callable[[], bool] | None = None,
    ):
        self.world, self.rng, self.max_steps = world, rng, max_steps
        self.noise, self.jitter, self.stop = noise, jitter, stop
        self.observations = [world.observe()]
        self.actions: list[np.ndarray] = []
        self.phase = ""
        self.phases: list[str] = []
        self.stopped = False

    @property
    def left(self) -> int:
        return 0 if self.stopped else self.max_steps - len(self.actions)

    def step(self, action: np.ndarray) -> None:
        if self.left <= 0:
            return
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self.actions.append(a)
        self.phases.append(self.phase)
        self.observations.append(self.world.act(a))
        self.stopped = bool(self.stop is not None and self.stop())

    def move_to(
        self,
        target,
        grip: float,
        yaw: float | None = None,
        tol: float = 0.008,
        limit: int = 25,
        jitter: bool = True,
    ) -> bool:
        """Head for `target` (clamped to the workspace); True when reached within `tol`."""
        target = np.asarray(target, dtype=np.float64)
        if jitter:
            target = target + self.rng.normal(0.0, self.jitter, 3)
        target = np.clip(target, WORKSPACE_LOW, WORKSPACE_HIGH)
        for _ in range(limit):
            if self.left <= 0:
                return False
            error = target - self.world.ee_position()
            yaw_error = 0.0 if yaw is None else _wrap(yaw - self.world.ee_yaw())
            if np.linalg.norm(error) < tol and abs(yaw_error) < 0.05:
                return True
            a = np.zeros(5)
            a[:3] = np.clip(error / STEP, -1, 1) + self.rng.normal(0.0, self.noise, 3)
            a[3] = np.clip(yaw_error / 0.1, -1, 1) + self.rng.normal(0.0, self.noise)
            a[4] = grip
            self.step(a)
        return False

    def hold(self, grip: float, n: int) -> None:
        for _ in range(n):
            a = np.zeros(5)
            a[:4] = self.rng.normal(0.0, self.noise * 0.3, 4)
            a[4] = grip
            self.step(a)

    def random_motion(self, n: int) -> None:
        """Smoothed random actions with occasional gripper flips."""
        a = self.rng.uniform(-1, 1, 5)
        for _ in range(n):
            a[:4] = 0.7 * a[:4] + 0.3 * self.rng.uniform(-1, 1, 4)
            if self.rng.random() < 0.1:
                a[4] = -a[4]
            self.step(np.concatenate([a[:4], [1.0 if a[4] > 0 else -1.0]]))


# --- skills: each takes (script, world, rng) and returns the name it ran under ---
def grasp_object(
    s: SkillScript, w: PandaWorld, name: str, aim_error=(0.0, 0.0, 0.0), yaw_error: float = 0.0, lift: float | None = None
) -> None:
    """Top-down grasp: above the object with the fingers square to it, down, close, up.

    `lift`: how far above the object's centre to carry it (m); None draws 10-18 cm.
    """
    position = w.object_positions()[name] + np.asarray(aim_error, dtype=np.float64)
    yaw = square_yaw(w.object_yaw(name)) + yaw_error
    s.phase = "approach"
    s.move_to(position + (0, 0, 0.08), -1.0, yaw, tol=0.012)
    s.phase = "descend"
    s.move_to(position + (0, 0, -0.004), -1.0, yaw, tol=0.006, limit=10, jitter=False)
    s.phase = "close"
    s.hold(1.0, 3)
    s.phase = "lift"
    s.move_to(position + (0, 0, s.rng.uniform(0.10, 0.18) if lift is None else lift), 1.0, tol=0.015, limit=10)


def place_held_object(s: SkillScript, w: PandaWorld, xy, height: float) -> None:
    s.phase = "carry"
    s.move_to((xy[0], xy[1], height + 0.05), 1.0, tol=0.015)
    s.phase = "lower"
    s.move_to((xy[0], xy[1], height), 1.0, tol=0.01, limit=8)
    s.phase = "release"
    s.hold(-1.0, 2)
    s.phase = "retreat"
    s.move_to(w.ee_position() + (0, 0, 0.08), -1.0, limit=6)


def push_object(
    s: SkillScript, w: PandaWorld, name: str, direction: np.ndarray, distance: float | None = None, yaw: float | None = None
) -> None:
    """Closed fingers down behind the object, through it along `direction`, back up.

    `distance` (m) the object travels, None draws 5-15 cm; `yaw` None draws one.
    """
    start = w.object_positions()[name]
    behind = start[:2] - direction * 0.065
    s.phase = "approach"
    s.move_to((*behind, 0.09), 1.0, s.rng.uniform(-0.8, 0.8) if yaw is None else yaw, tol=0.015)
    s.phase = "lower"
    s.move_to((*behind, 0.02), 1.0, tol=0.01, limit=8)
    end = start[:2] + direction * (s.rng.uniform(0.05, 0.15) if distance is None else distance)
    s.phase = "push"
    s.move_to((*(end - direction * 0.03), 0.02), 1.0, tol=0.01, limit=12)
    s.phase = "retreat"
    s.move_to(w.ee_position() + (0, 0, 0.08), 1.0, limit=5)


def skill_reach(s, w, rng):
    for _ in range(rng.integers(1, 4)):
        s.move_to(
            rng.uniform(WORKSPACE_LOW, WORKSPACE_HIGH),
            rng.choice([-1.0, 1.0]),
            rng.uniform(-0.8, 0.8),
            limit=15,
        )
    return "reach"


def skill_push(s, w, rng):
    name = rng.choice(w.object_names)
    push_object(s, w, name, _unit(rng.uniform(0, 2 * math.pi)))
    return f"push:{name}"


def skill_pick_place(s, w, rng):
    name = rng.choice(w.object_names)
    grasp_object(s, w, name)
    place_held_object(s, w, _free_place(w, rng, name), w.rest_height(name))
    return f"pick_place:{name}"


def skill_lift(s, w, rng):
    name = rng.choice(w.object_names)
    grasp_object(s, w, name)
    for _ in range(rng.integers(1, 3)):
        s.move_to(
            rng.uniform(WORKSPACE_LOW + (0, 0, 0.08), WORKSPACE_HIGH), 1.0, rng.uniform(-0.8, 0.8), limit=12
        )
    return f"lift:{name}"


def skill_drop(s, w, rng):
    name = rng.choice(w.object_names)
    grasp_object(s, w, name)
    s.move_to((*_free_place(w, rng, name), rng.uniform(0.08, 0.18)), 1.0, tol=0.02)
    s.hold(-1.0, 2)
    return f"drop:{name}"


def skill_tray(s, w, rng):
    """Starts holding an object and puts it in the tray (the second half of a chain)."""
    name = _start_held(w, rng)
    s.observations[0] = w.observe()
    xy = tray_place(rng, 0.5)
    place_held_object(s, w, xy, rng.uniform(0.06, 0.09))
    return f"tray:{name}"


def skill_carry(s, w, rng):
    """Starts holding an object and puts it down somewhere on the table."""
    name = _start_held(w, rng)
    s.observations[0] = w.observe()
    place_held_object(s, w, _free_place(w, rng, name), w.rest_height(name))
    return f"carry:{name}"


def skill_random(s, w, rng):
    s.random_motion(int(rng.integers(10, 25)))
    return "random"


SKILLS = {
    "reach": skill_reach,
    "push": skill_push,
    "pick_place": skill_pick_place,
    "lift": skill_lift,
    "drop": skill_drop,
    "tray": skill_tray,
    "carry": skill_carry,
    "random": skill_random,
}


def collect_episode(world: PandaWorld, seed: int, task: str = "play", max_steps: int = 50) -> Episode:
    """One scripted episode of exactly `max_steps` steps from world.reset(seed).

    task "play": a random main skill then filler (success None), with the world's objects.
    task "play-varied": the same with this episode's own objects (sim_worlds.play_objects),
    which replace the world's. task "grasp-heldout": a noisy attempt to grasp and lift the
    held-out object, labelled at the end by a state check (world.is_held), succeeding
    roughly half the time.
    """
    if task not in TASKS:
        raise ValueError(f"collect_episode: unknown task {task!r}; known: {TASKS}")
    if max_steps < 1:
        raise ValueError(f"collect_episode: max_steps must be positive, got {max_steps}")
    if task.startswith("play") and HELDOUT_OBJECT in world.object_names:
        raise ValueError(
            f"collect_episode: play episodes must never contain the held-out object {HELDOUT_OBJECT!r}; use PandaWorld(heldout=False)"
        )
    if needs_heldout_world(task) and HELDOUT_OBJECT not in world.object_names:
        raise ValueError(
            "collect_episode: task 'grasp-heldout' needs a world with the held-out object; use PandaWorld(heldout=True)"
        )
    rng = np.random.default_rng(seed)
    if task == "play-varied":  # its own stream: the skills draw as in a plain play episode
        world.set_objects(draw_play_objects(np.random.default_rng([seed, 1])))
    world.reset(seed)
    script = SkillScript(world, rng, max_steps)
    behaviours: list[str] = []
    success = None
    if task != "grasp-heldout":
        skill = rng.choice(
            list(PLAY_SKILLS), p=np.array(list(PLAY_SKILLS.values())) / sum(PLAY_SKILLS.values())
        )
        behaviours.append(SKILLS[skill](script, world, rng))
        while script.left > 0:
            filler = "reach" if rng.random() < 0.6 else "random"
            behaviours.append(SKILLS[filler](script, world, rng))
    else:
        aim = np.r_[rng.normal(0.0, HELDOUT_GRASP_JITTER, 2), abs(rng.normal(0.0, HELDOUT_HEIGHT_JITTER))]
        grasp_object(script, world, HELDOUT_OBJECT, aim, rng.normal(0.0, HELDOUT_YAW_JITTER))
        behaviours.append(f"grasp:{HELDOUT_OBJECT}")
        script.hold(1.0, script.left)
        success = world.is_held(HELDOUT_OBJECT)
    objects = {name: kind.to_dict() for name, kind in world.object_kinds.items()}
    return Episode(
        script.observations, np.stack(script.actions).astype(np.float32), task, success, behaviours, seed, objects
    )


def _start_held(w: PandaWorld, rng: np.random.Generator) -> str:
    name = rng.choice(w.object_names)
    position = rng.uniform(WORKSPACE_LOW + (0, 0, 0.1), WORKSPACE_HIGH)
    w.place_held(name, position, rng.uniform(-0.8, 0.8))
    return str(name)


def _free_place(w: PandaWorld, rng: np.random.Generator, moving: str) -> np.ndarray:
    """A table place (off the tray) away from every object but `moving`."""
    others = [p for n, p in w.object_positions().items() if n != moving]
    for _ in range(200):
        xy = rng.uniform(WORKSPACE_LOW[:2] + 0.03, WORKSPACE_HIGH[:2] - 0.03)
        if is_free_table_place(xy, others):
            return xy
    return rng.uniform(WORKSPACE_LOW[:2], WORKSPACE_HIGH[:2])


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])
