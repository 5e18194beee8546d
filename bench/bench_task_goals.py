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
`--rerun JSON --goals K` evaluates an earlier JSON's task models again, acting toward K goal
pictures per run (rows MODE-kK): the runtime setting alone, with the same localisers and banks.
"""

from __future__ import annotations

import argparse
import json
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
    from training.localiser import LocaliserConfig, build_task_model

    name, goal_model = spec.split("=", 1)
    mode, attempts, seed = name.split(":")
    attempts, seed = int(attempts), int(seed)
    out = Path(args.out_dir) / f"{mode}_n{attempts}_s{seed}.onnx"
    t0 = time.perf_counter()
    bank_store = DATA[attempts] if args.bank == "labelled" else args.play
    build_task_model(goal_model, DATA[attempts], bank_store, out, LocaliserConfig(seed=seed, num_threads=args.threads),
                     progress=False, goals_per_run=args.goals, goal_spread_m=args.goal_spread)
    row = {"mode": mode, "episodes": attempts, "seed": seed, "goal_model": goal_model, "task_model": str(out),
           "bank": args.bank, "bank_store": bank_store, "build_seconds": round(time.perf_counter() - t0, 1)}
    return evaluate_row(row, args)


def rerun(row: dict, args) -> dict:
    """An earlier row's task model (same localiser and bank) evaluated again, acting toward
    --goals pictures per run: what the runtime setting alone changes."""
    mode = f"{row['mode']}-k{args.goals}" if args.goals is not None else row["mode"]
    kept = ("episodes", "seed", "goal_model", "task_model", "bank", "bank_store")
    return evaluate_row({"mode": mode, **{k: row[k] for k in kept if k in row}, "rerun_of": row["mode"]}, args)


def evaluate_row(row: dict, args) -> dict:
    from robot_app.evaluation import evaluate_suite
    from robot_app.policy import Policy

    policy = Policy.load(row["task_model"], seed=row["seed"])
    proposer = policy.goal_proposer
    if args.goals is not None:
        proposer.goals_per_run = args.goals
    if args.goal_spread is not None:
        proposer.goal_spread_m = args.goal_spread
    result = evaluate_suite(policy, ["grasp-heldout"], args.episodes, args.suite_seed, progress=False)
    summary = result["families"]["grasp-heldout"]
    row.update(goals_per_run=proposer.goals_per_run, goal_spread_m=proposer.goal_spread_m,
               bank_pictures=proposer.bank.images.shape[0], **summary,
               localiser_error_m=localiser_error_m(policy, args.episodes, args.suite_seed))
    print(f"{row['mode']}:{row['episodes']}:{row['seed']}  {summary['successes']}/{summary['n']}  "
          f"K={proposer.goals_per_run}  localiser median {100 * row['localiser_error_m']['median']:.1f} cm", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", default=[], metavar="MODE:ATTEMPTS:SEED=GOAL_MODEL")
    parser.add_argument("--rerun", type=Path, default=None, metavar="JSON",
                        help="evaluate the task models of an earlier result again (no rebuild), e.g. with other --goals")
    parser.add_argument("--goals", type=int, default=None, metavar="K",
                        help="goal pictures acted toward per run (default: task-goals' for a build, the card's for --rerun)")
    parser.add_argument("--goal-spread", type=float, default=None, metavar="M")
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
    if bool(args.run) == bool(args.rerun):
        parser.error("give --run specs or --rerun JSON")
    if args.rerun:
        rows = [rerun(row, args) for row in json.loads(args.rerun.read_text())["runs"]]
    else:
        rows = [one_run(spec, args) for spec in args.run]
    first = rows[0]
    path = args.json or RESULTS / "task_goals" / f"{first['mode']}_n{first['episodes']}_s{first['seed']}.json"
    write_report(path, {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                        "runs": rows})


if __name__ == "__main__":
    main()
