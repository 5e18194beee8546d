"""`robot-app finetune`: a task Q-function from a small labelled dataset, started from a goal-conditioned run.

    robot-app finetune --from RUN|MODEL.onnx --data DIR --out RUN2 [--mode scratch|pretrained|cds|bc|bc-scratch]
                       [--share-data STORE] [--share-percentile P] [--steps N]
                       [--config YAML] [--set key=value ...] [--export models/NAME.onnx] [--debug]

RUN2 is a run like `robot-app train`'s (config.yaml, metrics.csv, curve.png, checkpoints/)
plus finetune.yaml and goal.png, the task's goal image. `--export` writes the ONNX model,
its card (with "task" and "goal_image") and NAME_goal.png. torch is imported only in run().
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODES = ("scratch", "pretrained", "cds", "bc", "bc-scratch")  # training.finetune.MODES (kept torch-free here)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="pretrained", help="goal-conditioned run to start from, or an exported cloned policy "
                        "(e.g. models/gcbc_grasp.onnx); the scratch modes use only its network settings")
    parser.add_argument("--data", help="labelled task store (`robot-app dataset build` of `collect --task grasp-heldout` bags)")
    parser.add_argument("--out", required=True, help="run directory of the fine-tuned task model")
    parser.add_argument("--mode", choices=MODES, help="scratch, pretrained (default), cds (pretrained + conservative data sharing), bc "
                        "(filtered behaviour cloning from a GCBC run's or model's policy) or bc-scratch (the same from a fresh policy)")
    parser.add_argument("--share-data", help="unlabelled store, e.g. the pretraining store: cds shares from it, "
                        "the bc modes co-train on it")
    parser.add_argument("--share-percentile", type=float, help="share a transition whose task Q is at least this percentile "
                        "of the task data's Q (default 90)")
    parser.add_argument("--steps", type=int, help="gradient updates (default: 9000 for bc and bc-scratch, 2000 for the Q-function modes)")
    parser.add_argument("--seed", type=int, help="seed (default 0)")
    parser.add_argument("--config", help="YAML of finetune settings (see config/finetune.yaml); unknown keys are errors")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set batch_size=128")
    parser.add_argument("--export", type=Path, metavar="ONNX", help="also export the result, e.g. models/grasp_heldout.onnx")
    parser.add_argument("--debug", action="store_true", help="shrink the run to seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from training.config import ConfigError
    from training.finetune import export_finetuned, finetune, resolve_config

    try:
        config = resolve_config(
            args.config, args.overrides, args.debug, mode=args.mode, pretrained=args.pretrained, data=args.data,
            share_data=args.share_data, share_percentile=args.share_percentile, steps=args.steps, seed=args.seed,
        )
        checkpoint = finetune(config, args.out, progress=not args.no_progress, debug=args.debug)
        print(f"robot-app finetune: {config.mode} on {config.data} for {config.steps} steps -> {args.out} (checkpoint {checkpoint})")
        if args.export:
            onnx_path, card_path, goal_path = export_finetuned(args.out, args.export)
            print(f"exported {onnx_path} with {card_path} and {goal_path}")
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"robot-app finetune: error: {exc}", file=sys.stderr)
        return 2
    return 0
