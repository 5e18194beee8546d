"""`robot-app gui`: the goal-image window (gui/app.py). Qt and rclpy load only in run()."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", default="", help="ROS namespace of the robot's topics (default: none)")
    parser.add_argument("--goals", metavar="DIR", help="folder of goal images (default: the last one used)")
    parser.add_argument("--goal", metavar="FILE", help="image file to publish as the goal at start")
    parser.add_argument(
        "--dataset", metavar="DIR", help="training store whose episodes' final frames become goals"
    )
    parser.add_argument(
        "--models", metavar="DIR", help="folder of models with task cards (default: the project's models/)"
    )
    parser.add_argument("--suites", action="store_true", help="render the sim's goal suites into the gallery")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a GUI node parameter, e.g. camera_topic=/cam/color/image_raw (repeatable)",
    )
    parser.add_argument(
        "--screenshot",
        metavar="PATH",
        help="save a picture of the window (PNG) and quit (after --quit-after, default 5 s)",
    )
    parser.add_argument(
        "--quit-after", type=float, metavar="SECONDS", help="close the window after this long"
    )
    parser.add_argument(
        "--settings-file", metavar="INI", help="remember the goal folder here, not in the user's settings"
    )


def run(args: argparse.Namespace) -> int:
    from gui.app import run_gui

    return run_gui(args)
