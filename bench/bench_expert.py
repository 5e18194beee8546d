"""Where trained policies part from the data's own skills: `robot-app eval --expert` over policies and checkpoints.

Every object family scores 0% at this project's training budgets, which says nothing about
what is missing. The scripted expert (sim_worlds.experts: the play skills without noise)
solves the suites; this benchmark asks each policy for its action along the expert's path
and tabulates the phases that decide the object families: does it descend onto the cube,
close on it, lower into place, let go (robot_app/expert_agreement.py defines the numbers).

    .venv/bin/python bench/bench_expert.py --policy random=random \
        --policy gcbc@5000=runs/scale_gcbc_s0@5000 --policy am@6000=models/am_default.onnx
    .venv/bin/python bench/bench_expert.py --table-only

A label is NAME@STEP for a checkpoint of a training run (the picture draws each NAME with
two or more steps against STEP) or any name for a model. One JSON per label in bench/results/expert/ (an
existing one is kept, so an interrupted sweep resumes), the table in summary.md there,
and docs/img/expert_agreement.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robot_app.expert_agreement import switches_on_time  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "expert"
PICTURE = ROOT / "docs" / "img" / "expert_agreement.png"
SUITE = "reach,push,grasp,rearrange,chain"
OBJECT_FAMILIES = ("push", "grasp", "rearrange", "chain")
# (family, phase, "direction" | "gripper"): the columns of the table, in the order a grasp happens.
COLUMNS = (
    ("grasp", "approach", "direction"),
    ("grasp", "descend", "direction"),
    ("grasp", "close", "gripper"),
    ("grasp", "lift", "direction"),
    ("push", "lower", "direction"),
    ("push", "push", "direction"),
    ("chain", "lower", "direction"),
    ("chain", "release", "gripper"),
)
PLOTTED = (("grasp", "descend", "direction"), ("push", "lower", "direction"), ("chain", "lower", "direction"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", action="append", default=[], metavar="LABEL=PATH[@CHECKPOINT]",
                   help="a policy to judge: 'random', a model, or a run directory with @STEP")
    p.add_argument("--episodes", type=int, default=20, help="tasks per family (default: 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table-only", action="store_true", help="only rebuild the table and picture from the JSONs")
    p.add_argument("--plot", help="comma-separated run NAMEs to draw (default: every NAME with two or more steps)")
    return p.parse_args(argv)


def judge(label: str, target: str, episodes: int, seed: int) -> Path:
    out = RESULTS / f"{label.replace('/', '_')}.json"
    if out.is_file():
        print(f"{label}: kept {out.relative_to(ROOT)}")
        return out
    path, _, checkpoint = target.partition("@")
    cmd = [sys.executable, "-m", "robot_app.cli", "eval", "--policy", path, "--suite", SUITE, "--episodes", str(episodes),
           "--seed", str(seed), "--expert", "--json", str(out), "--no-progress"]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    print(f"{label}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out


def load(results_dir: Path = RESULTS) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}


def _step(label: str, result: dict) -> int:
    name, _, step = label.rpartition("@")
    return int(step) if name and step.isdigit() else int(result.get("training_step") or 0)


def _value(result: dict, family: str, phase: str, kind: str):
    phases = result["expert_agreement"]["families"].get(family, {}).get("phases", {})
    return phases.get(phase, {}).get(kind)


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    return f"{round(100 * value)}%" if kind == "gripper" else f"{value:+.2f}"


def switches(result: dict) -> tuple[int, int]:
    return switches_on_time(result["expert_agreement"])


def object_successes(result: dict) -> tuple[int, int]:
    fams = [result["families"][f] for f in OBJECT_FAMILIES if f in result["families"]]
    return sum(round(f["success_rate"] * f["n"]) for f in fams), sum(f["n"] for f in fams)


def markdown(results: dict[str, dict]) -> str:
    head = ["policy", "reach", "object tasks solved", "gripper switches on time"] + [f"{f} {p}" for f, p, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, r in sorted(results.items(), key=lambda kv: (kv[0].rpartition("@")[0] or kv[0], _step(*kv))):
        solved, n = object_successes(r)
        made, total = switches(r)
        reach = r["families"].get("reach", {}).get("success_rate")
        cells = [label, "-" if reach is None else f"{round(100 * reach)}%", f"{solved}/{n}", f"{made}/{total}"]
        cells += [_cell(_value(r, *c), c[2]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    experts = {f: v["expert_success"] for r in results.values() for f, v in r["expert_agreement"]["families"].items()}
    n = next(iter(results.values()))["expert_agreement"]["episodes"] if results else 0
    note = ", ".join(f"{f} {round(100 * s)}%" for f, s in experts.items())
    return "\n".join(lines) + f"\n\nExpert success on the same tasks ({n} a family): {note}.\n"


def plot(results: dict[str, dict], path: Path = PICTURE, names: list[str] | None = None) -> Path | None:
    """Per training run (NAME@STEP labels): the deciding phases' direction and switches on time against step."""
    series: dict[str, list] = {}
    for label, r in results.items():
        name, _, step = label.rpartition("@")
        if name and step.isdigit():
            series.setdefault(name, []).append((int(step), r))
    series = {name: points for name, points in series.items() if len(points) > 1 and (names is None or name in names)}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("all", "solved", "objects"), *PLOTTED, ("all", "switches", "on time")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.3), sharex=True)
    for name, points in sorted(series.items()):
        points.sort(key=lambda p: p[0])
        steps = [s for s, _ in points]
        for ax, (family, phase, kind) in zip(axes, panels, strict=True):
            if (family, phase) == ("all", "solved"):
                ys = [100 * object_successes(r)[0] / max(object_successes(r)[1], 1) for _, r in points]
            elif family == "all":
                ys = [100 * switches(r)[0] / max(switches(r)[1], 1) for _, r in points]
            else:
                ys = [_value(r, family, phase, kind) for _, r in points]
            ax.plot(steps, [float("nan") if y is None else y for y in ys], marker="o", label=name)
    for ax, (family, phase, kind) in zip(axes, panels, strict=True):
        if (family, phase) == ("all", "solved"):
            ax.set_title("object tasks solved (%)")
            ax.set_ylim(0, 50)
        elif family == "all":
            ax.set_title("gripper switches on time (%)")
            ax.set_ylim(0, 100)
        else:
            ax.set_title(f"{family}: {phase} ({kind}, expert = +1)")
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.set_ylim(-1, 1)
        ax.set_xlabel("training step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for spec in args.policy:
            label, _, target = spec.partition("=")
            if not target:
                raise SystemExit(f"--policy {spec!r}: expected LABEL=PATH[@CHECKPOINT]")
            judge(label, target, args.episodes, args.seed)
    results = load()
    table = markdown(results)
    (RESULTS / "summary.md").write_text(table)
    print(table, end="")
    picture = plot(results, names=args.plot.split(",") if args.plot else None)
    if picture:
        print(f"picture: {picture.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
