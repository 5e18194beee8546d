"""Pool `robot-app eval --json` files into labelled rows: a markdown table and a bar picture.

Probes (bench/varied_*_probe.sh) leave one eval JSON per model; a row of their BENCHMARKS
table pools several models (pretraining seeds). This prints each row's successes / n with
the Wilson 95% interval and the per-model counts, and draws the rows as bars with those
intervals, so the table and the picture come from the same files.

    .venv/bin/python bench/pooled_bars.py --family grasp-heldout --png docs/img/varied_s26.png \\
        "scratch=bench/results/varied_s26/task_scratch_s*.json" \\
        "varied, 12000=bench/results/varied_s26/task_varied_s*_at12000_plainbank.json"
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_app.evaluation import wilson_interval  # noqa: E402


def family_counts(path: str, family: str) -> tuple[int, int]:
    """(successes, n) of one family in one eval JSON; a missing family is an error, not a zero."""
    families = json.loads(Path(path).read_text())["families"]
    if family not in families:
        raise SystemExit(f"{path}: no family {family!r} (has {sorted(families)})")
    entry = families[family]
    return round(entry["success_rate"] * entry["n"]), int(entry["n"])


def pool_row(spec: str, family: str) -> dict:
    """LABEL=GLOB[,GLOB...] -> the row's label, pooled counts, interval and per-file counts."""
    label, _, patterns = spec.partition("=")
    paths = sorted({p for pattern in patterns.split(",") for p in glob.glob(pattern)})
    if not label or not paths:
        raise SystemExit(f"{spec!r}: want LABEL=GLOB[,GLOB...] matching at least one file")
    counts = [family_counts(p, family) for p in paths]
    k, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return {"label": label, "k": k, "n": n, "ci": wilson_interval(k, n), "each": [c[0] for c in counts], "files": paths}


def markdown(rows: list[dict]) -> str:
    lines = ["| row | models | pooled | 95% interval |", "|---|---|---:|---:|"]
    for r in rows:
        lo, hi = r["ci"]
        lines.append(f"| {r['label']} | {' / '.join(map(str, r['each']))} | {r['k']}/{r['n']} = {100 * r['k'] / r['n']:.1f}% "
                     f"| [{100 * lo:.1f}, {100 * hi:.1f}] |")
    return "\n".join(lines)


def draw(rows: list[dict], family: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [100 * r["k"] / r["n"] for r in rows]
    errors = [[rate - 100 * r["ci"][0] for rate, r in zip(rates, rows, strict=True)],
              [100 * r["ci"][1] - rate for rate, r in zip(rates, rows, strict=True)]]
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 1.2))
    ax.barh(range(len(rows)), rates, xerr=errors, color="#4878a8", capsize=3)
    ax.set_yticks(range(len(rows)), [f"{r['label']} (n={r['n']})" for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"{family} success, % (Wilson 95%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", help="LABEL=GLOB[,GLOB...] per row, in order")
    parser.add_argument("--family", default="grasp-heldout")
    parser.add_argument("--png", help="also draw the rows as bars here")
    args = parser.parse_args(argv)
    rows = [pool_row(spec, args.family) for spec in args.rows]
    print(markdown(rows))
    if args.png:
        draw(rows, args.family, args.png)
        print(f"picture: {args.png}")


if __name__ == "__main__":
    main()
