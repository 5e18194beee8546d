"""`robot-app collect`: scripted episodes in the pybullet sim, one rosbag2 bag each.

Episode i of a run is fully determined by (--seed, i, --task, --steps, --image-size), so
an interrupted run continues where it stopped: a re-run with the same arguments skips
every finished bag and redoes only the missing ones (a bag is written as NAME.partial and
renamed when complete, so a finished name is always a whole bag). Several worker
processes each own one PandaWorld; episodes are independent, so the speed-up is close to
the number of free cores. The resolved configuration is written to OUT/collect.json, and
a later run with different settings into the same directory is refused rather than mixed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from robot_app.spec import IMAGE_SIZE, needs_heldout_world

# Settings that define the episodes; --episodes and --workers may change between runs.
_IDENTITY_KEYS = ("seed", "task", "steps", "image_size", "storage")

_world = None  # one PandaWorld per worker process
_settings: dict = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes in the run")
    parser.add_argument("--out", required=True, help="directory for the bags (one sub-directory per episode)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one sim each")
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed; episode i's seed derives from (seed, i)"
    )
    parser.add_argument(
        "--task", default="play", help="collector: play (default), play-varied (play with varied objects per episode) or grasp-heldout (labelled)"
    )
    parser.add_argument("--image-size", type=int, default=64, choices=(64, 128), help="camera image size")
    parser.add_argument("--steps", type=int, default=50, help="control steps per episode (10 Hz)")
    parser.add_argument(
        "--storage", default="mcap", choices=("mcap", "sqlite3"), help="rosbag2 storage plugin"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def episode_name(index: int) -> str:
    return f"episode_{index:06d}"


def episode_seed(seed: int, index: int) -> int:
    """Independent streams per (run seed, episode) that do not overlap across run seeds."""
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _init_worker(settings: dict, in_pool: bool = True) -> None:
    global _world, _settings
    from sim_worlds.panda_world import PandaWorld

    if in_pool:  # Ctrl-C is the parent's to handle: a worker finishes the bag it is writing
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    _settings = settings
    _world = PandaWorld(
        image_size=settings["image_size"], seed=settings["seed"], heldout=needs_heldout_world(settings["task"])
    )


def _collect_one(index: int) -> tuple[int, int, bool | None]:
    from robot_app.bags import write_episode
    from sim_worlds.collectors import collect_episode

    s = _settings
    episode = collect_episode(
        _world, seed=episode_seed(s["seed"], index), task=s["task"], max_steps=s["steps"]
    )
    write_episode(
        Path(s["out"]) / episode_name(index), episode, image_size=s["image_size"], storage=s["storage"]
    )
    return index, len(episode.actions), episode.success


def _check_config(out: Path, settings: dict) -> str | None:
    """Refuse to mix runs: an existing collect.json must agree on the episode-defining keys."""
    path = out / "collect.json"
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    diffs = [
        f"{k}={old.get(k)!r} there, {settings[k]!r} now" for k in _IDENTITY_KEYS if old.get(k) != settings[k]
    ]
    return f"{out} holds a run with other settings ({'; '.join(diffs)}); use another --out" if diffs else None


def _validate(args: argparse.Namespace) -> str | None:
    from sim_worlds.collectors import TASKS

    if args.task not in TASKS:
        return f"--task {args.task!r}: expected one of {', '.join(TASKS)}"
    if args.episodes < 1 or args.workers < 1 or args.steps < 1:
        return "--episodes, --workers and --steps must be at least 1"
    return None


def collect(args: argparse.Namespace) -> dict:
    """Collect the missing episodes; return a summary (also used by bench/bench_collect.py)."""
    from tqdm import tqdm

    out = Path(args.out)
    settings = {
        "out": str(out),
        "seed": args.seed,
        "task": args.task,
        "steps": args.steps,
        "image_size": args.image_size,
        "storage": args.storage,
    }
    if problem := _check_config(out, settings):
        raise ValueError(problem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "collect.json").write_text(json.dumps({**settings, "episodes": args.episodes}, indent=2))
    todo = [i for i in range(args.episodes) if not (out / episode_name(i) / "metadata.yaml").is_file()]
    done = args.episodes - len(todo)
    bar = tqdm(total=args.episodes, initial=done, desc="collect", unit="ep", disable=args.no_progress)
    steps = 0
    labels = []
    start = time.perf_counter()

    done_at: list[tuple[float, int]] = []  # (time, steps) per finished episode

    def finished(result):
        nonlocal steps
        steps += result[1]
        labels.append(result[2])
        done_at.append((time.perf_counter(), result[1]))
        bar.update()
        bar.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - start):.0f}")

    workers = min(args.workers, max(len(todo), 1))
    if workers == 1:
        _init_worker(settings, in_pool=False)
        try:
            for index in todo:
                finished(_collect_one(index))
        finally:
            _world.close()
    elif todo:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited sim or threads
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(settings,))
        try:
            for future in as_completed([pool.submit(_collect_one, i) for i in todo]):
                finished(future.result())
        finally:  # on Ctrl-C: drop queued episodes, let running ones complete their bags
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    elapsed = time.perf_counter() - start
    return {
        "out": str(out),
        "collected": len(todo),
        "skipped_existing": done,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": steps / elapsed if elapsed > 0 and steps else 0.0,
        # after the first episode is in: without process start-up and world creation
        "steady_steps_per_s": _steady_rate(done_at),
        "successes": sum(1 for x in labels if x),
        "labelled": sum(1 for x in labels if x is not None),
    }


def _steady_rate(done_at: list[tuple[float, int]]) -> float:
    if len(done_at) < 2 or done_at[-1][0] <= done_at[0][0]:
        return 0.0
    return sum(n for _, n in done_at[1:]) / (done_at[-1][0] - done_at[0][0])


def run(args: argparse.Namespace) -> int:
    if problem := _validate(args):
        print(f"robot-app collect: {problem}", file=sys.stderr)
        return 2
    try:
        summary = collect(args)
    except ValueError as exc:
        print(f"robot-app collect: {exc}", file=sys.stderr)
        return 2
    line = (
        f"collected {summary['collected']} episodes ({summary['skipped_existing']} already there) into "
        f"{summary['out']}: {summary['steps']} steps, {summary['steps_per_s']:.0f} steps/s"
    )
    if summary["labelled"]:
        line += f"; {summary['successes']}/{summary['labelled']} successful"
    print(line)
    if args.image_size != IMAGE_SIZE:  # the store's default: building without the flag would shrink every frame
        print(f"frames are {args.image_size}x{args.image_size}: build the store with "
              f"`robot-app dataset build {summary['out']} -o DIR --image-size {args.image_size}` to keep them")
    return 0
