"""Task models that propose their goal per scene (robot-app task-goals), over goal models and data sizes.

Issue 8's table for the task model that keeps the goal input: each goal-conditioned model
(fine-tuned from the pretraining, or trained fresh on the same labelled attempts) gets a
localiser fitted to those attempts (seed = the row's seed) and a goal bank: the play store's
held frames, or with --bank labelled the labelled successes' own (no data beyond the attempts),
then runs `grasp-heldout` through the same runtime as `robot-app eval`. Each row also
reports how far the localiser's object lies from the simulator's (a diagnostic only: the
policy never sees the simulator state).

    python bench/bench_task_goals.py --run located-pretrained:50:0=runs/gcft20_p0_n50-at3000.onnx ...
    python bench/finetune_table.py bench/results/task_goals/*.json --png docs/img/task_goals.png

A run is MODE:ATTEMPTS:SEED=GOAL_MODEL; ATTEMPTS picks the labelled store (DATA below). The
JSON's "runs" are rows of bench/finetune_table.py (mode, episodes, seed, successes, n...).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import RESULTS, machine, write_report
from task_goal_proposal import heldout_starts

DATA = {25: "data/task_25", 50: "data/task_50", 100: "data/task_store"}


def localiser_error_m(policy, episodes: int, seed: int) -> dict:
    """Median / p90 distance (m) from the proposer's object to the simulator's, on the suite's start frames."""
    starts, truth = heldout_starts(episodes, seed, policy.image_size)
    found = np.stack([policy.goal_proposer.propose(image).position for image in starts])
    error = np.linalg.norm(found - truth, axis=1)
    return {"median": round(float(np.median(error)), 4), "p90": round(float(np.percentile(error, 90)), 4)}


def one_run(spec: str, args) -> dict:
    from robot_app.evaluation import evaluate_suite
    from robot_app.policy import Policy
    from training.localiser import LocaliserConfig, build_task_model

    name, goal_model = spec.split("=", 1)
    mode, attempts, seed = name.split(":")
    attempts, seed = int(attempts), int(seed)
    out = Path(args.out_dir) / f"{mode}_n{attempts}_s{seed}.onnx"
    t0 = time.perf_counter()
    bank_store = DATA[attempts] if args.bank == "labelled" else args.play
    build_task_model(goal_model, DATA[attempts], bank_store, out, LocaliserConfig(seed=seed, num_threads=args.threads),
                     progress=False)
    build_seconds = time.perf_counter() - t0
    policy = Policy.load(out, seed=seed)
    result = evaluate_suite(policy, ["grasp-heldout"], args.episodes, args.suite_seed, progress=False)
    summary = result["families"]["grasp-heldout"]
    row = {"mode": mode, "episodes": attempts, "seed": seed, "goal_model": goal_model, "task_model": str(out),
           "bank": args.bank, "bank_store": bank_store, "bank_pictures": policy.goal_proposer.bank.images.shape[0],
           "build_seconds": round(build_seconds, 1), **summary,
           "localiser_error_m": localiser_error_m(policy, args.episodes, args.suite_seed)}
    print(f"{name:22s} {summary['successes']}/{summary['n']}  localiser median "
          f"{100 * row['localiser_error_m']['median']:.1f} cm  ({build_seconds:.0f} s build)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="MODE:ATTEMPTS:SEED=GOAL_MODEL")
    parser.add_argument("--play", default="data/store_pose", help="unlabelled play store for the goal bank")
    parser.add_argument("--bank", choices=("play", "labelled"), default="play",
                        help="goal pictures from the play store, or from the labelled attempts' own successes only "
                             "(a task model that uses no data beyond its labelled attempts: the from-scratch row)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--suite-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", default="runs/task_goals")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = [one_run(spec, args) for spec in args.run]
    first = rows[0]
    path = args.json or RESULTS / "task_goals" / f"{first['mode']}_n{first['episodes']}_s{first['seed']}.json"
    write_report(path, {"machine": machine(), "args": vars(args), "runs": rows})


if __name__ == "__main__":
    main()
