"""What a GCIVL run's value says about its own data: distance, and the weights it gives the policy.

GCIVL clones each action with weight exp(alpha * P), P = gamma V(s', g) - V(s, g): a value
that cannot tell a goal 2 steps away from one 30 away makes P noise, and the policy then
copies whatever the clip favours. This draws relabelled transitions from the run's own
store (its sampler settings, a fixed seed) and reports, per band of logged steps to the goal,
the mean V, the logged discounted return, the regression target and P; then how P spreads,
the share of weights at the clip and the batch's effective sample size (sum w)^2 / sum w^2.

    .venv/bin/python bench/gcivl_value.py --run runs/gcivl_mc_a3_s0 --checkpoint 6000

One JSON per run and checkpoint in bench/results/gcivl_value/, and the table printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robot_app.store import Store  # noqa: E402
from training.config import from_dict  # noqa: E402
from training.gcivl import GCIVL  # noqa: E402
from training.runner import TrainConfig, effective_sampler, find_checkpoint, to_torch  # noqa: E402
from training.sampler import GoalSampler  # noqa: E402

OUT = ROOT / "bench" / "results" / "gcivl_value"
BANDS = ((1, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, 10_000))


def load(run: str, checkpoint: str) -> tuple[GCIVL, TrainConfig, int]:
    ckpt = torch.load(find_checkpoint(run, checkpoint), map_location="cpu", weights_only=True)
    c = from_dict(TrainConfig, ckpt["config"])
    if c.algo != "gcivl":
        raise SystemExit(f"{run}: a {c.algo!r} run, not gcivl")
    algo = GCIVL(c.gcivl, c.network, torch.device("cpu"), precision="fp32")
    algo.load_state_dict(ckpt["algorithm"])
    return algo, c, int(ckpt["step"])


def report(algo: GCIVL, c: TrainConfig, samples: int, seed: int) -> dict:
    store = Store.open(c.data)
    sampler = GoalSampler(store, effective_sampler(c), seed=seed, height_input=c.network.height_input)
    b = to_torch(sampler.sample(samples), torch.device("cpu"))
    with torch.no_grad():
        heads = algo.value(b["image"], b["goal"], b["gripper"])
        v = heads.mean(dim=1)
        value_target = algo.value_target(b)
        progress = algo.progress(b, heads)
    gamma, k = c.gcivl.gamma, b["steps_to_goal"].float()
    logged = -(1.0 - gamma**k) / (1.0 - gamma)
    weight = algo.awr_weight(progress, b)
    bands = {}
    for lo, hi in BANDS:
        m = (k >= lo) & (k < hi)
        if m.any():
            bands[f"{lo}-{hi - 1}"] = {"n": int(m.sum()), "V": float(v[m].mean()), "logged_return": float(logged[m].mean()),
                                       "value_target": float(value_target[m].mean()), "P": float(progress[m].mean())}
    has_path = k > 0
    return {
        "samples": samples,
        "corr_V_logged_return": float(np.corrcoef(v[has_path].numpy(), logged[has_path].numpy())[0, 1]),
        "bands": bands,
        "P_quantiles_5_25_50_75_95": np.quantile(progress.numpy(), [0.05, 0.25, 0.5, 0.75, 0.95]).round(3).tolist(),
        "share_at_clip": float((weight >= c.gcivl.max_weight).float().mean()),
        "effective_samples": float(weight.sum() ** 2 / (weight**2).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    torch.set_num_threads(1)
    algo, c, step = load(args.run, args.checkpoint)
    result = {"run": args.run, "step": step, "gcivl": asdict(c.gcivl),
              **report(algo, c, args.samples, args.seed)}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{Path(args.run).name}@{step}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"{args.run} @ {step}: corr(V, logged return) {result['corr_V_logged_return']:.2f}, "
          f"{100 * result['share_at_clip']:.0f}% of weights at the clip, effective samples "
          f"{result['effective_samples']:.0f} of {args.samples}")
    print("| logged steps | n | V | logged return | value target | P |\n|---|---:|---:|---:|---:|---:|")
    for band, r in result["bands"].items():
        print(f"| {band} | {r['n']} | {r['V']:.2f} | {r['logged_return']:.2f} | {r['value_target']:.2f} | {r['P']:.2f} |")
    print(f"P quantiles 5/25/50/75/95%: {result['P_quantiles_5_25_50_75_95']} -> {path}")


if __name__ == "__main__":
    main()
