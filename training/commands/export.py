"""`robot-app export RUN -o models/NAME.onnx`: the ONNX graph and its model card, checked.

After writing, the model is loaded by the torch-free runtime (robot_app.policy) and its Q
compared with the run's torch model, so an export that would not load on the robot, or
that disagrees with what was trained, fails here and not on the robot. A fine-tuned run
(`robot-app finetune`) is exported with its task goal image (NAME_goal.png, named in the
card), exactly as `finetune --export` does.

Several runs (`robot-app export RUN1 RUN2 RUN3 -o NAME.onnx`, cloned policies of one store,
e.g. seeds of one recipe) export as one model that acts with their mean action
(training.gcbc.MeanPolicy), checked the same way.
"""

from __future__ import annotations

import sys

PARITY_TOLERANCE = 1e-4


def add_arguments(parser) -> None:
    parser.add_argument("run", nargs="+", help="training run directory (RUN/checkpoints/...); several cloned-policy runs "
                        "export as one model acting with their mean action")
    parser.add_argument("-o", "--out", required=True, help="output .onnx path, e.g. models/NAME.onnx (the card goes beside it as NAME.json)")
    parser.add_argument("--checkpoint", default="latest", help="checkpoint of the run(s) to export: latest (default), best (the best periodic evaluation, eval_every), a step or a .pt file")


def run(args) -> int:
    from pathlib import Path

    if not str(args.out).endswith(".onnx"):
        print(f"robot-app export: {args.out}: the output must end in .onnx", file=sys.stderr)
        return 2
    missing = [run for run in args.run if not Path(run).is_dir()]
    if missing:
        print(f"robot-app export: {missing[0]}: no such run directory", file=sys.stderr)
        return 2

    from robot_app.policy import Policy
    from training.export import check_parity, export_loaded_run, mean_of_runs
    from training.finetune import export_finetuned
    from training.runner import load_run

    sources = [f"{Path(run).resolve()}@{args.checkpoint}" for run in args.run]
    try:
        runs = [load_run(run, checkpoint=args.checkpoint) for run in args.run]
        loaded, source = mean_of_runs(runs, sources) if len(runs) > 1 else (runs[0], sources[0])
    except (FileNotFoundError, ValueError) as exc:
        print(f"robot-app export: {exc}", file=sys.stderr)
        return 2
    if loaded.finetuned:  # its task goal image must travel with it, or the policy pursues no task
        onnx_path, card_path, goal_path = export_finetuned(args.run[0], args.out, checkpoint=str(loaded.path),
                                                           loaded=loaded if len(runs) > 1 else None, source=source)
        print(f"fine-tuned run: task goal image {goal_path}")
    else:
        onnx_path, card_path = export_loaded_run(loaded, args.out, source=source)
    policy = Policy.load(onnx_path)
    gap = check_parity(loaded.model, policy, policy.image_size)
    if gap > PARITY_TOLERANCE:
        print(f"robot-app export: {onnx_path}: onnxruntime and torch Q differ by {gap:.2e} (> {PARITY_TOLERANCE})", file=sys.stderr)
        return 1
    card = policy.card
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB, sha256 {card.onnx_sha256[:12]}...) and {card_path}")
    print(f"algo {card.algo}, step {card.training_steps}, image {card.image_size}, max |q_torch - q_onnx| {gap:.1e}")
    return 0
