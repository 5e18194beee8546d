"""`robot-app task-goals`: make a goal-conditioned model a task model that proposes its own goal picture.

    robot-app task-goals --model models/grasp_heldout_goal.onnx --data DIR --play STORE --out models/NAME.onnx
                         [--steps N] [--seed S] [--task grasp-heldout] [--no-mirror] [--camera FILE] [--paste F]

Fits the object localiser (training/localiser.py) to the labelled attempts in DIR, takes a
bank of held-and-lifted pictures from the unlabelled play store, and writes NAME.onnx with
its card (fields "task" and "goal_proposer"), NAME_localiser.onnx, NAME_bank.npz and
NAME_goal.png. The policy node, `robot-app eval` and the GUI then run it as a task: the
goal fed to the model is proposed from each episode's first camera frame.

The localiser's pixel becomes a table position through the fixed camera: the simulator's by
default, or a calibrated one (--camera: eye, target, up in the robot's base frame and the
vertical fov_deg, as JSON or YAML) for a real arm. The play store can be any store whose
frames hold a lifted object; the labelled store itself works when there is no play data.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="goal-conditioned model (.onnx with its card), e.g. models/grasp_heldout_goal.onnx")
    parser.add_argument("--data", required=True, help="labelled task store (`robot-app dataset build` of `collect --task grasp-heldout` bags)")
    parser.add_argument("--play", required=True, help="unlabelled play store the goal pictures come from (frames holding a lifted object)")
    parser.add_argument("--out", required=True, help="the task model to write, e.g. models/grasp_heldout.onnx")
    parser.add_argument("--task", default="grasp-heldout", help="the task's name in the card (default grasp-heldout)")
    parser.add_argument("--steps", type=int, default=None, help="localiser updates (default 600, ~1 min on one CPU core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the localiser")
    parser.add_argument("--no-mirror", action="store_true", help="do not train the localiser on mirrored frames "
                        "(needed when the camera is not on the robot's x axis)")
    parser.add_argument("--camera", default=None, metavar="FILE",
                        help="the fixed camera as JSON or YAML (eye, target, up in metres in the robot's base frame; "
                             "fov_deg vertical); default the simulator's")
    parser.add_argument("--goals", type=int, default=None, metavar="K",
                        help="act toward the K bank pictures held nearest the found object at once (default 5, or 1 for a "
                             "mean-of-N goal model, which already averages; 1: the nearest alone)")
    parser.add_argument("--goal-spread", type=float, default=None, metavar="M",
                        help="...none held more than M metres beyond the nearest (default 0.01)")
    parser.add_argument("--paste", type=float, default=None, metavar="F",
                        help="share of each localiser batch made by pasting the attempts' object onto play frames "
                             "(default 0.5, 0 = off; off anyway when --play is --data); play frames must not show the task's object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from dataclasses import replace

    from robot_app.policy import PolicyLoadError
    from training.localiser import LocaliserConfig, build_task_model

    config = replace(LocaliserConfig(seed=args.seed, num_threads=args.threads, mirror=not args.no_mirror),
                     **({"steps": args.steps} if args.steps is not None else {}),
                     **({"paste_fraction": args.paste} if args.paste is not None else {}))
    try:
        camera = None
        if args.camera:
            from robot_app.camera import PinholeCamera
            from robot_app.policy import Policy

            camera = PinholeCamera.from_file(args.camera, Policy.load(args.model, split=False).image_size)
        proposer = build_task_model(args.model, args.data, args.play, args.out, config, task=args.task,
                                    camera=camera, progress=not args.no_progress, goals_per_run=args.goals,
                                    goal_spread_m=args.goal_spread)
    except (PolicyLoadError, FileNotFoundError, ValueError) as exc:
        print(f"robot-app task-goals: error: {exc}", file=sys.stderr)
        return 2
    print(f"robot-app task-goals: {args.out} ({args.task}): localiser {proposer['localiser']}, "
          f"{proposer['bank_pictures']} goal pictures in {proposer['bank']} ({proposer['goals_per_run']} acted toward per run), "
          f"grasp plane z = {proposer['grasp_height_m']} m")
    return 0
