"""`robot-app export RUN -o models/NAME.onnx`: the ONNX graph and its model card, checked.

After writing, the model is loaded by the torch-free runtime (robot_app.policy) and its Q
compared with the run's torch model, so an export that would not load on the robot, or
that disagrees with what was trained, fails here and not on the robot. A fine-tuned run
(`robot-app finetune`) is exported with its task goal image (NAME_goal.png, named in the
card), exactly as `finetune --export` does.
"""

from __future__ import annotations

import sys

PARITY_TOLERANCE = 1e-4


def add_arguments(parser) -> None:
    parser.add_argument("run", help="training run directory (RUN/checkpoints/...)")
    parser.add_argument("-o", "--out", required=True, help="output .onnx path, e.g. models/NAME.onnx (the card goes beside it as NAME.json)")
    parser.add_argument("--checkpoint", default="latest", help="checkpoint of the run to export (default: latest)")


def run(args) -> int:
    from pathlib import Path

    if not str(args.out).endswith(".onnx"):
        print(f"robot-app export: {args.out}: the output must end in .onnx", file=sys.stderr)
        return 2
    if not Path(args.run).is_dir():
        print(f"robot-app export: {args.run}: no such run directory", file=sys.stderr)
        return 2

    from robot_app.policy import Policy
    from training.export import check_parity, export_loaded_run
    from training.finetune import export_finetuned
    from training.runner import load_run

    try:
        loaded = load_run(args.run, checkpoint=args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        print(f"robot-app export: {exc}", file=sys.stderr)
        return 2
    if loaded.finetuned:  # its task goal image must travel with it, or the policy pursues no task
        onnx_path, card_path, goal_path = export_finetuned(args.run, args.out, checkpoint=str(loaded.path))
        print(f"fine-tuned run: task goal image {goal_path}")
    else:
        source = f"{Path(args.run).resolve()}@{args.checkpoint}"
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
