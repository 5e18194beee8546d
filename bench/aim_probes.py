"""Two checks of where the cloned held-out grasp's aim bias comes from (not product features).

Session 18 measured the failures of the fine-tuned task models: the hand closes about 1.7 cm
short of the held-out object along its approach, with about 3 cm of scatter, and every model
shares the bias (BENCHMARKS.md). Two cheap explanations, each checked here:

`gain`: the cloned action shrinks. A regressed mean of noisy directions is shorter than any
one of them, so near the object, where the direction is least certain, the hand slows and
may decide it has arrived. If so, scaling the policy's xy action up at run time (gain > 1)
should grasp more. Evaluated through the ONNX runtime on `grasp-heldout`.

`selection`: the filter is biased. Cloning only the successful attempts keeps the attempts
whose scripted aim error happened to be small; if success were likelier for an aim short of
the object than beyond it, the kept demonstrations would teach a short aim. Runs scripted
held-out attempts (`collect_episode`, the collector's own noise) and reports the aim error
along and across the approach (object minus the hand's start, table plane) for successes
and failures.

    .venv/bin/python bench/aim_probes.py gain --policy runs/ens5_scratch34567_n50.onnx --gains 0.7,1,1.3,1.6 --seeds 0,1,2
    .venv/bin/python bench/aim_probes.py selection --episodes 300

Results in bench/results/aim_probes/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import RESULTS, machine, write_report

OUT = RESULTS / "aim_probes"


class GainedPolicy:
    """A loaded Policy whose chosen xy action is multiplied by `gain` (then clipped to [-1, 1])."""

    def __init__(self, policy, gain: float):
        self.policy, self.gain = policy, gain
        self.task_goal = policy.task_goal

    def reseed(self, seed: int) -> None:
        self.policy.reseed(seed)

    def act(self, image, goal, state):
        action, q = self.policy.act(image, goal, state)
        action = np.array(action, dtype=np.float32)
        action[:2] = np.clip(action[:2] * self.gain, -1.0, 1.0)
        return action, q


def run_gain(args) -> dict:
    from robot_app.evaluation import evaluate_suite, wilson_interval
    from robot_app.policy import Policy

    rows = []
    for gain in (float(g) for g in args.gains.split(",")):
        successes = []
        for seed in (int(s) for s in args.seeds.split(",")):
            policy = GainedPolicy(Policy.load(args.policy, seed=seed), gain)
            line = evaluate_suite(policy, ["grasp-heldout"], args.episodes, seed, progress=False)["families"]["grasp-heldout"]
            successes.append(line["successes"])
            print(f"gain {gain}: suite seed {seed}: {line['successes']}/{line['n']}", flush=True)
        n = args.episodes * len(successes)
        rows.append({"gain": gain, "successes": successes, "pooled": f"{sum(successes)}/{n}",
                     "ci95": wilson_interval(sum(successes), n)})
    return {"policy": args.policy, "episodes": args.episodes, "gains": rows}


def aim_along_across(aim_xy: np.ndarray, start_xy: np.ndarray, object_xy: np.ndarray) -> tuple[float, float]:
    """The aim error's components along the approach (object minus start; negative: short) and across it."""
    u = (object_xy - start_xy) / np.linalg.norm(object_xy - start_xy)
    return float(aim_xy @ u), float(aim_xy[1] * u[0] - aim_xy[0] * u[1])


def run_selection(args) -> dict:
    from sim_worlds import collectors
    from sim_worlds.panda_world import PandaWorld

    seen: dict = {}
    scripted_grasp = collectors.grasp_object

    def recording_grasp(script, world, name, aim_error=(0.0, 0.0, 0.0), yaw_error=0.0, lift=None):
        seen.update(aim=np.asarray(aim_error, dtype=float), object=world.object_positions()[name].copy(),
                    start=world.ee_position().copy())
        return scripted_grasp(script, world, name, aim_error, yaw_error, lift)

    collectors.grasp_object = recording_grasp  # collect_episode looks it up at call time
    world = PandaWorld(heldout=True)
    rows = []
    try:
        for seed in range(args.first_seed, args.first_seed + args.episodes):
            episode = collectors.collect_episode(world, seed, task="grasp-heldout")
            along, across = aim_along_across(seen["aim"][:2], seen["start"][:2], seen["object"][:2])
            rows.append((bool(episode.success), along, across, float(seen["aim"][2])))
    finally:
        collectors.grasp_object = scripted_grasp
        world.close()
    summary = {}
    for label, want in (("successes", True), ("failures", False)):
        x = np.array([r[1:] for r in rows if r[0] == want])
        summary[label] = {
            "n": len(x),
            "along_mean_cm": round(100 * x[:, 0].mean(), 2),
            "along_se_cm": round(100 * x[:, 0].std(ddof=1) / np.sqrt(len(x)), 2),
            "across_mean_cm": round(100 * x[:, 1].mean(), 2),
            "along_abs_mean_cm": round(100 * np.abs(x[:, 0]).mean(), 2),
            "across_abs_mean_cm": round(100 * np.abs(x[:, 1]).mean(), 2),
            "close_height_error_mean_cm": round(100 * x[:, 2].mean(), 2),
        }
    return {"episodes": args.episodes, "first_seed": args.first_seed, **summary}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="probe", required=True)
    g = sub.add_parser("gain", help="evaluate a task model with its xy action scaled")
    g.add_argument("--policy", required=True)
    g.add_argument("--gains", default="0.7,1,1.3,1.6")
    g.add_argument("--seeds", default="0,1,2")
    g.add_argument("--episodes", type=int, default=100)
    s = sub.add_parser("selection", help="aim errors of scripted successes and failures")
    s.add_argument("--episodes", type=int, default=300)
    s.add_argument("--first-seed", type=int, default=5000)
    args = p.parse_args(argv)
    results = run_gain(args) if args.probe == "gain" else run_selection(args)
    name = f"gain_{Path(args.policy).stem}.json" if args.probe == "gain" else "selection.json"
    write_report(OUT / name, {"benchmark": f"aim_probes {args.probe}", "machine": machine(), "config": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
