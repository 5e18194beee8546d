"""`robot-app dataset build|info|view|recover|lifts`: bags to a training store, a look at one, and its lifting segments.

`build` never stops at a bad bag: it names it with the problem, builds the others, and
exits non-zero only when nothing could be built.
"""

from __future__ import annotations

import argparse
import json
import sys

from robot_app.spec import CONTROL_HZ, IMAGE_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build a memory-mapped training store from rosbag2 bags")
    build.add_argument("bags", nargs="+", metavar="BAG", help="bag directories, or directories holding bags")
    build.add_argument("-o", "--out", required=True, help="store directory to write")
    build.add_argument(
        "--image-size", type=int, default=IMAGE_SIZE, choices=(64, 128), help="square image size in the store"
    )
    build.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="ROLE=TOPIC",
        help="topic of a role when remapped (roles: image, joint_states, ee_delta, gripper, ee_pose, success), "
        "e.g. --topic image=/wrist/image_raw; names match with or without a leading slash",
    )
    add_gripper_arguments(build)
    build.add_argument("--workers", type=int, default=1, help="processes reading bags in parallel")
    info = sub.add_parser("info", help="summarise a training store")
    info.add_argument("store", help="store directory")
    view = sub.add_parser("view", help="write episodes as videos, to check what you recorded: of a store, or bags before building")
    view.add_argument("source", metavar="STORE_OR_BAG", nargs="+", help="a store directory, or bag directories")
    view.add_argument("--episode", type=int, action="append", metavar="I",
                      help="a store's episode index (repeat for several; default: the first, and the first success and "
                           "failure when labelled)")
    view.add_argument("--topic", action="append", default=[], metavar="ROLE=TOPIC", help="a bag's remapped topic, as for build")
    add_gripper_arguments(view)
    view.add_argument("-o", "--out", default="out/episodes",
                      help="directory for episode_<I>.webm and, without --episode, episodes.png (first and last "
                           "frames of up to 48 episodes with their labels) of a store, or <bag>.webm (default: out/episodes)")
    view.add_argument("--fps", type=float, default=CONTROL_HZ, help=f"frames a second (default: the control rate, {CONTROL_HZ:g})")
    recover = sub.add_parser("recover", help="complete the .partial bag(s) of a killed recorder or collector")
    recover.add_argument("partials", nargs="+", metavar="PARTIAL", help="DIR.partial directories")
    lifts = sub.add_parser("lifts", help="a store of the episodes that lift something, each cut at its first lift "
                           "(the hand holding an object 12-20 cm up): to teach a cloned policy the grasp")
    lifts.add_argument("store", help="play store directory (with ee_pose)")
    lifts.add_argument("-o", "--out", required=True, help="store directory to write")


def add_gripper_arguments(parser: argparse.ArgumentParser) -> None:
    """How joint_states give the gripper state (spec.GripperJoints); the Panda's by default."""
    from robot_app.spec import PANDA_GRIPPER

    parser.add_argument("--gripper-joints", default=",".join(PANDA_GRIPPER.names), metavar="NAME[,NAME]",
                        help="joint_states names whose summed position gives the gripper state (default: the Panda's fingers)")
    parser.add_argument("--gripper-open", type=float, default=PANDA_GRIPPER.open_sum, metavar="SUM",
                        help=f"their summed position when open (default: {PANDA_GRIPPER.open_sum:g}, the Panda's metres)")
    parser.add_argument("--gripper-closed", type=float, default=PANDA_GRIPPER.closed_sum, metavar="SUM",
                        help=f"their summed position when closed (default: {PANDA_GRIPPER.closed_sum:g})")


def gripper_from_arguments(args: argparse.Namespace):
    from robot_app.spec import GripperJoints

    names = tuple(n.strip() for n in args.gripper_joints.split(",") if n.strip())
    return GripperJoints(names, args.gripper_open, args.gripper_closed)


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "info": _info, "view": _view, "recover": _recover, "lifts": _lifts}[args.dataset_command](args)


def _build(args: argparse.Namespace) -> int:
    from robot_app.dataset_build import build_dataset, parse_topic_map

    try:
        topic_map = parse_topic_map(args.topic)
        gripper = gripper_from_arguments(args)
    except ValueError as exc:
        print(f"robot-app dataset build: {exc}", file=sys.stderr)
        return 2
    summary = build_dataset(
        args.bags, args.out, image_size=args.image_size, topic_map=topic_map, workers=args.workers, gripper=gripper
    )
    for item in summary["skipped"]:
        print(f"skipped {item['bag']}: {item['error']}", file=sys.stderr)
    if summary["clipped"]:
        from robot_app.spec import DEFAULT_SCALING

        top = f"{DEFAULT_SCALING.max_linear_speed:g} m/s, {DEFAULT_SCALING.max_angular_speed:g} rad/s"
        for item in summary["clipped"]:
            print(f"warning: {item['bag']}: {item['clipped']} of {item['commands']} velocity commands were faster than "
                  f"the action range ({top}) and were clipped to it; the policy will drive no faster", file=sys.stderr)
    for item in summary["grip_from_state"]:
        print(f"note: {item['bag']}: {item['steps']} of {item['of']} steps came before the episode's first "
              f"cmd/gripper; their grip is the gripper's measured open or closed state", file=sys.stderr)
    if not summary["num_episodes"]:
        print("robot-app dataset build: no bag could be built; nothing written", file=sys.stderr)
        return 1
    print(
        f"built {args.out}: {summary['num_episodes']} episodes, {summary['num_steps']} steps; "
        f"{len(summary['skipped'])} skipped"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from robot_app.store import Store

    try:
        store = Store.open(args.store)
    except (FileNotFoundError, ValueError) as exc:
        print(f"robot-app dataset info: {exc}", file=sys.stderr)
        return 1
    success = store.episode_success()
    labelled = success[~(success != success)]  # drop nan
    info = {
        "store": str(store.root),
        "episodes": store.num_episodes,
        "steps": len(store),
        "image_size": store.image_size,
        "labelled_episodes": int(len(labelled)),
        "successes": int(labelled.sum()),
        "tasks": sorted({str(e.get("task")) for e in store.manifest["episodes"]}),
        "skipped": store.manifest.get("skipped", []),
        "hash": store.manifest_hash(),
    }
    print(json.dumps(info, indent=2))
    return 0


def _view(args: argparse.Namespace) -> int:
    """Videos of a store's episodes, or of bags before they are built."""
    from pathlib import Path

    if len(args.source) == 1 and (Path(args.source[0]) / "manifest.json").is_file():
        return _view_store(args.source[0], args.episode, Path(args.out), args.fps)
    return _view_bags(args, Path(args.out))


def _view_store(root: str, episodes: list[int] | None, out, fps: float) -> int:
    """Without --episode: episodes.png (the store at a glance), then the first episode and a success and a failure."""
    import cv2

    from robot_app.store import Store
    from robot_app.video import episode_frames, episode_sheet, write_video

    try:
        store = Store.open(root)
        if not episodes:
            out.mkdir(parents=True, exist_ok=True)
            sheet = out / "episodes.png"
            cv2.imwrite(str(sheet), cv2.cvtColor(episode_sheet(store), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
            print(f"wrote {sheet}")
        for episode in episodes or _worth_viewing(store):
            frames = episode_frames(store.episode_arrays(episode), f"episode {episode}")
            print(f"wrote {write_video(out / f'episode_{episode:05d}.webm', frames, fps)}")
    except (ValueError, OSError) as exc:
        print(f"robot-app dataset view: {exc}", file=sys.stderr)
        return 1
    return 0


def _view_bags(args: argparse.Namespace, out) -> int:
    """One video per bag; a bag that cannot be read is named and the others are still written."""
    from pathlib import Path

    from robot_app.bags import BagError
    from robot_app.dataset_build import episode_from_bag, parse_topic_map
    from robot_app.video import episode_frames, write_video

    try:
        if args.episode:
            raise ValueError("--episode picks a store's episodes; for bags, name the bag directories")
        topic_map = parse_topic_map(args.topic)
        gripper = gripper_from_arguments(args)
    except ValueError as exc:
        print(f"robot-app dataset view: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for bag in map(Path, args.source):
        try:
            frames = episode_frames(episode_from_bag(bag, topic_map=topic_map, gripper=gripper), bag.name)
            print(f"wrote {write_video(out / f'{bag.name}.webm', frames, args.fps)}")
        except (BagError, ValueError, OSError) as exc:
            print(f"robot-app dataset view: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _worth_viewing(store) -> list[int]:
    """The first episode, and the first success and failure of a labelled store."""
    import numpy as np

    success = store.episode_success()
    picks = [0] + [int(i[0]) for i in (np.flatnonzero(success == 1), np.flatnonzero(success == 0)) if len(i)]
    return sorted(set(picks))


def _recover(args: argparse.Namespace) -> int:
    from robot_app.bags import BagError, recover_bag

    failed = 0
    for partial in args.partials:
        try:
            print(f"recovered {recover_bag(partial)}")
        except BagError as exc:
            print(f"robot-app dataset recover: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _lifts(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robot_app.lift_segments import write_lift_store

    if Path(args.out).exists():
        print(f"robot-app dataset lifts: {args.out} exists; choose another --out", file=sys.stderr)
        return 1
    try:
        segments, episodes, steps = write_lift_store(args.store, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"robot-app dataset lifts: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {segments} of {episodes} episodes lift something, cut at their first lift; {steps} steps")
    return 0
