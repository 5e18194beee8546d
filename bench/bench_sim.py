"""Control steps per second of PandaWorld with rendering: stock vs fast Panda visuals.

One control step = IK + motor commands + 12 physics substeps (120 Hz under 10 Hz) + one
TinyRenderer frame, i.e. PandaWorld.act(). Measured at 64x64 and 128x128 for the stock
Panda meshes and for the collision-meshes-as-visuals copy (the default), in one process
(one core), configurations interleaved round by round so drift on a shared machine hits
them alike; medians over rounds (and the best round, the least disturbed one). Also: the
same without rendering (physics + IK only), a render alone, and 240 Hz physics (24
substeps) for comparison, and the default world with Bullet's contact pairs left unsorted
(what PandaWorld did before session 27 sorted them for repeatable episodes). Goal (issue 3):
>= 200 steps/s per core at 64x64 with rendering.

    .venv/bin/python bench/bench_sim.py [--steps 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim_worlds.panda_world import PHYSICS_HZ, PandaWorld  # noqa: E402

GOAL_STEPS_PER_S = 200.0
CONFIGS = {  # name: PandaWorld kwargs
    "fast_64": dict(image_size=64, visuals="fast"),
    "stock_64": dict(image_size=64, visuals="stock"),
    "fast_128": dict(image_size=128, visuals="fast"),
    "stock_128": dict(image_size=128, visuals="stock"),
    "fast_64_physics240": dict(image_size=64, visuals="fast", physics_hz=240.0),
    "fast_64_unsorted_pairs": dict(image_size=64, visuals="fast"),
}
UNSORTED_PAIRS = ("fast_64_unsorted_pairs",)


def make_world(name: str) -> PandaWorld:
    world = PandaWorld(**CONFIGS[name])
    if name in UNSORTED_PAIRS:
        world._p.setPhysicsEngineParameter(deterministicOverlappingPairs=0)
    return world


def time_steps(world: PandaWorld, steps: int, rng: np.random.Generator) -> float:
    """Steps/s of act() with smoothed random actions (the arm keeps moving and turning)."""
    world.reset(int(rng.integers(1 << 30)))
    action = rng.uniform(-1, 1, 5)
    t0 = time.perf_counter()
    for _ in range(steps):
        action = 0.8 * action + 0.2 * rng.uniform(-1, 1, 5)
        world.act(action)
    return steps / (time.perf_counter() - t0)


def time_render(world: PandaWorld, n: int = 50) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        world.render()
    return (time.perf_counter() - t0) / n * 1e3


def time_physics_only(world: PandaWorld, steps: int, rng: np.random.Generator) -> float:
    """act() with the render replaced by nothing: what the camera costs, by difference."""
    render = world.render
    world.render = lambda: np.zeros((world.image_size, world.image_size, 3), np.uint8)
    try:
        return time_steps(world, steps, rng)
    finally:
        world.render = render


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=100, help="timed control steps per configuration per round"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    worlds = {name: make_world(name) for name in CONFIGS}
    runs: dict[str, list[float]] = {name: [] for name in CONFIGS}
    renders: dict[str, list[float]] = {name: [] for name in CONFIGS}
    physics: list[float] = []
    for w in worlds.values():
        time_steps(w, 10, rng)  # warm-up
    for r in range(args.rounds):
        for name, world in worlds.items():
            runs[name].append(time_steps(world, args.steps, rng))
            renders[name].append(time_render(world))
        physics.append(time_physics_only(worlds["fast_64"], args.steps, rng))
        print(
            f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in runs.items()),
            flush=True,
        )
    a, b = worlds["fast_64"].reset(7).image.astype(int), worlds["stock_64"].reset(7).image.astype(int)
    image_diff = float(np.mean(np.abs(a - b)))
    for w in worlds.values():
        w.close()

    med = {name: float(np.median(v)) for name, v in runs.items()}
    results = {
        "steps_per_s": med,
        "render_ms": {name: float(np.median(v)) for name, v in renders.items()},
        "steps_per_s_best_round": {name: float(np.max(v)) for name, v in runs.items()},
        "steps_per_s_without_render_fast_64": float(np.median(physics)),
        "speedup_fast_vs_stock_64": med["fast_64"] / med["stock_64"],
        "speedup_fast_vs_stock_128": med["fast_128"] / med["stock_128"],
        "cost_of_sorted_pairs_64": med["fast_64_unsorted_pairs"] / med["fast_64"],
        "mean_abs_pixel_diff_fast_vs_stock_64": image_diff,
        "goal_steps_per_s_64": GOAL_STEPS_PER_S,
        "goal_met": med["fast_64"] >= GOAL_STEPS_PER_S,
        "all_runs": runs,
    }
    report = {
        "benchmark": "sim",
        "steps": args.steps,
        "rounds": args.rounds,
        "statistic": "median",
        "physics_hz": PHYSICS_HZ,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "all_runs"}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
