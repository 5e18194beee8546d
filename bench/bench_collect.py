"""`robot-app collect` speed in the pybullet sim: steps/s on one worker and on two, same run.

Each repeat collects the same episodes (same seed) with --workers 1 and then 2 into fresh
directories; "steps_per_s" includes starting the worker processes and writing the bags, as a user
sees it; "steady_steps_per_s" counts from the first finished episode on (no start-up). Medians over --repeats. Writes bench/results/collect.json.
With --tasks play,play-varied each repeat runs every task in turn (side by side, same machine
load), and the results hold one entry per task under "by_task".

    .venv/bin/python bench/bench_collect.py [--episodes 12] [--steps 50] [--repeats 3] [--tasks play]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import RESULTS, machine, write_report

from robot_app.commands.collect import collect


def run_once(out: Path, args, workers: int, task: str = "play") -> dict:
    ns = argparse.Namespace(
        episodes=args.episodes,
        workers=workers,
        seed=0,
        task=task,
        image_size=args.image_size,
        steps=args.steps,
        storage="mcap",
        out=str(out),
        no_progress=True,
    )
    return collect(ns)


def summarise(runs: dict[int, list[dict]]) -> dict:
    med = {w: statistics.median(r["steps_per_s"] for r in rs) for w, rs in runs.items()}
    steady = {w: statistics.median(r["steady_steps_per_s"] for r in rs) for w, rs in runs.items()}
    return {
        "steps_per_s_1_worker": med[1],
        "steps_per_s_2_workers": med[2],
        "speedup_2_vs_1": med[2] / med[1],
        "steady_steps_per_s_1_worker": steady[1],
        "steady_steps_per_s_2_workers": steady[2],
        "steady_speedup_2_vs_1": steady[2] / steady[1],
        "all_runs": {str(w): [r["steps_per_s"] for r in rs] for w, rs in runs.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default="play", help="comma-separated collectors, run in turn each repeat")
    parser.add_argument("--out", default=str(RESULTS / "collect.json"))
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    runs: dict[str, dict[int, list[dict]]] = {task: {1: [], 2: []} for task in tasks}
    for repeat in range(args.repeats):
        for task in tasks:
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as tmp:
                    summary = run_once(Path(tmp) / "run", args, workers, task)
                runs[task][workers].append(summary)
                print(f"repeat {repeat} {task} workers {workers}: {summary['steps_per_s']:.1f} steps/s", flush=True)
    by_task = {task: summarise(r) for task, r in runs.items()}
    report = {
        "benchmark": "collect",
        "episodes": args.episodes,
        "steps_per_episode": args.steps,
        "image_size": args.image_size,
        "repeats": args.repeats,
        "statistic": "median",
        "machine": machine(),
        "results": by_task[tasks[0]] if len(tasks) == 1 else {"by_task": by_task},
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
