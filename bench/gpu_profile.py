"""Where the graphed AM update spends its GPU time, and which settings move it (needs a CUDA device).

Times the product's update path (runner.make_update: store in GPU memory, one CUDA graph
replay a step) for a few settings (cuDNN autotuning, NCHW against channels_last, fp32/TF32
against bf16, GCBC for scale), then profiles ten eager updates with torch.profiler and keeps
the kernel table sorted by GPU time. Session 12 ran it on the H200 (BENCHMARKS.md).

    python3 bench/gpu_profile.py --data STORE [--out DIR]
Writes DIR/train_profile_gpu.json and DIR/train_profile_gpu_table.txt (DIR: bench/results).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from robot_app.store import Store  # noqa: E402
from training.am import autocast  # noqa: E402
from training.runner import TrainConfig, build_algorithm, effective_sampler, make_update, to_torch  # noqa: E402
from training.sampler import GoalSampler  # noqa: E402

# name -> (TrainConfig overrides, cudnn.benchmark)
VARIANTS = {
    "bf16_cl": ({}, False),
    "bf16_cl_bench": ({}, True),
    "bf16_nchw_bench": ({"channels_last": False}, True),
    "fp32tf32_cl_bench": ({"precision": "fp32"}, True),
    "gcbc_bf16_cl_bench": ({"algo": "gcbc"}, True),
}


def trainer(c: TrainConfig, store: Store, device: torch.device):
    algo = build_algorithm(c, device)
    sampler = GoalSampler(store, effective_sampler(c), seed=0, height_input=c.network.height_input)
    return algo, make_update(c, algo, store, sampler, torch.Generator().manual_seed(2), device, c.batch_size, distributed=False)


def rate(step, n: int = 200, repeats: int = 3) -> float:
    """Median calls/s of `step` over `repeats` runs of n, after 8 untimed calls (past graph capture)."""
    for _ in range(8):
        step()
    rates = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            step()
        torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - start))
    return round(statistics.median(rates), 1)


def kernel_table(step, updates: int = 10) -> str:
    for _ in range(updates):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(updates):
            step()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="training store")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    device, store, out = torch.device("cuda"), Store.open(args.data), {}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    for name, (overrides, autotune) in VARIANTS.items():
        torch.backends.cudnn.benchmark = autotune
        out[name] = rate(trainer(replace(TrainConfig(seed=0), **overrides), store, device)[1])
        print(name, out[name], "updates/s", flush=True)
    torch.backends.cudnn.benchmark = True
    c = replace(TrainConfig(seed=0), cuda_graph=False)
    algo, step = trainer(c, store, device)
    table = kernel_table(step)
    print(table)
    batch = to_torch(GoalSampler(store, effective_sampler(c), seed=0).sample(c.batch_size), device, 4,
                     torch.Generator().manual_seed(0))

    def target_only():
        with autocast(device, c.precision):
            algo.td_target(batch)

    out["eager_td_target_per_s"] = rate(target_only, n=100)
    out["eager_update_per_s"] = rate(lambda: algo.update(batch), n=100)
    print(out)
    Path(args.out, "train_profile_gpu.json").write_text(json.dumps(out, indent=1) + "\n")
    Path(args.out, "train_profile_gpu_table.txt").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
