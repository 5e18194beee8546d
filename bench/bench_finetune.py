"""Fine-tuning on the held-out grasp: success of scratch, pretrained and pretrained + CDS (issue 8 item 4).

For each labelled-data size (the first N episodes of one task store), each mode and each
seed: `training.finetune.finetune` for --steps updates, export to ONNX with the task's goal
image, and evaluate through the shipped runtime (robot_app.policy.Policy, CEM over
onnxruntime) on the `grasp-heldout` goal family for --episodes-eval episodes; the policy
pursues its card's goal image, the suite's start states and success check decide.
Writes bench/results/finetune.json (rewritten after each run, so a stopped benchmark keeps
what it measured).

Inputs are made when not given: a labelled task store (`collect --task grasp-heldout`),
an unlabelled play store (the CDS source and the pretraining data) and a pretrained AM run
(`--pretrain-steps` updates with `--pretrain-set` overrides). The issue's full size:

    .venv/bin/python bench/bench_finetune.py --sizes 25,50,100 --seeds 0,1,2 --episodes-eval 100 --steps 5000 \
        --pretrained runs/am --play-store data/play --task-store data/grasp_heldout
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("scratch", "pretrained", "cds")
# A Q-network a 2-core CPU trains in minutes; pass --pretrain-set to use the default size.
SMALL_NETWORK = ["network.channels=[16,32,32,32]", "network.feature_dim=128", "network.head_hidden=128"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="25,50,100", help="labelled episodes used (first N of the task store)")
    p.add_argument("--seeds", default="0", help="fine-tuning and evaluation seeds")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--steps", type=int, default=600, help="fine-tuning updates per run")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--share-percentile", type=float, default=90.0)
    p.add_argument("--episodes-eval", type=int, default=30, help="grasp-heldout evaluation episodes per run")
    p.add_argument("--task-store", help="labelled task store (default: collect --task-episodes into --work)")
    p.add_argument("--task-episodes", type=int, default=100)
    p.add_argument("--play-store", help="unlabelled play store (default: collect --play-episodes into --work)")
    p.add_argument("--play-episodes", type=int, default=200)
    p.add_argument("--pretrained", help="goal-conditioned run, or for --modes bc,bc-scratch a cloned model such as "
                   "models/gcbc_grasp.onnx (default: pretrain an AM run into --work)")
    p.add_argument("--pretrain-steps", type=int, default=4000)
    p.add_argument("--pretrain-set", action="append", default=None, metavar="KEY=VALUE",
                   help=f"overrides of the pretraining config (default: {' '.join(SMALL_NETWORK)} batch_size=64)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fine-tuning setting for every run, e.g. --set gamma=0.9 --set return_floor=false "
                        "(run names do not include it: give such a grid its own --work)")
    p.add_argument("--num-threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--work", default=str(ROOT / "data" / "bench_finetune"), help="stores, runs and models of the benchmark")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "finetune.json"))
    return p.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def collect_store(work: Path, name: str, task: str, episodes: int, seed: int) -> Path:
    """Bags with `robot-app collect`, then a store with `robot-app dataset build` (skipped when present)."""
    from robot_app.cli import main

    store = work / f"{name}_store"
    if (store / "manifest.json").is_file():
        return store
    bags = work / f"{name}_bags"
    if main(["collect", "--task", task, "--episodes", str(episodes), "--seed", str(seed), "--out", str(bags)]) != 0:
        raise RuntimeError(f"collect {task} failed")
    if main(["dataset", "build", str(bags), "-o", str(store)]) != 0:
        raise RuntimeError(f"dataset build of {bags} failed")
    return store


def pretrain(work: Path, play_store: Path, steps: int, overrides: list[str], threads: int) -> Path:
    from training import runner

    run_dir = work / "pretrained"
    if runner.list_checkpoints(run_dir):
        return run_dir
    config = runner.resolve_config(algo="am", steps=steps, data=str(play_store),
                                   overrides=[*overrides, f"num_threads={threads}", "log_every=100", "checkpoint_every=1000"])
    runner.train(config, run_dir)
    return run_dir


def subset_store(task_store: Path, n: int, work: Path) -> Path:
    """The first n episodes of the task store, as a store of their own."""
    import numpy as np

    from robot_app.store import Store, write_store

    out = work / f"task_{n}"
    if (out / "manifest.json").is_file():
        return out
    store = Store.open(task_store)
    if n > store.num_episodes:
        raise ValueError(f"{task_store}: --sizes asks for {n} episodes, the store has {store.num_episodes}")
    episodes = []
    for record, (start, end) in zip(store.manifest["episodes"][:n], store.episode_bounds()[:n], strict=True):
        episodes.append({name: np.asarray(getattr(store, name)[start:end]) for name in ("images", "actions", "gripper", "timestamps")}
                        | {"ee_position": None if store.ee_position is None else np.asarray(store.ee_position[start:end])}
                        | {k: record.get(k) for k in ("source", "sha256", "success", "task")})
    return write_store(out, episodes, {"action_scaling": store.manifest.get("action_scaling")} if store.manifest.get("action_scaling") else None)


def run_one(mode: str, n: int, seed: int, args, paths: dict, work: Path) -> dict:
    from robot_app.evaluation import evaluate_suite
    from robot_app.policy import Policy
    from training.finetune import export_finetuned, finetune, resolve_config

    name = f"{mode}_{n}_s{seed}_{args.steps}steps"
    run_dir = work / "runs" / name
    values = {"mode": mode, "data": str(paths[n]), "steps": args.steps, "seed": seed, "batch_size": args.batch_size,
              "pretrained": str(paths["pretrained"]),  # scratch takes only its network and hyperparameters
              "num_threads": args.num_threads, "log_every": 50, "checkpoint_every": args.steps}
    if mode == "cds":
        values.update(share_data=str(paths["play"]), share_percentile=args.share_percentile)
    config = resolve_config(None, args.overrides, **values)
    started = time.perf_counter()
    if not any((run_dir / "checkpoints").glob("*.pt")):
        finetune(config, run_dir, progress=False)
    train_s = time.perf_counter() - started
    onnx_path, _, _ = export_finetuned(run_dir, work / "models" / f"{name}.onnx")
    policy = Policy.load(onnx_path, seed=seed)
    started = time.perf_counter()
    results = evaluate_suite(policy, ["grasp-heldout"], args.episodes_eval, seed, image_size=policy.image_size, progress=False)
    family = results["families"]["grasp-heldout"]
    return {"mode": mode, "episodes": n, "seed": seed, **family, "train_s": round(train_s, 1),
            "eval_s": round(time.perf_counter() - started, 1), "model": str(onnx_path)}


def summarise(runs: list[dict]) -> dict:
    import numpy as np

    table: dict = {}
    for r in runs:
        cell = table.setdefault(r["mode"], {}).setdefault(str(r["episodes"]), {"per_seed": []})
        cell["per_seed"].append({k: r[k] for k in ("seed", "success_rate", "ci95", "n", "successes", "mean_steps")})
    for modes in table.values():
        for cell in modes.values():
            k = sum(s["successes"] for s in cell["per_seed"])
            n = sum(s["n"] for s in cell["per_seed"])
            from robot_app.evaluation import seed_interval, wilson_interval

            rates = [s["success_rate"] for s in cell["per_seed"]]
            cell.update(success_rate=k / n, ci95=[round(x, 4) for x in wilson_interval(k, n)], n=n,
                        seed_std=float(np.std(rates)))
            if len(rates) > 1:  # the interval over trained models (robot_app.evaluation.seed_interval: why)
                cell["seed_ci95"] = [round(max(0.0, x), 4) for x in seed_interval(rates)[1:]]
    return table


def goal_check(table: dict) -> dict:
    """The issue's goal: pretrained >= 60% with 50 episodes, and >= 3x scratch (for the Q modes and the cloning modes)."""
    checks = {}
    for pretrained, scratch in (("pretrained", "scratch"), ("bc", "bc-scratch")):
        pre = table.get(pretrained, {}).get("50", {}).get("success_rate")
        base = table.get(scratch, {}).get("50", {}).get("success_rate")
        if pre is None or base is None:
            continue
        checks[pretrained] = {"pretrained_50": pre, "scratch_50": base, "at_least_60pct": pre >= 0.6,
                              "at_least_3x_scratch": pre >= 3 * base if base > 0 else pre > 0}
    return {"evaluated": bool(checks), **checks}


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.num_threads or os.cpu_count() or 1)
    started = time.perf_counter()
    task_store = Path(args.task_store) if args.task_store else collect_store(work, "task", "grasp-heldout", args.task_episodes, 100)
    play_store = Path(args.play_store) if args.play_store else collect_store(work, "play", "play", args.play_episodes, 7)
    overrides = args.pretrain_set if args.pretrain_set is not None else [*SMALL_NETWORK, "batch_size=64"]
    pretrained = Path(args.pretrained) if args.pretrained else pretrain(work, play_store, args.pretrain_steps, overrides, args.num_threads)
    sizes, seeds, modes = _ints(args.sizes), _ints(args.seeds), [m for m in args.modes.split(",") if m]
    paths = {"pretrained": pretrained, "play": play_store, **{n: subset_store(task_store, n, work) for n in sizes}}
    prepared_s = time.perf_counter() - started
    report = {
        "benchmark": "finetune",
        "what": "grasp-heldout success of the exported task model (ONNX runtime, task goal image) after fine-tuning",
        "config": {"sizes": sizes, "seeds": seeds, "modes": modes, "steps": args.steps, "batch_size": args.batch_size,
                   "share_percentile": args.share_percentile, "episodes_eval": args.episodes_eval,
                   "task_store": str(task_store), "play_store": str(play_store), "pretrained": str(pretrained),
                   "num_threads": args.num_threads, "overrides": args.overrides},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "prepare_s": round(prepared_s, 1),
        "runs": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        for seed in seeds:
            for mode in modes:
                r = run_one(mode, n, seed, args, paths, work)
                report["runs"].append(r)
                print(f"{mode:10s} n={n:3d} seed={seed}: success {r['successes']}/{r['n']} "
                      f"(train {r['train_s']} s, eval {r['eval_s']} s)", flush=True)
                report["results"] = summarise(report["runs"])
                report["goal"] = goal_check(report["results"])
                report["total_s"] = round(time.perf_counter() - started, 1)
                tmp = out.with_name(out.name + ".tmp")
                tmp.write_text(json.dumps(report, indent=2) + "\n")
                os.replace(tmp, out)
    print(json.dumps({"results": {m: {n: c["success_rate"] for n, c in v.items()} for m, v in report["results"].items()},
                      "goal": report["goal"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
