"""Training speed: full Actionable Models updates/s, plain eager fp32 NCHW against the optimised setup.

Both configurations run the same update (batch 256, CEM targets with 64 samples x 2
iterations on the target net, clipped double Q, 4 artificial negatives from 16
candidates, random-shift augmentation, sampling from a memory-mapped store) in the same
process, their timed windows interleaved (plain, optimised, plain, ...) so that a noisy
shared machine slows both alike. Reported: the median updates/s over the windows, and the
time split of one update. The optimised setup differs only in how the maths runs:
channels_last conv layout, bf16 autocast (fp32 losses and targets) and a foreach Adam step
(torch's CPU default loops over the tensors); CEM sample counts are the same in both.

`--quality N` also trains both for N updates on a small learnable store from the same
seed and reports their losses, to check bf16 does not break learning.

Thread counts: 2 (the machine's cores) and 1. On a machine shared with other busy
processes two OpenMP threads can lose more to waiting on each other than they gain, so
both are measured and the load average is recorded next to them.

    .venv/bin/python bench/bench_train_speed.py [--batch 256] [--windows 8] [--updates 2] [--threads 2,1] [--quality 100]
Writes bench/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import write_report  # noqa: E402

from robot_app.store import Store  # noqa: E402
from training.runner import TrainConfig, build_algorithm, effective_sampler, make_update, to_torch  # noqa: E402
from training.sampler import GoalSampler, make_synthetic_store  # noqa: E402

HOST = {"data_on_device": False, "cuda_graph": False}
FAST = {"precision": "bf16", "channels_last": True, "optimizer_foreach": True}
SETUPS = {
    "plain_fp32_nchw": {"precision": "fp32", "channels_last": False, "optimizer_foreach": False, **HOST},
    "optimised_bf16_channels_last": {**FAST, **HOST},
}
# On a GPU two more, each adding one step of training/device_step.py to the optimised maths:
# the store in GPU memory (batches gathered there), then one CUDA graph replay per update.
GPU_SETUPS = {
    "optimised_data_on_gpu": {**FAST, "data_on_device": True, "cuda_graph": False},
    "optimised_data_on_gpu_cuda_graph": {**FAST, "data_on_device": True, "cuda_graph": True},
}


WHAT = {
    "am": "full AM update (CEM targets 64x2 on target net, clipped double Q, 4 negatives of 16, random shift)",
    "gcbc": "GCBC update (one policy network, action score loss, random shift)",
}


class Trainer:
    """One configuration's algorithm, sampler and augmentation generator."""

    def __init__(self, config: TrainConfig, store: Store, device: torch.device):
        self.config, self.device = config, device
        self.algo = build_algorithm(config, device)
        self.sampler = GoalSampler(store, effective_sampler(config), seed=config.seed)
        self.aug = torch.Generator().manual_seed(config.seed + 2)
        self.step = make_update(config, self.algo, store, self.sampler, self.aug, device, config.batch_size, distributed=False)

    def batch(self):
        return to_torch(self.sampler.sample(self.config.batch_size), self.device, self.config.augment_pad, self.aug)

    def window(self, updates: int) -> float:
        """Updates/s over `updates` steps, up to the GPU having finished them."""
        self.sync()
        start = time.perf_counter()
        for _ in range(updates):
            self.step()
        self.sync()
        return updates / (time.perf_counter() - start)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def split(self, repeats: int = 3) -> dict:
        """Median milliseconds of the update's parts: sampling+augmentation, TD target (CEM), whole update."""
        times = {"sample_ms": [], "target_ms": [], "update_ms": []}
        for _ in range(repeats):
            t0 = time.perf_counter()
            b = self.batch()
            t1 = time.perf_counter()
            if hasattr(self.algo, "td_target"):
                from training.am import autocast

                with autocast(self.algo.device, self.algo.precision):
                    self.algo.td_target(b)
            t2 = time.perf_counter()
            self.algo.update(b)
            t3 = time.perf_counter()
            times["sample_ms"].append(1e3 * (t1 - t0))
            times["target_ms"].append(1e3 * (t2 - t1))
            times["update_ms"].append(1e3 * (t3 - t2))
        return {k: round(statistics.median(v), 1) for k, v in times.items()}


def speed(args, store: Store, device: torch.device) -> dict:
    base = TrainConfig(algo=args.algo, batch_size=args.batch, seed=0)
    setups = {**SETUPS, **(GPU_SETUPS if device.type == "cuda" else {})}
    if args.hue:  # the fastest set-up again with hue turns, so their cost is measured side by side
        fastest = list(setups)[-1]
        setups[f"{fastest}_hue"] = {**setups[fastest], "augment_hue": args.hue}
    trainers = {name: Trainer(replace(base, **setup), store, device) for name, setup in setups.items()}
    for trainer in trainers.values():  # warm-up: allocator, oneDNN/cuDNN caches, graph capture
        for _ in range(args.warmup):
            trainer.step()
    windows: dict[str, list[float]] = {name: [] for name in trainers}
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    order = list(trainers)
    for w in range(args.windows):
        for name in order if w % 2 == 0 else order[::-1]:  # ABBA: neither always runs first
            cpu_start = time.process_time()
            windows[name].append(trainers[name].window(args.updates))
            cpu[name].append((time.process_time() - cpu_start) / args.updates)
        print(f"window {w}: " + ", ".join(f"{n} {v[-1]:.2f} upd/s" for n, v in windows.items()), flush=True)
    out = {}
    for name, trainer in trainers.items():
        out[name] = {
            **setups[name],
            "updates_per_s_median": round(statistics.median(windows[name]), 3),
            "updates_per_s_windows": [round(v, 3) for v in windows[name]],
            "cpu_s_per_update_median": round(statistics.median(cpu[name]), 5),
        }
        if device.type == "cpu":
            out[name]["split_ms"] = trainer.split()
        else:
            out[name]["cuda_graph_engaged"] = bool(getattr(trainer.step, "graphed", False))
    return out


def quality(args, tmp: Path) -> dict:
    """Same seed, same data, fp32 plain vs bf16 channels_last: the losses should track each other."""
    store = Store.open(make_synthetic_store(tmp / "learnable", episodes=16, steps=24, constant_actions=True, seed=1))
    base = TrainConfig(batch_size=64, seed=0, am=replace(TrainConfig().am, lr=1e-3))
    result = {}
    for name, setup in SETUPS.items():
        trainer = Trainer(replace(base, **setup), store, torch.device("cpu"))
        first, last = [], []
        for i in range(args.quality):
            m = {k: float(v) for k, v in trainer.step().items()}
            (first if i < 20 else last if i >= args.quality - 20 else []).append(m["loss_td"] + m["loss_neg"])
        result[name] = {"loss_first20": round(statistics.mean(first), 4), "loss_last20": round(statistics.mean(last), 4)}
        print(f"quality {name}: {result[name]}", flush=True)
    result["updates"] = args.quality
    result["batch"] = 64
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--windows", type=int, default=8, help="timed windows per configuration (median reported)")
    parser.add_argument("--updates", type=int, default=2, help="updates per timed window")
    parser.add_argument("--threads", default="2,1", help="torch thread counts to measure, comma-separated")
    parser.add_argument("--quality", type=int, default=0, help="updates of the bf16-vs-fp32 learning check (0 = skip)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates per configuration first (GPU: >= 4, past graph capture)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--data", default="", help="a real store to sample from (default: a synthetic one of --episodes x 50 steps)")
    parser.add_argument("--episodes", type=int, default=40, help="synthetic store size (a GPU gather from a store that fits in L2 would flatter it)")
    parser.add_argument("--algo", default="am", choices=("am", "gcbc"), help="whose update to time")
    parser.add_argument("--hue", type=float, default=0.0, help="also time the fastest set-up with augment_hue=F")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as robot-app train sets it
    args.out = args.out or str(ROOT / "bench" / "results" / ("train_speed.json" if args.device == "cpu" else "train_speed_gpu.json"))
    report = {
        "benchmark": "train_speed",
        "what": WHAT[args.algo],
        "algo": args.algo,
        "batch": args.batch,
        "updates_per_window": args.updates,
        "windows": args.windows,
        "by_threads": {},
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores_visible": len(os.sched_getaffinity(0)),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(args.data or make_synthetic_store(Path(tmp) / "store", episodes=args.episodes, steps=50))
        report.update(data=args.data or f"synthetic, {args.episodes} episodes x 50 steps", store_frames=len(store))
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            print(f"== {threads} thread(s)", flush=True)
            results = speed(args, store, device)
            plain, fast = results["plain_fp32_nchw"]["updates_per_s_median"], max(r["updates_per_s_median"] for r in results.values())
            cpu_plain, cpu_fast = (results[name]["cpu_s_per_update_median"] for name in SETUPS)
            report["by_threads"][str(threads)] = {
                "results": results,
                "speedup": round(fast / plain, 2),
                "speedup_in_cpu_time": round(cpu_plain / cpu_fast, 2),
                "load_avg_1m_after": round(os.getloadavg()[0], 2),
            }
            print(f"{threads} thread(s): plain {plain:.2f} upd/s, optimised {fast:.2f} upd/s, speedup {fast / plain:.2f}x", flush=True)
        if args.quality:
            torch.set_num_threads(min(int(t) for t in args.threads.split(",")))  # learning, not speed
            report["bf16_quality"] = quality(args, Path(tmp))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
