"""`robot-app finetune`: a task model from a small labelled dataset, started from a goal-conditioned run.

    robot-app finetune --from RUN|MODEL.onnx --data DIR --out RUN2 [--mode scratch|pretrained|cds|bc|bc-scratch|goal]
                       [--share-data STORE] [--share-percentile P] [--steps N]
                       [--config YAML] [--set key=value ...] [--export models/NAME.onnx] [--debug]
    robot-app finetune --mode goal --from GCBC_RUN|MODEL.onnx --data DIR --play STORE --out RUN2
                       [--steps N] [--set train_key=value ...] [--export models/NAME.onnx] [--camera FILE --no-mirror]

RUN2 is a run like `robot-app train`'s (config.yaml, metrics.csv, curve.png, checkpoints/)
plus finetune.yaml and goal.png, the task's goal image. `--export` writes the ONNX model,
its card (with "task" and "goal_image") and NAME_goal.png. torch is imported only in run().

--mode goal (training/goal_task.py, the mode that grasps most) continues a GCBC policy on the
attempts as `train --set init_from` does, and makes the result a task model as `task-goals`
does: RUN2 is the continuation run, RUN2/goal_model.onnx the goal-conditioned result, and the
task model goes to --export (default RUN2/task_model.onnx). Its --set keys are `train`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODES = ("scratch", "pretrained", "cds", "bc", "bc-scratch")  # training.finetune.MODES (kept torch-free here)
GOAL_MODE = "goal"  # training/goal_task.py: continue the goal-conditioned policy, then propose goals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="pretrained", help="goal-conditioned run to start from, or an exported cloned policy "
                        "(e.g. models/gcbc_grasp.onnx); the scratch modes use only its network settings")
    parser.add_argument("--data", help="labelled task store (`robot-app dataset build` of `collect --task grasp-heldout` bags)")
    parser.add_argument("--out", required=True, help="run directory of the fine-tuned task model")
    parser.add_argument("--mode", choices=(*MODES, GOAL_MODE),
                        help="scratch, pretrained (default), cds (pretrained + conservative data sharing), bc "
                        "(filtered behaviour cloning from a GCBC run's or model's policy), bc-scratch (the same from a fresh "
                        "policy) or goal (continue a GCBC policy on the attempts, then let it propose its goal: grasps most)")
    parser.add_argument("--play", help="goal mode: a store whose frames hold a lifted object, where the goal pictures come "
                        "from (the pretraining play)")
    parser.add_argument("--camera", metavar="FILE", help="goal mode: the fixed camera (as task-goals --camera); default the sim's")
    parser.add_argument("--no-mirror", action="store_true", help="goal mode: no mirrored localiser frames (as task-goals)")
    parser.add_argument("--share-data", help="unlabelled store, e.g. the pretraining store: cds shares from it, "
                        "the bc modes co-train on it, goal mode keeps half of every batch on it (as train --share-data; "
                        "measured below plain continuation)")
    parser.add_argument("--share-percentile", type=float, help="share a transition whose task Q is at least this percentile "
                        "of the task data's Q (default 90)")
    parser.add_argument("--steps", type=int, help="gradient updates (default: 9000 for bc and bc-scratch, 2000 for the Q-function "
                        "modes; goal: 500 from fewer than 36 attempts, else 3000, the measured best lengths)")
    parser.add_argument("--task", help="the task's name in the model card and the GUI (default grasp-heldout)")
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

    if args.mode == GOAL_MODE:
        return run_goal(args)
    goal_only = [flag for flag, given in (("--play", args.play), ("--camera", args.camera), ("--no-mirror", args.no_mirror))
                 if given]
    if goal_only:
        print(f"robot-app finetune: error: {', '.join(goal_only)} go with --mode goal", file=sys.stderr)
        return 2
    try:
        config = resolve_config(
            args.config, args.overrides, args.debug, mode=args.mode, pretrained=args.pretrained, data=args.data,
            share_data=args.share_data, share_percentile=args.share_percentile, steps=args.steps, seed=args.seed,
            task=args.task,
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


def run_goal(args) -> int:
    from training.config import ConfigError
    from training.goal_task import finetune_goal, from_command_line

    refused = [flag for flag, given in (("--config", args.config), ("--share-percentile", args.share_percentile)) if given]
    if refused:
        print(f"robot-app finetune: error: {', '.join(refused)} are for the other modes; --mode goal takes train's "
              "settings with --set", file=sys.stderr)
        return 2
    overrides = [*args.overrides, *([f"share_data={args.share_data}"] if args.share_data else [])]
    try:
        config = from_command_line(args.pretrained, args.data, args.play, args.steps, args.seed, overrides,
                                   task=args.task, camera=args.camera, mirror=not args.no_mirror)
        goal_model, task_model = finetune_goal(config, args.out, args.export, progress=not args.no_progress, debug=args.debug)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"robot-app finetune: error: {exc}", file=sys.stderr)
        return 2
    print(f"robot-app finetune: goal on {config.data} -> {args.out}: goal model {goal_model}, task model {task_model}")
    return 0
