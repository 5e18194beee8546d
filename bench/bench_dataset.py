"""Bag writing and `dataset build` throughput, and bytes per step on disk.

Synthetic episodes (tests/episode_fixtures.py's: bags and the store are uncompressed, so
image content does not change the cost) of --steps steps are written as MCAP bags with robot_app.bags, then
built into a store: at the bags' own size (64) and from 128x128 bags resized to 64 with
OpenCV. Medians over --repeats. Writes bench/results/dataset.json.

    .venv/bin/python bench/bench_dataset.py [--episodes 40] [--steps 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, machine, medians, write_report

from robot_app.bags import write_episode
from robot_app.dataset_build import build_dataset

sys.path.insert(0, str(ROOT / "tests"))
from episode_fixtures import SyntheticEpisode, synthetic_episode  # noqa: E402


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one_repeat(tmp: Path, episodes: list[SyntheticEpisode], size: int) -> dict:
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
    parser.add_argument("--out", default=str(RESULTS / "dataset.json"))
    args = parser.parse_args()
    results = {}
    for size in (64, 128):
        episodes = [synthetic_episode(args.steps, size, seed) for seed in range(args.episodes)]
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_repeat(Path(tmp), episodes, size))
        results[f"bags_{size}_to_store_64"] = medians(runs)
    report = {
        "benchmark": "dataset",
        "episodes": args.episodes,
        "steps_per_episode": args.steps + 1,
        "repeats": args.repeats,
        "statistic": "median",
        "machine": machine(),
        "results": results,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
