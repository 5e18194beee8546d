"""`robot-app runs [DIR...]`: the training runs under a folder, one line each.

Why: a study is many runs (seeds, algorithms, data sizes), and each keeps its state in files
(config.yaml, metrics.csv, checkpoints/, eval.csv, checkpoints/best.json). This reads only
those files (no torch, no checkpoint loading), so it answers at once for hundreds of runs:
how far each got, its last loss and speed, whether it finished, and its best evaluation.

    robot-app runs                       # every run under runs/, most recently updated last
    robot-app runs runs/am* --json       # the same as JSON, for scripts
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

LOSS_COLUMNS = ("loss_td", "loss_bc", "loss_value", "loss_neg")  # the first present is the run's main loss
ACTIVE_S = 120.0  # a run whose metrics changed this recently is reported as running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["runs"], metavar="DIR",
                        help="run directories, or folders holding them (default: runs)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def find_runs(paths: list[str]) -> list[Path]:
    """Run directories (those with a config.yaml) given or directly under the given folders."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "config.yaml").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if (p / "config.yaml").is_file())
    return found


def _last_row(path: Path) -> dict:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def _latest_eval(path: Path) -> tuple[int, float] | None:
    """(step, mean success over its families) of the last evaluation in eval.csv."""
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit()]
    if not rows:
        return None
    step = max(int(r["step"]) for r in rows)
    rates = [float(r["success_rate"]) for r in rows if int(r["step"]) == step]
    return step, sum(rates) / len(rates)


def describe(run: Path, now: float | None = None) -> dict:
    """One run's row: what its files say."""
    from training.config import ConfigError, load_yaml

    now = time.time() if now is None else now
    try:
        config = load_yaml(run / "config.yaml")
    except ConfigError as exc:
        return {"run": str(run), "problem": str(exc)}
    metrics = run / "metrics.csv"
    last = _last_row(metrics)
    step = int(float(last["step"])) if last.get("step") else 0
    total = int(config.get("steps", 0))
    loss_name = next((c for c in LOSS_COLUMNS if last.get(c) not in (None, "")), None)
    updated = max((p.stat().st_mtime for p in (metrics, *(run / "checkpoints").glob("*.pt")) if p.exists()), default=None)
    checkpoints = sorted((run / "checkpoints").glob("step_*.pt"))
    if total and step >= total:
        state = "done"
    elif updated is not None and now - updated < ACTIVE_S:
        state = "running"
    else:
        state = f"stopped (resume from {checkpoints[-1].stem})" if checkpoints else "stopped (no checkpoint)"
    best_file = run / "checkpoints" / "best.json"
    best = json.loads(best_file.read_text()) if best_file.is_file() else None
    latest = _latest_eval(run / "eval.csv")
    return {
        "run": str(run),
        "algo": config.get("algo"),
        "data": Path(str(config.get("data", ""))).name,
        "step": step,
        "steps": total,
        "state": state,
        "loss": {loss_name: round(float(last[loss_name]), 4)} if loss_name else None,
        "updates_per_s": round(float(last["updates_per_s"]), 1) if last.get("updates_per_s") else None,
        "last_eval": {"step": latest[0], "mean_success": round(latest[1], 3)} if latest else None,
        "best_eval": {"step": best["step"], "mean_success": round(best["mean_success"], 3)} if best else None,
        "updated_s_ago": None if updated is None else round(now - updated),
    }


def _ago(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def table(rows: list[dict]) -> str:
    header = ("run", "algo", "data", "step", "state", "loss", "upd/s", "last eval", "best eval", "updated")
    lines = []
    for r in rows:
        if "problem" in r:
            lines.append((r["run"], "-", "-", "-", r["problem"], "-", "-", "-", "-", "-"))
            continue
        loss = ", ".join(f"{k} {v:.4g}" for k, v in r["loss"].items()) if r["loss"] else "-"
        evals = [f"{e['mean_success']:.2f} @ {e['step']}" if e else "-" for e in (r["last_eval"], r["best_eval"])]
        lines.append((r["run"], str(r["algo"]), r["data"], f"{r['step']}/{r['steps']}", r["state"], loss,
                      "-" if r["updates_per_s"] is None else f"{r['updates_per_s']:g}", *evals, _ago(r["updated_s_ago"])))
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
                     for line in (header, *lines)) + "\n"


def run(args: argparse.Namespace) -> int:
    runs = find_runs(args.paths)
    if not runs:
        print(f"robot-app runs: no run directories (with a config.yaml) in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    rows = sorted((describe(r) for r in runs), key=lambda r: -(r.get("updated_s_ago") or 0))
    print(json.dumps(rows, indent=2) if args.json else table(rows), end="" if not args.json else "\n")
    return 0
