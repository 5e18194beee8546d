"""Bag writing and `dataset build` throughput, and bytes per step on disk.

Synthetic episodes (random images: bags and the store are uncompressed, so content does
not change the cost) of --steps steps are written as MCAP bags with robot_app.bags, then
built into a store: at the bags' own size (64) and from 128x128 bags resized to 64 with
OpenCV. Medians over --repeats. Writes bench/results/dataset.json.

    .venv/bin/python bench/bench_dataset.py [--episodes 40] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_app.bags import write_episode  # noqa: E402
from robot_app.dataset_build import build_dataset  # noqa: E402
from robot_app.world import Observation  # noqa: E402

JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")


@dataclass
class Episode:
    observations: list
    actions: np.ndarray
    task: str = "play"
    success: bool | None = None
    behaviours: list = field(default_factory=list)


def make_episode(rng: np.random.Generator, steps: int, size: int) -> Episode:
    obs = [
        Observation(
            image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            gripper=0.0,
            ee_position=rng.uniform(-0.5, 0.5, 3),
            ee_orientation=np.array([1.0, 0, 0, 0]),
            joint_names=JOINTS,
            joint_positions=rng.uniform(0, 0.04, 9),
            joint_velocities=np.zeros(9),
            stamp=0.1 * t,
        )
        for t in range(steps + 1)
    ]
    return Episode(obs, rng.uniform(-1, 1, (steps, 5)).astype(np.float32))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one_repeat(tmp: Path, episodes: list[Episode], size: int) -> dict:
    steps = sum(len(e.observations) for e in episodes)
    t0 = time.perf_counter()
    for i, ep in enumerate(episodes):
        write_episode(tmp / f"bags{size}" / f"ep{i:04d}", ep, image_size=size)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = build_dataset([tmp / f"bags{size}"], tmp / f"store{size}", image_size=64, progress=False)
    build_s = time.perf_counter() - t0
    assert summary["num_steps"] == steps and not summary["skipped"], summary
    return {
        "bag_write_steps_per_s": steps / write_s,
        "build_steps_per_s": steps / build_s,
        "bag_bytes_per_step": dir_bytes(tmp / f"bags{size}") / steps,
        "store_bytes_per_step": dir_bytes(tmp / f"store{size}") / steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dataset.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for size in (64, 128):
        episodes = [make_episode(rng, args.steps, size) for _ in range(args.episodes)]
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_repeat(Path(tmp), episodes, size))
        results[f"bags_{size}_to_store_64"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    report = {
        "benchmark": "dataset",
        "episodes": args.episodes,
        "steps_per_episode": args.steps + 1,
        "repeats": args.repeats,
        "statistic": "median",
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report["results"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
