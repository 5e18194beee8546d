"""Is it the Q or the search? Along the scripted expert's path, per skill phase: the Q of the
expert's action, of CEM's action, and of the best of 4096 uniform actions.

A policy that does not follow the expert fails either because its Q ranks another action
above the expert's (a wrong Q: the expert's Q is below CEM's) or because CEM misses the
Q's best (a weak search: CEM's Q is below the uniform sweep's best). Only a Q-learning
model (its card's q is a reach probability) is meaningful here.

    .venv/bin/python bench/q_along_expert.py --policy am_default=models/am_default.onnx --family grasp --episodes 10

One JSON per label in bench/results/q_along_expert/, and the table printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robot_app.evaluation import episode_seed  # noqa: E402
from robot_app.policy import Policy  # noqa: E402
from sim_worlds import goals  # noqa: E402
from sim_worlds.experts import solve  # noqa: E402

OUT = ROOT / "bench" / "results" / "q_along_expert"
SWEEP = 4096


def expert_steps(family: str, episodes: int, seed: int, image_size: int):
    """(task, observation, expert action clipped to [-1, 1], phase) along the scripted expert's solution of each suite task."""
    world = goals.world_for(family, image_size)
    try:
        for task in goals.make_suite(family, episodes, seed, image_size=image_size):
            trace = solve(world, task)
            for obs, expert, phase in zip(trace.observations[:-1], trace.actions, trace.phases, strict=True):
                yield task, obs, np.clip(np.asarray(expert, np.float32), -1.0, 1.0), phase
    finally:
        world.close()


def along_expert(policy: Policy, family: str, episodes: int, seed: int) -> dict:
    """Per phase: mean Q of the expert's, CEM's and the sweep's best action, and their motions."""
    sweep = np.random.default_rng(0).uniform(-1, 1, (SWEEP, 5)).astype(np.float32)
    rows: dict[str, list] = {}
    for task, obs, expert, phase in expert_steps(family, episodes, seed, policy.image_size):
        policy.reseed(episode_seed(seed, family, task.index))
        action, q_cem = policy.act(obs.image, task.goal_image, obs.state)
        q = policy.q_values(obs.image, task.goal_image, obs.state, np.vstack([expert, sweep]))
        rows.setdefault(phase, []).append([q[0], q_cem, q[1:].max(), np.mean(q[1:] > q[0]), *action[:3], *expert[:3]])
    out = {}
    for phase, r in rows.items():
        r = np.asarray(r, dtype=np.float64)
        out[phase] = {
            "steps": len(r), "q_expert": round(r[:, 0].mean(), 4), "q_cem": round(r[:, 1].mean(), 4),
            "q_sweep_best": round(r[:, 2].mean(), 4), "sweep_above_expert": round(r[:, 3].mean(), 4),
            "expert_at_least_cem": round(float(np.mean(r[:, 0] >= r[:, 1])), 4),
            "cem_xyz": np.round(r[:, 4:7].mean(0), 3).tolist(), "expert_xyz": np.round(r[:, 7:10].mean(0), 3).tolist(),
        }
    return out


def table(label: str, phases: dict) -> str:
    lines = [f"{label}:", "| phase | steps | Q(expert) | Q(CEM) | best of 4096 uniform | uniform above the expert | expert >= CEM | CEM xyz | expert xyz |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for phase, p in phases.items():
        lines.append(f"| {phase} | {p['steps']} | {p['q_expert']:.3f} | {p['q_cem']:.3f} | {p['q_sweep_best']:.3f} | "
                     f"{100 * p['sweep_above_expert']:.1f}% | {100 * p['expert_at_least_cem']:.0f}% | {p['cem_xyz']} | {p['expert_xyz']} |")
    return "\n".join(lines) + "\n"


def parse_args(doc: str, metavar: str, policy_help: str, episodes: int) -> argparse.Namespace:
    """The options of a bench that reads policies along the expert's path (this one and bc_along_expert.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--policy", action="append", required=True, metavar=metavar, help=policy_help)
    parser.add_argument("--family", default="grasp")
    parser.add_argument("--episodes", type=int, default=episodes)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> int:
    args = parse_args(__doc__, "LABEL=MODEL", "an exported model", episodes=10)
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in args.policy:
        label, _, model = spec.partition("=")
        policy = Policy.load(model)
        if not policy.card.q_means_reached:
            raise SystemExit(f"{model}: a {policy.card.algo} model's q scores actions, not the goal; nothing to compare")
        phases = along_expert(policy, args.family, args.episodes, args.seed)
        report = {"label": label, "model": model, "family": args.family, "episodes": args.episodes, "seed": args.seed, "phases": phases}
        (OUT / f"{label}_{args.family}.json").write_text(json.dumps(report, indent=1))
        print(table(label, phases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
