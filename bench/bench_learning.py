"""The learning benchmark of issue 4: AM and its baselines on one dataset, one budget, several seeds.

For every (algorithm, seed) it runs the user's own commands, `robot-app train` then
`robot-app eval` (through the ONNX runtime, the code the robot runs), and keeps the eval
JSON in bench/results/learning/ALGO_sSEED.json. An "algorithm" may also be a variant, an
algorithm with settings changed (VARIANTS: `am-floor` is AM with the return floor on, `am-aligned` and `gcbc-aligned` shift a sample's images together), and `random` is the chance level (uniform
actions, nothing trained). A cell whose JSON exists is not run again,
so the benchmark can be stopped and continued, and seeds can be added later: the table is
always rebuilt from every JSON present.

The table pools the seeds of each cell (successes over n = episodes x seeds, Wilson 95%
interval) and lists the per-seed rates, because with few seeds the spread between seeds
says more than the interval. It is written as markdown (summary.md) and as a bar chart
(docs/img/learning.png).

    .venv/bin/python bench/bench_learning.py --seeds 0,1,2 [--steps 3000] [--episodes 20]
    .venv/bin/python bench/bench_learning.py --table-only
    .venv/bin/python bench/bench_learning.py --table-only --results bench/results/learning_gpu10k

`--results DIR` rebuilds the table of evals made elsewhere, e.g. of runs trained on the GPU
machine (session 12: 10000 updates a run, exported there, evaluated here); its picture goes
to docs/img/DIRNAME.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine

from robot_app.evaluation import wilson_interval

ALGOS = {"random": "random actions (chance)", "am": "AM (Actionable Models)", "gcbc": "GCBC", "am-nonneg": "AM without negatives",
         "am-nochain": "AM without chaining", "am-floor": "AM + return floor",
         "am-aligned": "AM, aligned shifts", "gcbc-aligned": "GCBC, aligned shifts"}
# Cells that are an algorithm with settings changed: name -> (--algo, --set overrides).
VARIANTS = {"am-floor": ("am", ["am.return_floor=true"]), "am-aligned": ("am", ["augment_aligned=true"]),
            "gcbc-aligned": ("gcbc", ["augment_aligned=true"])}
FAMILIES = ("reach", "push", "grasp", "rearrange", "chain")
# The chance row: nothing to train, so one cell (seed 0) on three seeds' worth of episodes,
# the first `--episodes` of them the very tasks the trained cells face.
RANDOM_EPISODE_FACTOR = 3
OUT = ROOT / "bench" / "results" / "learning"
ROBOT_APP = str(Path(sys.executable).with_name("robot-app"))


def run_cell(algo: str, seed: int, args) -> Path:
    """Train and evaluate one cell; its eval JSON path. The run directory is kept for curves."""
    result = OUT / f"{algo}_s{seed}.json"
    if algo == "random":
        command = [ROBOT_APP, "eval", "--policy", "random", "--episodes", str(args.episodes * RANDOM_EPISODE_FACTOR),
                   "--seed", "0", "--json", str(result), "--no-progress"]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
        return result
    run = ROOT / "runs" / f"bench_{algo}_s{seed}"
    base, overrides = VARIANTS.get(algo, (algo, []))
    train = [ROBOT_APP, "train", "--data", args.data, "--algo", base, "--out", str(run), "--steps", str(args.steps),
             *(arg for text in overrides for arg in ("--set", text)),
             "--set", f"seed={seed}", "--set", "num_threads=1", "--set", f"checkpoint_every={args.checkpoint_every}",
             "--no-progress"]
    if any((run / "checkpoints").glob("*.pt")):
        train.append("--resume")  # an interrupted cell continues from its last checkpoint
    evaluate = [ROBOT_APP, "eval", "--policy", str(run), "--episodes", str(args.episodes), "--seed", "0",
                "--json", str(result), "--out", str(run / "eval"), "--no-progress"]
    for command in (train, evaluate):
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    return result


def load_cells(results: Path = OUT) -> dict[tuple[str, int], dict]:
    cells = {}
    for path in sorted(results.glob("*_s*.json")):
        algo, _, seed = path.stem.rpartition("_s")
        if algo in ALGOS and seed.isdigit():
            cells[(algo, int(seed))] = json.loads(path.read_text())
    return cells


def pooled(cells: dict, algo: str) -> dict[str, dict]:
    """Per family: pooled rate, Wilson interval, n and the per-seed rates of one algorithm."""
    seeds = sorted(s for a, s in cells if a == algo)
    table = {}
    for family in FAMILIES:
        rows = [cells[(algo, s)]["families"][family] for s in seeds if family in cells[(algo, s)]["families"]]
        successes, n = sum(r["successes"] for r in rows), sum(r["n"] for r in rows)
        if n:
            table[family] = {"success_rate": successes / n, "ci95": list(wilson_interval(successes, n)), "n": n,
                             "per_seed": [r["success_rate"] for r in rows], "seeds": seeds}
            if all("distance_closed" in r for r in rows):  # evals from session 5 on
                table[family]["distance_closed"] = sum(r["distance_closed"] * r["n"] for r in rows) / n
    return table


def markdown_distance(summary: dict) -> str:
    """Mean fraction of the start distance to the goal that the episodes removed, per family
    (robot_app.evaluation.family_summary): where every success rate is 0, whether the
    objects at least moved toward their goals."""
    lines = ["| algorithm | " + " | ".join(FAMILIES) + " |", "|---|" + "---:|" * len(FAMILIES)]
    for algo, table in summary.items():
        closed = [table.get(f, {}).get("distance_closed") for f in FAMILIES]
        if any(c is not None for c in closed):
            lines.append(f"| {ALGOS[algo]} | " + " | ".join("-" if c is None else f"{round(100 * c)}%" for c in closed) + " |")
    return "\n".join(lines) + "\n"


def markdown(summary: dict) -> str:
    lines = ["| algorithm | seeds | " + " | ".join(FAMILIES) + " | mean |", "|---|---:|" + "---:|" * (len(FAMILIES) + 1)]
    for algo, table in summary.items():
        cells, rates = [], []
        for family in FAMILIES:
            if family not in table:
                cells.append("-")
                continue
            f = table[family]
            rates.append(f["success_rate"])
            per_seed = "/".join(f"{r:.0%}" for r in f["per_seed"]) if len(f["per_seed"]) > 1 else ""
            cells.append(f"{f['success_rate']:.0%} [{f['ci95'][0]:.0%}, {f['ci95'][1]:.0%}]"
                         + (f" ({per_seed})" if per_seed else ""))
        seeds = "-" if algo == "random" else len(next(iter(table.values()))["seeds"]) if table else 0
        mean = f"{sum(rates) / len(rates):.0%}" if rates else "-"
        lines.append(f"| {ALGOS[algo]} | {seeds} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    width = 0.8 / max(len(summary), 1)
    x = np.arange(len(FAMILIES))
    for i, (algo, table) in enumerate(summary.items()):
        rate = np.array([table.get(f, {}).get("success_rate", np.nan) for f in FAMILIES]) * 100
        lo = np.array([table.get(f, {}).get("ci95", [np.nan] * 2)[0] for f in FAMILIES]) * 100
        hi = np.array([table.get(f, {}).get("ci95", [np.nan] * 2)[1] for f in FAMILIES]) * 100
        ax.bar(x + i * width - 0.4 + width / 2, rate, width, yerr=[rate - lo, hi - rate], capsize=2, label=ALGOS[algo])
    ax.set_xticks(x, FAMILIES)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, ncols=2)
    ax.set_title("goal reaching per family (pooled seeds, Wilson 95%)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default=",".join(ALGOS), help="comma-separated (default: all of them)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default: 0,1,2)")
    parser.add_argument("--steps", type=int, default=3000, help="gradient updates per run (batch 256)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per family")
    parser.add_argument("--data", default=str(ROOT / "data" / "store"), help="training store")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--table-only", action="store_true", help="only rebuild the table from the JSON present")
    parser.add_argument("--results", default=str(OUT), help="directory of the eval JSONs (with --table-only: any)")
    args = parser.parse_args()
    results = Path(args.results)
    if results.resolve() != OUT.resolve() and not args.table_only:
        parser.error("--results other than the default only rebuilds a table: add --table-only")

    if not args.table_only:
        for seed in (int(s) for s in args.seeds.split(",")):
            for algo in args.algos.split(","):
                if algo not in ALGOS:
                    parser.error(f"unknown algorithm {algo!r}: one of {', '.join(ALGOS)}")
                if algo == "random" and seed != 0:
                    continue
                if (OUT / f"{algo}_s{seed}.json").exists():
                    print(f"{algo} seed {seed}: done already ({OUT / f'{algo}_s{seed}.json'})")
                    continue
                t0 = time.monotonic()
                run_cell(algo, seed, args)
                print(f"{algo} seed {seed}: {time.monotonic() - t0:.0f} s", flush=True)

    cells = load_cells(results)
    summary = {algo: pooled(cells, algo) for algo in ALGOS if any(a == algo for a, _ in cells)}
    (results / "summary.json").write_text(json.dumps({"machine": machine(), "algorithms": summary}, indent=2) + "\n")
    table = markdown(summary) + "\nDistance to the goal closed (mean over episodes):\n\n" + markdown_distance(summary)
    (results / "summary.md").write_text(table)
    plot(summary, ROOT / "docs" / "img" / ("learning.png" if results.resolve() == OUT.resolve() else f"{results.name}.png"))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
