"""`robot-app`: one entry point with a subcommand per job (design section 9).

Each subcommand lives in its own module, named below as "module:function"; the module
is imported only when its subcommand runs, so `robot-app --help` and the torch-free
subcommands never import torch. A module exposes `add_arguments(parser)` and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The order is the order a user meets them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("robot_app.commands.collect", "collect scripted play episodes in the sim as rosbag2 bags"),
    "dataset": ("robot_app.commands.dataset", "build a memory-mapped training store from rosbag2 bags"),
    "train": ("training.commands.train", "train a goal-conditioned Q-function (or a baseline) offline"),
    "runs": ("training.commands.runs", "list training runs: progress, loss, speed, state, best evaluation"),
    "eval": ("training.commands.evaluate", "evaluate a run or an ONNX policy on the goal suites"),
    "export": ("training.commands.export", "export a trained run to ONNX with its model card"),
    "finetune": ("training.commands.finetune", "fine-tune on a new grasping task from a small labelled dataset"),
    "task-goals": ("training.commands.task_goals", "make a goal-conditioned model a task model that finds its object and proposes its goal"),
    "launch": ("robot_app.commands.launch", "start the ROS 2 graph (sim or robot) without ros2 launch"),
    "gui": ("robot_app.commands.gui", "open the goal-image GUI"),
    "bench": ("robot_app.commands.bench", "run the benchmarks in bench/ (each writes its JSON into bench/results/)"),
    "demo": ("robot_app.commands.demo", "the main job on the default sim world and shipped model"),
    "doctor": ("robot_app.commands.doctor", "check this machine: imports, DDS discovery, simulator, shipped models, GPU"),
}


class NotBuiltYet(Exception):
    """Raised by a subcommand module that exists in name only."""


def _load(name: str):
    module_name, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None  # the subcommand's own module is not written yet
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robot-app",
        description="Goal-image reaching for robot arms: collect, train offline, export, run on ROS 2.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module = _load(name)
        if module is None:
            sub.set_defaults(_not_built=True)
        else:
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_not_built", False):
        print(f"robot-app {args.command}: not built yet (see the project's open issues)", file=sys.stderr)
        return 3
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"robot-app {args.command}: interrupted", file=sys.stderr)
        return 130
    except NotBuiltYet as exc:
        print(f"robot-app {args.command}: not built yet: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
