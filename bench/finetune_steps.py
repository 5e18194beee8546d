"""Held-out grasp success against fine-tuning updates: one line per trained model, the mean per recipe.

Reads `robot-app eval --json` results named LABEL-atSTEP_nSIZE_sSEED.json (one checkpoint of
one fine-tuning run, evaluated on 100 `grasp-heldout` tasks at suite seed SEED), as session
19 wrote them: every run checkpointed every 3000 updates, each checkpoint exported and
evaluated. Prints a markdown table (pooled successes and the 95% t interval over models per
step) and draws the picture.

    .venv/bin/python bench/finetune_steps.py \
        --recipe "fresh policy=bench/results/finetune_s19/long-at*_n50_s*.json" \
        --recipe "from hue-turned pretraining=bench/results/finetune_s19/hue-p*-at*_n50_s0.json" \
        --png docs/img/finetune_s19_steps.png

STEP may count something else, e.g. the pretraining updates of the checkpoint a fine-tune
started from (session 20, `--xlabel`): a model is then one pretraining run.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections import defaultdict
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the repository on sys.path)
from finetune_table import eval_run

from robot_app.evaluation import seed_interval


def read_recipe(pattern: str) -> dict[str, dict[int, int]]:
    """{model: {step: successes}}, a model being the file's label and seed (one fine-tuning run).

    PATTERN is one glob or several joined by commas, so that a table drawn in one session can
    name its folders and keep its numbers when a later session adds results of the same name."""
    models: dict[str, dict[int, int]] = defaultdict(dict)
    paths = {Path(p) for one in pattern.split(",") for p in glob.glob(one.strip())}
    for path in sorted(paths):
        run = eval_run(path, json.loads(path.read_text()))  # its "mode" is LABEL-atSTEP
        label, at, step = run["mode"].rpartition("-at")
        if not at or not step.isdigit():
            raise SystemExit(f"{path}: not a LABEL-atSTEP_nSIZE_sSEED.json result")
        if run["n"] != 100:
            raise SystemExit(f"{path}: {run['n']} episodes; the table assumes 100 per checkpoint")
        models[f"{label} s{run['seed']}"][int(step)] = int(run["successes"])
    if not models:
        raise SystemExit(f"no results match {pattern!r}")
    return dict(models)


def table_rows(recipe: str, models: dict[str, dict[int, int]]) -> list[str]:
    steps = sorted({s for curve in models.values() for s in curve})
    rows = []
    for step in steps:
        got = [models[name][step] for name in sorted(models) if step in models[name]]
        pooled = f"{sum(got)}/{100 * len(got)} = {sum(got) / len(got):.1f}%"
        interval = "-"
        if len(got) >= 2:
            _, lo, hi = seed_interval([float(g) for g in got])
            interval = f"[{lo:.1f}%, {hi:.1f}%]"
        rows.append(f"| {recipe} | {step} | {len(got)} | {pooled} | {interval} | {'/'.join(map(str, got))} |")
    return rows


def draw(recipes: dict[str, dict[str, dict[int, int]]], png: Path, xlabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(recipes) > 3  # the legend goes beside the axes rather than over the lines
    fig, ax = plt.subplots(figsize=(9.6 if many else 6.4, 4.0), dpi=120)
    for i, (recipe, models) in enumerate(recipes.items()):
        colour = f"C{i}"
        for curve in models.values():
            steps = sorted(curve)
            ax.plot(steps, [curve[s] for s in steps], color=colour, alpha=0.25, lw=1, marker=".")
        steps = sorted({s for curve in models.values() for s in curve})
        means = [sum(c[s] for c in models.values() if s in c) / sum(s in c for c in models.values()) for s in steps]
        ax.plot(steps, means, color=colour, lw=2.5, marker="o", label=f"{recipe}: mean of the models run that far ({len(models)} at most)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out grasps of 100")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, **({"loc": "center left", "bbox_to_anchor": (1.01, 0.5)} if many else {}))
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"wrote {png}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", action="append", required=True, metavar="NAME=GLOB[,GLOB...]",
                   help="a recipe's checkpoint results")
    p.add_argument("--png", type=Path, help="write the picture here")
    p.add_argument("--xlabel", default="updates on the labelled attempts",
                   help="what STEP counts (session 20: the pretraining updates a fine-tune started from)")
    p.add_argument("--title", default="grasp-heldout, 50 labelled attempts: thin lines are single models")
    args = p.parse_args(argv)
    recipes = {}
    for spec in args.recipe:
        name, _, pattern = spec.partition("=")
        if not pattern:
            raise SystemExit(f"--recipe {spec!r}: expected NAME=GLOB")
        recipes[name] = read_recipe(pattern)
    print("| recipe | updates | models | pooled | models' 95% t interval | per model |")
    print("|---|---:|---:|---:|---:|---|")
    for name, models in recipes.items():
        print("\n".join(table_rows(name, models)))
    if args.png:
        draw(recipes, args.png, args.xlabel, args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
