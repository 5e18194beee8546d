"""Does averaging the actions of several cloned policies (seeds of one recipe) grasp better than each?

Seeds of the pre-grasp GCBC recipe each grasp 36-40% of 100 tasks and fail on different
tasks; an ensemble's mean action is the usual way to cash in that variance. Each run is
loaded at its checkpoint, their BCPolicy outputs are averaged, and the average acts through
the runs' own CEM scorer contract (training.gcbc.BCScorer) and the evaluation suite, with
the first run's card settings (action scaling, CEM). `robot-app export RUN1 RUN2 RUN3` writes
the same mean as one ONNX model.

An ensemble trained as one run (`gcbc.members`, or `finetune --mode bc` from such a model)
is judged member by member with `--member K`, on the same tasks and CEM noise as its mean.
A fine-tuned run pursues its task goal image (goal.png), whatever goal the suite renders.

    .venv/bin/python bench/gcbc_ensemble.py --run runs/gcbc_pg_s0@18000 --run runs/gcbc_pg_s1@18000 \
        --run runs/gcbc_pg_s2@18000 --family grasp --episodes 100 --seed 0
    .venv/bin/python bench/gcbc_ensemble.py --run runs/ft_bc_n50_s0 --member 1 --family grasp-heldout --seed 0

One JSON per ensemble in bench/results/gcbc_ensemble/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robot_app.evaluation import evaluate_suite  # noqa: E402
from robot_app.spec import ActionScaling  # noqa: E402
from training.export import mean_of_runs  # noqa: E402
from training.finetune import read_png  # noqa: E402
from training.gcbc import BCScorer  # noqa: E402
from training.runner import load_run, make_act_fn  # noqa: E402

OUT = ROOT / "bench" / "results" / "gcbc_ensemble"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="RUN@STEP")
    parser.add_argument("--family", default="grasp")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--member", type=int, default=-1, help="judge only this member of one ensemble run (gcbc.members)")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [load_run(*spec.split("@")) if "@" in spec else load_run(spec) for spec in args.run]
    try:
        mean, _ = mean_of_runs(runs, args.run) if len(runs) > 1 else (runs[0], args.run[0])
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    model = mean.model
    if args.member >= 0:
        model = BCScorer(model.policy.members[args.member], model.sigma).eval()
    act = make_act_fn(model, mean.cem, seed=args.seed, scaling=ActionScaling.from_dict(mean.config["action_scaling"]))
    if mean.finetuned:  # a task model pursues its own goal image, as the runtime feeds it (robot_app.evaluation.as_act_fn)
        task_goal, act_on = read_png(mean.path.parents[1] / "goal.png"), act

        def act(image, _suite_goal, state):
            return act_on(image, task_goal, state)
    label = args.label or (f"member{args.member}" if args.member >= 0 else f"mean{len(runs)}")
    result = evaluate_suite(act, [args.family], args.episodes, args.seed, mean.network.image_size, name=label)
    family = result["families"][args.family]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{label}_{args.family}_seed{args.seed}.json"
    path.write_text(json.dumps({"runs": args.run, "member": args.member, "family": args.family, "episodes": args.episodes, "seed": args.seed,
                                **family}, indent=1))
    print(f"{label}: {args.family} {family['success_rate']:.2f} {family['ci95']} n={family['n']} -> {path}")


if __name__ == "__main__":
    main()
