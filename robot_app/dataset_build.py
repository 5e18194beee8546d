"""`dataset build`: rosbag2 episode bags -> the memory-mapped training store (design section 4).

One bag is one episode. Each camera frame becomes one step, paired with the command in
force after it. The alignment rule, on bag receive timestamps:

    the action of frame t is the last cmd/ee_delta and the last cmd/gripper received
    before frame t+1 (strictly earlier); for the last frame, the last ones in the bag.
    Frames before any twist say "hold still" (0: the driver halts without commands).
    Frames before any grip command take the grip the gripper measurably holds: closed
    (+1) where its state is above spec.GRIPPER_CLOSED_ABOVE, open (-1) otherwise.

The grip rule is there because a grip target holds until the next one, so a bag that starts
after the last grip command (a `ros2 bag record` begun mid-session, a teleop that has not
touched the gripper) knows the command in force only from the fingers. Taking 0 there, as
the twist does, would say "half closed", a command no one sent, and one such step makes the
whole store's gripper non-binary (Store.gripper_is_binary), which changes how every policy
trained on it acts (spec.ActionScaling.settle). The steps filled this way are counted per bag
(the manifest's `grip_from_state`).

Commands go back to normalised actions through `spec.ActionScaling.from_command`, the
inverse of what a driver was sent. The gripper state of a frame comes from the latest
joint_states at or before it (the first one if none is earlier), through a
`spec.GripperJoints` mapping (the Panda's finger joints unless told). The episode's success label is the last task/success
Bool if any; its task name comes from metadata custom_data (written by `robot-app
collect`) if any.

Bags written by anyone work: topic names match with or without a leading slash
(`ros2 bag record` writes `/camera/image_raw`), a namespace is found when only one
topic fits (`/robot1/camera/image_raw`), and a `topic_map` renames the roles (image,
joint_states, ee_delta, gripper, ee_pose, success) for a robot whose driver publishes elsewhere; a
topic named that way must be in the bag, even for an optional role, so a typo is not taken for
an unlabelled episode. A bag that cannot be used raises BagError naming it and the problem;
`build_dataset` skips it, builds the others and lists it in the manifest's "skipped".
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from robot_app.bags import CUSTOM_TASK, BagError, BagReader, bag_sha256, find_bags, fit_image, image_from_msg
from robot_app.spec import (
    DEFAULT_SCALING,
    EPISODE_TOPICS,
    GRIPPER_CLOSED_ABOVE,
    PANDA_GRIPPER,
    SUPPORTED_IMAGE_SIZES,
    TASK_SUCCESS_TYPE,
    ActionScaling,
    GripperJoints,
    Topics,
)

# role -> (default topic, message type, required)
ROLES: dict[str, tuple[str, str, bool]] = {
    "image": (Topics.IMAGE, EPISODE_TOPICS[Topics.IMAGE], True),
    "joint_states": (Topics.JOINT_STATES, EPISODE_TOPICS[Topics.JOINT_STATES], True),
    "ee_delta": (Topics.CMD_EE_DELTA, EPISODE_TOPICS[Topics.CMD_EE_DELTA], True),
    "gripper": (Topics.CMD_GRIPPER, EPISODE_TOPICS[Topics.CMD_GRIPPER], True),
    "success": (Topics.TASK_SUCCESS, TASK_SUCCESS_TYPE, False),
    "ee_pose": (Topics.EE_POSE, EPISODE_TOPICS[Topics.EE_POSE], False),
}


def parse_topic_map(items: list[str] | None) -> dict[str, str]:
    """`["image=/wrist/image_raw", ...]` -> {"image": "/wrist/image_raw"}; ValueError names a bad item."""
    topic_map: dict[str, str] = {}
    for item in items or []:
        role, sep, topic = item.partition("=")
        if not sep or not topic:
            raise ValueError(f"--topic {item!r}: expected ROLE=TOPIC, e.g. image=/wrist/image_raw")
        if role not in ROLES:
            raise ValueError(f"--topic {item!r}: unknown role {role!r} (roles: {', '.join(ROLES)})")
        topic_map[role] = topic
    return topic_map


def _norm(topic: str) -> str:
    return topic.strip("/")


def _namespaced(bag: Path, role: str, wanted: str, by_norm: dict[str, str]) -> str | None:
    """The one topic that is `wanted` under a namespace (/robot1/camera/image_raw), if any."""
    matches = [name for norm, name in by_norm.items() if norm.endswith("/" + wanted)]
    if len(matches) > 1:
        raise BagError(
            bag,
            f"{len(matches)} topics could be {wanted!r} ({role}): {sorted(matches)}; choose one with --topic {role}=NAME",
        )
    return matches[0] if matches else None


def resolve_topics(bag: Path, available: dict[str, str], topic_map: dict[str, str] | None) -> dict[str, str]:
    """role -> topic as recorded in this bag. Raises BagError for a missing or mistyped topic."""
    if not available:
        raise BagError(bag, "empty bag: no topics recorded")
    by_norm = {_norm(name): name for name in available}
    resolved: dict[str, str] = {}
    for role, (default, msgtype, required) in ROLES.items():
        wanted = (topic_map or {}).get(role, default)
        name = by_norm.get(_norm(wanted))
        if name is None and role not in (topic_map or {}):
            name = _namespaced(bag, role, _norm(wanted), by_norm)
        if name is None:
            if required or role in (topic_map or {}):  # a topic named on the command line is expected, optional or not
                have = ", ".join(sorted(available)) or "none"
                raise BagError(bag, f"missing topic {wanted!r} ({role}); the bag has: {have}")
            continue
        if available[name] != msgtype:
            raise BagError(bag, f"topic {name!r} ({role}) has type {available[name]}, expected {msgtype}")
        resolved[role] = name
    return resolved


def _last_before(stamps: np.ndarray, values: np.ndarray, limits: np.ndarray, shape: tuple = ()) -> np.ndarray:
    """values[k] of the last stamp strictly before each limit; 0 where there is none."""
    out = np.zeros((len(limits), *shape), dtype=np.float32)
    if len(stamps):
        idx = np.searchsorted(stamps, limits, side="left") - 1
        ok = idx >= 0
        out[ok] = values[idx[ok]]
    return out


def _sorted(stamps: list[int], values: list) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return np.asarray(stamps, dtype=np.int64)[order], np.asarray(values, dtype=np.float32)[order]


def _gripper_positions(bag: Path, msg, gripper: GripperJoints) -> list[float]:
    names = list(msg.name)
    try:
        return [float(msg.position[names.index(j)]) for j in gripper.names]
    except (ValueError, IndexError):
        raise BagError(bag, f"joint_states lacks the gripper joints {list(gripper.names)} (has {names}); "
                            "name yours with --gripper-joints") from None


def episode_from_bag(
    path: str | os.PathLike,
    image_size: int = 64,
    topic_map: dict[str, str] | None = None,
    scaling: ActionScaling = DEFAULT_SCALING,
    gripper: GripperJoints = PANDA_GRIPPER,
) -> dict:
    """One bag -> one episode dict as `store.write_store` takes it. Raises BagError."""
    path = Path(path)
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(f"image_size {image_size}: expected one of {SUPPORTED_IMAGE_SIZES}")
    frames: list[np.ndarray] = []
    frame_ns: list[int] = []
    twist_ns: list[int] = []
    twists: list[np.ndarray] = []
    grip_ns: list[int] = []
    grips: list[float] = []
    joint_ns: list[int] = []
    joint_grip: list[float] = []
    pose_ns: list[int] = []
    poses: list[np.ndarray] = []
    success = None
    clipped = 0  # velocity commands beyond the scaling's range, which from_command clips
    with BagReader(path) as reader:
        roles = resolve_topics(path, reader.topics, topic_map)
        role_of = {topic: role for role, topic in roles.items()}
        task = reader.custom_data.get(CUSTOM_TASK)
        for topic, _, stamp, msg in reader.messages(role_of):
            role = role_of[topic]
            if role == "image":
                try:
                    frames.append(fit_image(image_from_msg(msg), image_size))
                except ValueError as exc:
                    raise BagError(path, f"{topic} frame {len(frames)}: {exc}") from None
                frame_ns.append(stamp)
            elif role == "ee_delta":
                lin, ang = msg.twist.linear, msg.twist.angular
                twist_ns.append(stamp)
                twists.append(scaling.from_command([lin.x, lin.y, lin.z], ang.z, 0.5)[:4])
                clipped += _beyond_range(max(abs(lin.x), abs(lin.y), abs(lin.z)), ang.z, scaling)
            elif role == "gripper":
                grip_ns.append(stamp)
                grips.append(scaling.from_command(np.zeros(3), 0.0, msg.data)[4])
            elif role == "joint_states":
                joint_ns.append(stamp)
                joint_grip.append(gripper.state(_gripper_positions(path, msg, gripper)))
            elif role == "ee_pose":
                p = msg.pose.position
                pose_ns.append(stamp)
                poses.append(np.array([p.x, p.y, p.z], dtype=np.float32))
            elif role == "success":
                success = bool(msg.data)
    if len(frames) < 2:
        raise BagError(
            path, f"{len(frames)} camera frame(s) on {roles['image']!r}; an episode needs at least 2"
        )
    if not joint_ns:
        raise BagError(path, f"no messages on {roles['joint_states']!r}")
    order = np.argsort(np.asarray(frame_ns, dtype=np.int64), kind="stable")
    frame_stamps = np.asarray(frame_ns, dtype=np.int64)[order]
    next_frame = np.append(frame_stamps[1:], np.iinfo(np.int64).max)
    js_stamps, js_grip = _sorted(joint_ns, joint_grip)
    gripper = js_grip[np.maximum(np.searchsorted(js_stamps, frame_stamps, side="right") - 1, 0)]
    actions = np.zeros((len(frames), 5), dtype=np.float32)
    actions[:, :4] = _last_before(*_sorted(twist_ns, twists), next_frame, (4,))
    actions[:, 4] = _last_before(*_sorted(grip_ns, grips), next_frame)
    no_grip_yet = next_frame <= min(grip_ns, default=np.iinfo(np.int64).max)
    actions[no_grip_yet, 4] = np.where(gripper[no_grip_yet] > GRIPPER_CLOSED_ABOVE, 1.0, -1.0)
    ee_position = None  # a bag without ee_pose still builds; only a height-input network needs it
    if pose_ns:
        pose_stamps, pose_values = _sorted(pose_ns, poses)
        ee_position = pose_values[np.maximum(np.searchsorted(pose_stamps, frame_stamps, side="right") - 1, 0)]
    return {
        "images": np.stack([frames[i] for i in order]),
        "actions": actions,
        "gripper": gripper,
        "ee_position": ee_position,
        "timestamps": frame_stamps.astype(np.float64) * 1e-9,
        "source": str(path),
        "sha256": bag_sha256(path),
        "success": success,
        "task": task,
        "clipped_commands": clipped,
        "commands": len(twists),
        "grip_from_state": int(no_grip_yet.sum()),
    }


def _beyond_range(linear_max: float, yaw_rate: float, scaling: ActionScaling) -> bool:
    """Whether a logged velocity (its largest linear component, its yaw rate) exceeds what a
    normalised action can say (|a| > 1): the arm was driven faster than the scaling's top
    speed, and the learner will see the top speed. Plain floats: it runs once per command."""
    return max(linear_max / scaling.max_linear_speed, abs(yaw_rate) / scaling.max_angular_speed) > 1.0 + 1e-6


_ARRAY_KEYS = ("images", "actions", "gripper", "timestamps", "ee_position")


def _load(job: tuple[Path, int, dict | None, GripperJoints, Path]) -> tuple[Path, dict | None, str | None]:
    """Read one bag and spill its arrays to .npy files, so neither a worker's reply nor
    the builder holds more than one episode of images in memory."""
    path, image_size, topic_map, gripper, spill = job
    try:
        episode = episode_from_bag(path, image_size, topic_map, gripper=gripper)
    except BagError as exc:
        return path, None, exc.problem
    spill.mkdir()
    for key in _ARRAY_KEYS:
        value = episode.pop(key)
        if value is not None:
            np.save(spill / f"{key}.npy", value)
    return path, episode, None


def _unspill(meta: dict, spill: Path) -> dict:
    return {**meta, **{key: np.load(spill / f"{key}.npy", mmap_mode="r") if (spill / f"{key}.npy").is_file() else None
                       for key in _ARRAY_KEYS}}


def build_dataset(
    bag_paths,
    out_dir: str | os.PathLike,
    image_size: int = 64,
    topic_map: dict[str, str] | None = None,
    workers: int = 1,
    progress: bool = True,
    gripper: GripperJoints = PANDA_GRIPPER,
) -> dict:
    """Build a store from bags (bag directories or directories holding bags).

    Returns a summary {"out", "built", "skipped", "num_episodes", "num_steps"}; skipped
    is a list of {"bag", "error"}, also written to the manifest. When no bag at all could
    be built, nothing is written and the summary says num_episodes 0. Episodes pass
    through temporary .npy files next to `out_dir`, so memory stays at one episode.
    """
    bags, skipped = find_bags([bag_paths] if isinstance(bag_paths, (str, os.PathLike)) else bag_paths)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.building-", dir=out_dir.parent) as tmp:
        jobs = [(bag, image_size, topic_map, gripper, Path(tmp) / str(i)) for i, bag in enumerate(bags)]
        return _build(jobs, out_dir, skipped, topic_map, gripper, workers, progress)


def _build(jobs: list, out_dir: Path, skipped: list[dict], topic_map, gripper: GripperJoints, workers: int,
           progress: bool) -> dict:
    from tqdm import tqdm

    from robot_app.store import write_store

    results = []
    bar = tqdm(total=len(jobs), desc="dataset build", unit="bag", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads (tqdm)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for result in pool.map(_load, jobs, chunksize=4):
                results.append(result)
                bar.update()
    else:
        for job in jobs:
            results.append(_load(job))
            bar.update()
    bar.close()
    episodes = [_unspill(ep, job[-1]) for job, (_, ep, _) in zip(jobs, results, strict=True) if ep is not None]
    skipped += [{"bag": str(path), "error": err} for path, ep, err in results if ep is None]
    clipped = [{"bag": ep["source"], "clipped": ep["clipped_commands"], "commands": ep["commands"]}
               for ep in episodes if ep["clipped_commands"]]
    grip_from_state = [{"bag": ep["source"], "steps": ep["grip_from_state"], "of": len(ep["images"])}
                       for ep in episodes if ep["grip_from_state"]]
    summary = {
        "out": str(out_dir),
        "built": [ep["source"] for ep in episodes],
        "skipped": skipped,
        "clipped": clipped,
        "grip_from_state": grip_from_state,
        "num_episodes": len(episodes),
        "num_steps": int(sum(len(ep["images"]) for ep in episodes)),
    }
    if not episodes:
        return summary
    write_store(
        out_dir,
        episodes,
        manifest_extra={
            "skipped": skipped,
            "clipped": clipped,
            "grip_from_state": grip_from_state,
            "action_scaling": DEFAULT_SCALING.to_dict(),
            "topic_map": dict(topic_map or {}),
            "gripper_joints": gripper.to_dict(),
            "alignment": "action of frame t = last command received before frame t+1",
        },
    )
    return summary
