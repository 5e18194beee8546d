"""What a cloned policy wants along the scripted expert's path, per skill phase.

The GCBC counterpart of q_along_expert.py: at each step of the expert's solution of a
suite task, the run's predicted vertical speed and gripper command next to the expert's,
and, for a run with `gcbc.action_bins`, how its class probabilities split between going
down (vz < -0.5), holding height and going up (vz > 0.5). That split is what a binned
head's mode picks from, and what a regressed head averages.

    .venv/bin/python bench/bc_along_expert.py --policy bins21=runs/gcbc_bins21_s0@12000 --episodes 8

One JSON per label in bench/results/bc_along_expert/, and the table printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from q_along_expert import expert_steps, parse_args  # noqa: E402

from robot_app.spec import proprio_vector  # noqa: E402

OUT = ROOT / "bench" / "results" / "bc_along_expert"
COLUMNS = ("vz", "expert_vz", "p_down", "p_hold", "p_up", "grip", "expert_grip", "p_close")


def predictions(policy, image: np.ndarray, goal: np.ndarray, state) -> list[float]:
    """The policy's action, and for a binned head the vz split and the probability of closing."""
    import torch

    def tensor(x):
        return torch.from_numpy(np.ascontiguousarray(x)[None])

    inputs = tensor(image), tensor(goal), tensor(proprio_vector(state, policy.config.height_input))
    with torch.no_grad():
        raw = policy.raw(*inputs)
        action = policy.action_of(raw)[0].numpy()
    if not policy.action_bins:
        return [action[2], *[np.nan] * 3, action[4], np.nan]
    values = policy.bin_values.numpy()
    p_vz, p_grip = (torch.softmax(raw[0, d].float(), -1).numpy() for d in (2, 4))
    return [action[2], p_vz[values < -0.5].sum(), p_vz[np.abs(values) <= 0.5].sum(), p_vz[values > 0.5].sum(),
            action[4], p_grip[values > 0].sum()]


def along_expert(policy, family: str, episodes: int, seed: int) -> dict:
    rows: dict[str, list] = {}
    for task, obs, expert, phase in expert_steps(family, episodes, seed, policy.config.image_size):
        vz, p_down, p_hold, p_up, grip, p_close = predictions(policy, obs.image, task.goal_image, obs.state)
        rows.setdefault(phase, []).append([vz, expert[2], p_down, p_hold, p_up, grip, expert[4], p_close])
    out = {}
    for phase, r in rows.items():
        mean = np.asarray(r, dtype=np.float64).mean(0)
        out[phase] = {"steps": len(r), **{k: None if np.isnan(v) else round(float(v), 3) for k, v in zip(COLUMNS, mean, strict=True)}}
    return out


def table(label: str, phases: dict) -> str:
    def cell(key):
        v = p[key]
        return "-" if v is None else f"{v:.2f}" if key.startswith("p_") else f"{v:+.2f}"

    lines = [f"{label}:", "| phase | steps | vz | expert vz | P(down) | P(hold) | P(up) | grip | expert grip | P(close) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for phase, p in phases.items():
        lines.append(f"| {phase} | {p['steps']} | " + " | ".join(cell(k) for k in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    import torch

    from training.runner import load_run

    args = parse_args(__doc__, "LABEL=RUN@STEP", "a GCBC run and checkpoint", episodes=8)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in args.policy:
        label, _, where = spec.partition("=")
        run, _, step = where.partition("@")
        loaded = load_run(run, checkpoint=step or "latest")
        if loaded.algo != "gcbc":
            raise SystemExit(f"{run}: a {loaded.algo} run; this bench reads a cloned policy (bench/q_along_expert.py reads a Q)")
        phases = along_expert(loaded.model.policy.eval(), args.family, args.episodes, args.seed)
        report = {"label": label, "run": run, "checkpoint": step or "latest", "family": args.family,
                  "episodes": args.episodes, "seed": args.seed, "phases": phases}
        (OUT / f"{label}_{args.family}.json").write_text(json.dumps(report, indent=1))
        print(table(label, phases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
