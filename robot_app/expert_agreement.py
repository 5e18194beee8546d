"""Where a policy parts from the scripted expert: its action along the expert's own path, phase by phase.

A 0% family says the policy failed, not where. Here, for each task of a suite, the
noise-free expert (sim_worlds.experts) solves it from the start state, and at every state
on its path the policy is asked for an action under the task's goal image. Two numbers per
skill phase (approach, descend, close, lift, push, ...):
- direction: mean cosine between the policy's and the expert's xyz motion, over the steps
  where the expert moves (|xyz| >= MOVING); 1 = same way, 0 = unrelated or standing
  still, -1 = opposite;
- gripper: the share of steps whose gripper command has the expert's sign (open/close).
And per family, the gripper switches made on time: where the expert changes its gripper
command (closes on the cube, lets go over the place), does the policy give the old command
one step before and the new one at the switch? A policy that copies the gripper state it
sees agrees on most steps and never switches; one that copies the goal image's gripper
closes from the first step on; neither makes a switch on time, which is what this catches.
The numbers are graded, so they move before success does: a policy that learns to descend onto
the cube but not yet to close shows it in "descend" and "close". The expert's own success
rate is reported too; below 100% it bounds what the family can ask of the data's skills.

The policy sees the expert's states, never its own, so this is the DAgger-style question
"what would you do here?", not a rollout. Torch-free, like robot_app.evaluation.
"""

from __future__ import annotations

import numpy as np

from robot_app.evaluation import as_act_fn, episode_seed
from sim_worlds import goals
from sim_worlds.experts import CLOSED, OPEN, solve

MOVING = 0.2  # |expert xyz action| below this is a hold or a last correction: direction not scored


def direction_cosine(policy_xyz: np.ndarray, expert_xyz: np.ndarray) -> float:
    """Cosine of two motions; 0 when the policy stands still (it does not go the expert's way)."""
    p, e = np.linalg.norm(policy_xyz), np.linalg.norm(expert_xyz)
    return 0.0 if p < 1e-6 or e < 1e-6 else float(np.dot(policy_xyz, expert_xyz) / (p * e))


def _phase_summary(cosines: list[float], grips: list[bool]) -> dict:
    return {
        "steps": len(grips),
        "direction": round(float(np.mean(cosines)), 3) if cosines else None,
        "gripper": round(float(np.mean(grips)), 3) if grips else None,
    }


def expert_agreement(policy, families: list[str], episodes: int, seed: int, image_size: int = 64) -> dict:
    """{"families": {family: {"expert_success", "n", "phases": {phase: {steps, direction, gripper}},
    "gripper_switches": {"made", "n"}}}, "seed", "episodes"}."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    act_fn = as_act_fn(policy)
    out: dict = {"families": {}, "seed": seed, "episodes": episodes}
    for family in families:
        world = goals.world_for(family, image_size)
        cosines: dict[str, list[float]] = {}
        grips: dict[str, list[bool]] = {}
        solved, switches = 0, []
        try:
            for task in goals.make_suite(family, episodes, seed, image_size=image_size):
                trace = solve(world, task)
                solved += trace.success
                act_fn.new_episode(episode_seed(seed, family, task.index))
                previous = CLOSED if task.start_state["grip"] > 0.5 else OPEN
                policy_before = previous  # before the first step: only the switch step itself is judged
                for obs, expert, phase in zip(trace.observations[:-1], trace.actions, trace.phases, strict=True):
                    action = act_fn(obs.image, task.goal_image, obs.state)
                    if np.sign(expert[4]) != np.sign(previous):
                        on_time = np.sign(policy_before) == np.sign(previous) and np.sign(action[4]) == np.sign(expert[4])
                        switches.append(bool(on_time))
                    previous, policy_before = expert[4], action[4]
                    grips.setdefault(phase, []).append(bool(np.sign(action[4]) == np.sign(expert[4])))
                    if np.linalg.norm(expert[:3]) >= MOVING:
                        cosines.setdefault(phase, []).append(direction_cosine(action[:3], expert[:3]))
        finally:
            world.close()
        out["families"][family] = {
            "expert_success": round(solved / episodes, 4),
            "n": episodes,
            "gripper_switches": {"made": int(sum(switches)), "n": len(switches)},
            "phases": {p: _phase_summary(cosines.get(p, []), grips[p]) for p in grips},
        }
    return out


def switches_on_time(results: dict) -> tuple[int, int]:
    """(made, n): the gripper switches made on time, summed over the families of expert_agreement's results."""
    counts = [r["gripper_switches"] for r in results["families"].values()]
    return sum(c["made"] for c in counts), sum(c["n"] for c in counts)


def markdown_agreement(results: dict) -> str:
    """One row per family: expert success, then direction / gripper agreement per phase in path order."""
    lines = [
        "| family | expert success | gripper switches on time | agreement along the expert's path: phase direction / gripper |",
        "|---|---:|---:|---|",
    ]
    for family, r in results["families"].items():
        cells = []
        for phase, p in r["phases"].items():
            direction = "-" if p["direction"] is None else f"{p['direction']:+.2f}"
            cells.append(f"{phase} {direction} / {round(100 * p['gripper'])}%")
        sw = r["gripper_switches"]
        lines.append(f"| {family} | {round(100 * r['expert_success'])}% | {sw['made']}/{sw['n']} | {', '.join(cells)} |")
    return "\n".join(lines) + "\n"
