"""The fine-tuning table and picture, pooled from benchmark JSONs (bench_finetune.py, bench_finetune_bc.py).

Runs of one benchmark are spread over several JSON files (one per invocation: sizes and
seeds were run as parallel processes). This pools every run by (mode, labelled episodes)
over seeds, prints the markdown table of BENCHMARKS.md (successes / n, Wilson 95% interval,
per-seed successes, and the 95% t interval over the trained models: see
robot_app.evaluation.seed_interval) and draws success against labelled episodes (docs/img/finetune.png).
A later file's run replaces an earlier one with the same (mode, episodes, seed).
A `robot-app eval --json` file named MODE_nEPISODES_sSEED.json counts as one run too (the
product commands of session 14: `robot-app finetune ... --export`, then `robot-app eval`).

    .venv/bin/python bench/finetune_table.py bench/results/finetune_n25_v3.json bench/results/finetune_n50_v3.json \
        bench/results/finetune_n100_v3.json bench/results/finetune_bc_n50.json bench/results/finetune_bc_n25_n100.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_finetune import summarise  # noqa: E402

LABELS = {
    "scratch": "scratch",
    "pretrained": "pretrained",
    "cds": "pretrained + CDS",
    "filtered-bc-scratch": "filtered BC (reference), fresh trunk",
    "filtered-bc-pretrained": "filtered BC (reference), pretrained trunk",
    "bc": "bc: clone the successes from the shipped GCBC ensemble",
    "bc-scratch": "bc-scratch: the same from a fresh ensemble",
    "bc_failed-approaches": "bc + failed attempts' approaches",
    "bc-scratch_failed-approaches": "bc-scratch + failed attempts' approaches",
    "bc-scratch_keypoints": "bc-scratch, keypoint (spatial softmax) trunk",
    "bc-hue-pretrained_failed-approaches": "bc + failed approaches, from a GCBC pretrained with hue turns",
    "bc-hue-pretrained-p1_failed-approaches": "the same from hue-turned pretraining seed 1",
    "bc-hue-pretrained-p2_failed-approaches": "the same from hue-turned pretraining seed 2",
    "bc-hue-pretrained-1000steps_failed-approaches": "the same from hue-turned pretraining seed 0, 1000 updates",
    "bc-plain-pretrained_failed-approaches": "bc + failed approaches, from the same GCBC pretrained without them",
    "bc-plain-pretrained-p1_failed-approaches": "the same from plain pretraining seed 1",
    "bc-plain-pretrained-p2_failed-approaches": "the same from plain pretraining seed 2",
    "bc-scratch-hue_failed-approaches": "bc-scratch + failed approaches, with hue turns",
    "bc-scratch-single_failed-approaches": "bc-scratch + failed approaches, one fresh policy (no ensemble)",
    "located-labelled-scratch": "task model from the labelled attempts alone (goal model fresh, bank of their own successes)",
    "located-labelled-pretrained": "the same with the goal model from the pretraining (no play-data bank)",
    "located-scratch": "task model proposing its goal (task-goals), goal model fresh",
    "located-pretrained": "task model proposing its goal (task-goals), goal model from the pretraining",
    "located-mean3": "the same, the three pretrained goal models as one",
    "located-labelled-scratch-k5": "labelled attempts alone, acting toward 5 goal pictures (scratch)",
    "located-labelled-pretrained-k5": "goal model from the pretraining, labelled bank, 5 goal pictures",
    "located-scratch-k5": "goal model fresh, play bank, 5 goal pictures",
    "located-pretrained-k5": "goal model from the pretraining, play bank, 5 goal pictures (task-goals' default)",
    "located-mean3-k5": "the three pretrained goal models as one, 5 goal pictures",
}


def load_runs(paths: list[Path]) -> list[dict]:
    """Every run, one per (mode, episodes, seed), in seed order within a cell."""
    runs = {}
    for path in paths:
        data = json.loads(path.read_text())
        for r in data["runs"] if "runs" in data else [eval_run(path, data)]:
            runs[(r["mode"], int(r["episodes"]), int(r["seed"]))] = r
    return [runs[key] for key in sorted(runs)]


def eval_run(path: Path, data: dict) -> dict:
    """One run from a `robot-app eval --json` file named MODE_nEPISODES_sSEED.json."""
    mode, episodes, seed = path.stem.rsplit("_", 2)
    if not (episodes.startswith("n") and seed.startswith("s")):
        raise SystemExit(f"{path}: an eval JSON must be named MODE_nEPISODES_sSEED.json")
    family = data["families"]["grasp-heldout"]
    return {"mode": mode, "episodes": int(episodes[1:]), "seed": int(seed[1:]), **family}


def pool_modes(runs: list[dict], pools: list[str]) -> list[dict]:
    """--pool NAME=MODE1,MODE2,...: the runs of several modes as one mode's models (e.g. one recipe
    from three pretraining seeds, whose fine-tuning seeds repeat); seeds become 1000 * i + seed."""
    members = {}
    for spec in pools:
        name, _, modes = spec.partition("=")
        if not name or not modes:
            raise SystemExit(f"--pool {spec!r}: expected NAME=MODE1,MODE2,...")
        members.update({mode: (name, i) for i, mode in enumerate(modes.split(","))})
    pooled = [{**r, "mode": members[r["mode"]][0], "seed": 1000 * members[r["mode"]][1] + int(r["seed"])}
              if r["mode"] in members else r for r in runs]
    return sorted(pooled, key=lambda r: (r["mode"], int(r["episodes"]), int(r["seed"])))


def plot_models(cells: dict, size: int, path: Path) -> None:
    """One dot per trained model, with the pooled mean and the t interval over the models:
    how far apart models of one recipe land, which a pooled Wilson interval does not show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in cells if str(size) in cells[m]]
    fig, ax = plt.subplots(figsize=(8.5, 1.1 + 0.5 * len(modes)), dpi=110)
    for i, mode in enumerate(modes):
        c = cells[mode][str(size)]
        rates = [100 * s["success_rate"] for s in c["per_seed"]]
        ax.plot(rates, [i + 0.12] * len(rates), "o", alpha=0.55, ms=5)
        if "seed_ci95" in c:
            lo, hi = (100 * x for x in c["seed_ci95"])
            ax.errorbar([100 * c["success_rate"]], [i - 0.12], xerr=[[100 * c["success_rate"] - lo], [hi - 100 * c["success_rate"]]],
                        fmt="ks", capsize=3, ms=4)
    ax.set_yticks(range(len(modes)), [f"{LABELS.get(m, m)} ({len(cells[m][str(size)]['per_seed'])} models)" for m in modes],
                  fontsize=7)
    ax.set_xlabel(f"grasp-heldout success % of each model, {size} labelled episodes", fontsize=8)
    ax.set_xlim(0, None)
    ax.set_title("dots: trained models; squares: their mean and 95% t interval", fontsize=8)
    ax.set_ylim(-0.6, len(modes) - 0.4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(cells: dict, sizes: list[int]) -> str:
    lines = ["| mode | " + " | ".join(f"{n} episodes" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for mode in [m for m in LABELS if m in cells] + [m for m in cells if m not in LABELS]:
        row = []
        for n in sizes:
            c = cells[mode].get(str(n))
            if c is None:
                row.append("-")
                continue
            per_seed = [s["successes"] for s in c["per_seed"]]
            models = f"; models [{c['seed_ci95'][0]:.1%}, {c['seed_ci95'][1]:.1%}]" if "seed_ci95" in c else ""
            row.append(f"{sum(per_seed)}/{c['n']} = {c['success_rate']:.1%} [{c['ci95'][0]:.1%}, {c['ci95'][1]:.1%}] "
                       f"({'/'.join(map(str, per_seed))}{models})")
        lines.append(f"| {LABELS.get(mode, mode)} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(cells: dict, sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in LABELS if m in cells] + sorted(m for m in cells if m not in LABELS)  # pooled names too
    fig, ax = plt.subplots(figsize=(6, 3.2 + 0.16 * len(modes)), dpi=110)
    top = 0.0
    for i, mode in enumerate(modes):
        xs = [n for n in sizes if str(n) in cells[mode]]
        rate = [100 * cells[mode][str(n)]["success_rate"] for n in xs]
        lo = [r - 100 * cells[mode][str(n)]["ci95"][0] for r, n in zip(rate, xs, strict=True)]
        hi = [100 * cells[mode][str(n)]["ci95"][1] - r for r, n in zip(rate, xs, strict=True)]
        offset = [x + 1.5 * (i - 2) for x in xs]  # keep the error bars apart
        style = "--" if mode.startswith("filtered-bc") else "-"
        ax.errorbar(offset, rate, yerr=[lo, hi], fmt="o" + style, capsize=3, label=LABELS.get(mode, mode))
        top = max([top] + [r + h for r, h in zip(rate, hi, strict=True)])
    ax.axhline(60, color="grey", lw=0.8, ls=":")
    ax.text(sizes[0], 61, "issue goal: pretrained 60% at 50 episodes", fontsize=7, color="grey")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("labelled episodes")
    ax.set_ylabel("grasp-heldout success %")
    ax.set_ylim(0, max(70, 10 * math.ceil(top / 10)))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below: never over the curves
    ax.set_title("fine-tuning on the held-out grasp (models pooled, 100 episodes each, Wilson 95%)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="benchmark JSON files")
    parser.add_argument("--png", type=Path, help="draw success against labelled episodes here (docs/img/finetune.png is the README's)")
    parser.add_argument("--pool", action="append", default=[], metavar="NAME=MODE1,MODE2",
                        help="count several modes' runs as one mode's models (repeatable)")
    parser.add_argument("--models-png", type=Path, help="also draw every trained model of one size (--models-size)")
    parser.add_argument("--models-size", type=int, default=50)
    args = parser.parse_args(argv)
    cells = summarise(pool_modes(load_runs(args.results), args.pool))  # mode -> str(episodes) -> pooled cell
    sizes = sorted({int(n) for modes in cells.values() for n in modes})
    print(markdown(cells, sizes), end="")
    if args.png:  # no default: a table-only call must not overwrite the tracked picture
        plot(cells, sizes, args.png)
        print(f"picture: {args.png}")
    if args.models_png:
        plot_models(cells, args.models_size, args.models_png)
        print(f"models: {args.models_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
