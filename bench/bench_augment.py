"""Augmentation cost on the CPU: random shifts, and hue turns on every image or only on those read.

`--set augment_hue=F` (training/augment.py) turns each sample's colours on the host, a float
pass over every image of the batch. GCBC reads the current and goal image only, so the turn
of the next frame is work nobody uses; since session 16 `to_torch` turns only the
algorithm's `image_inputs`. This measures what that saves, in the same process, with the
three feeds interleaved (ABC, CBA, ...) so a noisy machine slows each alike:

- `shift`: random shifts only (the default training feed);
- `hue_every_image`: shifts + hue turns of the current, next and goal image (session 15);
- `hue_images_read`: shifts + hue turns of GCBC's image_inputs (current and goal).

Each is timed as `to_torch` alone (tensors, shifts, turns) and as a whole GCBC update step
(sampling from the store + `to_torch` + forward/backward/Adam, bf16, channels_last), one thread.

    .venv/bin/python bench/bench_augment.py [--batch 256] [--repeats 15] [--data STORE]
Writes bench/results/augment.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
from common import RESULTS, machine, write_report

from robot_app.store import Store  # noqa: E402
from training.device_step import IMAGE_KEYS  # noqa: E402
from training.gcbc import GCBC  # noqa: E402
from training.runner import TrainConfig, build_algorithm, effective_sampler, to_torch  # noqa: E402
from training.sampler import GoalSampler, make_synthetic_store  # noqa: E402

FEEDS = {"shift": (0.0, IMAGE_KEYS), "hue_every_image": (1.0, IMAGE_KEYS), "hue_images_read": (1.0, GCBC.image_inputs)}


def measure(store: Store, batch: int, repeats: int) -> dict:
    config = TrainConfig(algo="gcbc", batch_size=batch, seed=0)
    algo = build_algorithm(config, torch.device("cpu"))
    sampler = GoalSampler(store, effective_sampler(config), seed=0)
    generator = torch.Generator().manual_seed(2)

    def augment(sample, feed: str):
        hue, keys = FEEDS[feed]
        return to_torch(sample, torch.device("cpu"), config.augment_pad, generator, hue=hue, hue_keys=keys)

    for feed in FEEDS:  # warm-up: allocator, oneDNN kernels
        algo.update(augment(sampler.sample(batch), feed))
    prep: dict[str, list[float]] = {feed: [] for feed in FEEDS}
    step: dict[str, list[float]] = {feed: [] for feed in FEEDS}
    order = list(FEEDS)
    for r in range(repeats):
        for feed in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            sample = sampler.sample(batch)
            sampled = time.perf_counter()
            b = augment(sample, feed)
            augmented = time.perf_counter()
            algo.update(b)
            prep[feed].append(1e3 * (augmented - sampled))
            step[feed].append(1e3 * (time.perf_counter() - start))
        print(f"repeat {r}: " + ", ".join(f"{f} {prep[f][-1]:.0f} / {step[f][-1]:.0f} ms" for f in FEEDS), flush=True)
    out = {feed: {"to_torch_ms_median": round(statistics.median(prep[feed]), 2),
                  "step_ms_median": round(statistics.median(step[feed]), 1),
                  "updates_per_s_median": round(1e3 / statistics.median(step[feed]), 3)} for feed in FEEDS}
    out["saved_by_reading_only"] = {
        "to_torch_ms": round(out["hue_every_image"]["to_torch_ms_median"] - out["hue_images_read"]["to_torch_ms_median"], 2),
        "updates_per_s_ratio": round(out["hue_images_read"]["updates_per_s_median"]
                                     / out["hue_every_image"]["updates_per_s_median"], 3),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per feed (median reported)")
    parser.add_argument("--data", default="", help="a real store (default: a synthetic one of 40 x 50 steps)")
    parser.add_argument("--out", default=str(RESULTS / "augment.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or make_synthetic_store(Path(tmp) / "store", episodes=40, steps=50)
        results = measure(Store.open(path), args.batch, args.repeats)
    write_report(args.out, {"machine": {**machine(), "load_average": os.getloadavg()}, "batch": args.batch,
                            "threads": 1, "store": args.data or "synthetic 40 x 50", "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
