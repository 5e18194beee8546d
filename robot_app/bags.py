"""Episode logs as rosbag2 bags (design section 4), written and read without a ROS install.

A bag from `robot-app collect`, from the recorder node or from `ros2 bag record` on a real
robot is the same thing to the rest of the system: a directory with `metadata.yaml` and
one MCAP (or sqlite3) file holding the topics of design section 2. The `rosbags` library
does the file formats; this module adds what we need on top of it:

- `BagWriter` writes into `DIR.partial` and renames to `DIR` only when the bag is
  complete, so a directory named like a bag is always a whole bag and an interrupted
  writer leaves an unmistakable leftover. `flush()` pushes buffered messages to disk, and
  `recover_bag` turns the `.partial` of a killed writer into a complete bag holding every
  message that reached the disk.
- `BagReader` / `read_bag` read any bag and turn every failure (missing or garbage
  metadata, a truncated file, an unknown type) into a `BagError` naming the bag.
- Builders for the standard messages, and `write_episode`, the sim's episode layout.

Torch-free; cv2 is imported only when an image needs resizing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_app.spec import (
    BASE_FRAME,
    CAMERA_FRAME,
    CONTROL_PERIOD_S,
    DEFAULT_SCALING,
    EPISODE_TOPICS,
    TASK_SUCCESS_TYPE,
    ActionScaling,
    Topics,
    check_image,
)

if TYPE_CHECKING:
    from sim_worlds.collectors import Episode

STORAGES = ("mcap", "sqlite3")
PARTIAL_SUFFIX = ".partial"
COMMAND_DELAY_NS = 5_000_000  # a tick's command is logged this long after its frame
SUCCESS_DELAY_NS = 10_000_000  # the task/success label follows the last command
CUSTOM_TASK = "robot_app/task"  # metadata.yaml custom_data keys written by write_episode
CUSTOM_BEHAVIOURS = "robot_app/behaviours"
CUSTOM_SCALING = "robot_app/action_scaling"
CUSTOM_OBJECTS = "robot_app/objects"

# Image encodings we convert to rgb8 without guessing: (channels, channel order to take).
_ENCODINGS = {
    "rgb8": (3, [0, 1, 2]),
    "bgr8": (3, [2, 1, 0]),
    "rgba8": (4, [0, 1, 2]),
    "bgra8": (4, [2, 1, 0]),
}


class BagError(Exception):
    """A bag that cannot be used, with the bag's path and what is wrong with it."""

    def __init__(self, bag: str | os.PathLike, problem: str):
        self.bag = str(bag)
        self.problem = problem
        super().__init__(f"{self.bag}: {problem}")


@functools.lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Jazzy message types (what our bags and a Jazzy robot's bags hold)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise ValueError(f"storage {storage!r}: expected one of {', '.join(STORAGES)}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def partial_path(path: str | os.PathLike) -> Path:
    """Where a bag is written until it is complete."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


class BagWriter:
    """Writes one rosbag2 bag (version 9, MCAP by default) to DIR.partial, renamed to DIR on close.

    Inside the partial directory the bag already has its final name
    (`DIR.partial/NAME/NAME.mcap`), so the rename moves a finished bag whose file names
    are those of `ros2 bag`-style bags. Leaving the `with` block by an exception aborts:
    the partial is kept, nothing is renamed, and `recover_bag` can salvage it.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", replace_partial: bool = False):
        from rosbags.rosbag2 import Writer

        self.path = Path(path)
        self.storage = storage
        self.partial = partial_path(self.path)
        if self.path.exists():
            raise BagError(self.path, "already exists; not overwriting a bag")
        if self.partial.exists():
            if not replace_partial:
                raise BagError(self.partial, "an unfinished bag is in the way (recover_bag it, or delete it)")
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self._writer = Writer(
            self.partial / self.path.name, version=9, storage_plugin=_storage_plugin(storage)
        )
        self._writer.open()
        self._connections: dict[tuple[str, str], object] = {}
        self._closed = False

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def set_custom_data(self, key: str, value: str) -> None:
        """Free-form string metadata stored in metadata.yaml (task labels, provenance)."""
        self._writer.set_custom_data(key, value)

    def _connection(self, topic: str, msgtype: str):
        key = (topic, msgtype)
        if key not in self._connections:
            self._connections[key] = self._writer.add_connection(topic, msgtype, typestore=typestore())
        return self._connections[key]

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg) -> None:
        """Serialise a rosbags message object and log it at `stamp_ns` (bag receive time)."""
        self.write_cdr(topic, msgtype, stamp_ns, typestore().serialize_cdr(msg, msgtype))

    def write_cdr(self, topic: str, msgtype: str, stamp_ns: int, cdr: bytes) -> None:
        """Log already-serialised CDR bytes (what rclpy hands a raw subscription)."""
        if self._closed:
            raise BagError(self.path, "write after close")
        self._writer.write(self._connection(topic, msgtype), int(stamp_ns), cdr)

    def flush(self) -> None:
        """Push every buffered message to disk, so a killed process loses none of them.

        The rosbags MCAP writer keeps messages in a 1 MiB chunk in memory until the chunk
        fills; flushing closes that chunk early (small chunks cost a little space).
        """
        storage = self._writer.storage
        if storage is None:
            return
        if hasattr(storage, "close_chunk"):  # MCAP
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        elif hasattr(storage, "conn"):  # sqlite3
            storage.conn.commit()

    def close(self) -> Path:
        """Finish the bag (index, metadata.yaml) and move it to its final name."""
        if self._closed:
            return self.path
        self._writer.close()
        self._closed = True
        os.replace(self.partial / self.path.name, self.path)
        self.partial.rmdir()
        return self.path

    def abort(self) -> None:
        """Stop writing without finishing: the partial stays for `recover_bag`."""
        if not self._closed:
            self.flush()
            self._writer.abort()
            self._closed = True


# ---------------------------------------------------------------- standard messages


def _header(stamp_ns: int, frame_id: str):
    ts = typestore().types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return ts["std_msgs/msg/Header"](
        stamp=ts["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def stamp_to_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def image_msg(image: np.ndarray, stamp_ns: int, frame_id: str = CAMERA_FRAME):
    """sensor_msgs/Image, rgb8, from an HxWx3 uint8 array."""
    image = check_image(image, what="image_msg")
    h, w = image.shape[:2]
    return typestore().types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=np.ascontiguousarray(image).reshape(-1),
    )


def twist_msg(linear, yaw_rate: float, stamp_ns: int, frame_id: str = BASE_FRAME):
    """geometry_msgs/TwistStamped: end-effector velocity (m/s, rad/s about z) in base_link."""
    ts = typestore().types
    vec = ts["geometry_msgs/msg/Vector3"]
    lx, ly, lz = (float(v) for v in np.asarray(linear, dtype=np.float64).reshape(3))
    twist = ts["geometry_msgs/msg/Twist"](
        linear=vec(x=lx, y=ly, z=lz), angular=vec(x=0.0, y=0.0, z=float(yaw_rate))
    )
    return ts["geometry_msgs/msg/TwistStamped"](header=_header(stamp_ns, frame_id), twist=twist)


def joint_state_msg(names, positions, velocities, stamp_ns: int, frame_id: str = ""):
    return typestore().types["sensor_msgs/msg/JointState"](
        header=_header(stamp_ns, frame_id),
        name=[str(n) for n in names],
        position=np.asarray(positions, dtype=np.float64).reshape(-1),
        velocity=np.asarray(velocities, dtype=np.float64).reshape(-1),
        effort=np.zeros(0, dtype=np.float64),
    )


def pose_msg(position, orientation_xyzw, stamp_ns: int, frame_id: str = BASE_FRAME):
    ts = typestore().types
    px, py, pz = (float(v) for v in np.asarray(position, dtype=np.float64).reshape(3))
    qx, qy, qz, qw = (float(v) for v in np.asarray(orientation_xyzw, dtype=np.float64).reshape(4))
    pose = ts["geometry_msgs/msg/Pose"](
        position=ts["geometry_msgs/msg/Point"](x=px, y=py, z=pz),
        orientation=ts["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
    )
    return ts["geometry_msgs/msg/PoseStamped"](header=_header(stamp_ns, frame_id), pose=pose)


def float64_msg(value: float):
    return typestore().types["std_msgs/msg/Float64"](data=float(value))


def bool_msg(value: bool):
    return typestore().types["std_msgs/msg/Bool"](data=bool(value))


# ---------------------------------------------------------------- images


def image_from_msg(msg) -> np.ndarray:
    """HxWx3 uint8 rgb from a sensor_msgs/Image (rosbags or rclpy object alike).

    Converts the 8-bit colour encodings whose meaning is unambiguous (rgb8, bgr8, rgba8,
    bgra8) and refuses the rest (mono, 16-bit, Bayer, YUV) with a ValueError, rather than
    guessing colours a policy would then be trained on.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in _ENCODINGS:
        raise ValueError(
            f"image encoding {msg.encoding!r} is not supported (use one of {', '.join(_ENCODINGS)})"
        )
    channels, order = _ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    if h <= 0 or w <= 0:
        raise ValueError(f"image of size {w}x{h}")
    if step < w * channels or data.size < step * h:
        raise ValueError(f"image {w}x{h} {encoding}: step {step} and {data.size} data bytes do not fit")
    rows = data[: step * h].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(rows[:, :, order])


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square `size` x `size` image: centre-crop to a square, then resize with OpenCV.

    Cropping keeps the aspect ratio (a 640x480 camera must not be squashed); INTER_AREA
    when shrinking avoids aliasing, INTER_LINEAR when enlarging.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    import cv2

    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interp)


# ---------------------------------------------------------------- episodes


def write_episode(
    path: str | os.PathLike,
    episode: Episode,
    task_success: bool | None = None,
    image_size: int = 64,
    start_ns: int | None = None,
    storage: str = "mcap",
    scaling: ActionScaling = DEFAULT_SCALING,
    replace_partial: bool = True,
) -> Path:
    """Write a collector episode as a bag: T+1 frames and T commands at the control rate.

    Frame t (with joint_states and ee_pose) is logged at start_ns + t * 100 ms, the
    commands of tick t (TwistStamped and Float64 grip target, from the normalised action
    through `scaling`) 5 ms later, as a driver would receive them. Header stamps equal the
    bag timestamps. A labelled episode (`task_success`, or else `episode.success`) ends
    with a task/success Bool. The task name, the behaviours, the scene's objects and the scaling go into metadata
    custom_data; the scaling there is a record only (`dataset build` reads the commands, which
    are physical, back with the store's own scaling).
    """
    observations = list(episode.observations)
    actions = np.asarray(episode.actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 5 or len(observations) != len(actions) + 1:
        raise ValueError(
            f"write_episode {path}: need T+1 observations and (T, 5) actions, "
            f"got {len(observations)} observations and actions of shape {actions.shape}"
        )
    start_ns = time.time_ns() if start_ns is None else int(start_ns)
    period_ns = int(round(CONTROL_PERIOD_S * 1e9))
    success = episode.success if task_success is None else task_success
    with BagWriter(path, storage=storage, replace_partial=replace_partial) as bag:
        bag.set_custom_data(CUSTOM_TASK, str(episode.task))
        bag.set_custom_data(CUSTOM_BEHAVIOURS, json.dumps(list(getattr(episode, "behaviours", []))))
        bag.set_custom_data(CUSTOM_SCALING, json.dumps(scaling.to_dict()))
        if objects := getattr(episode, "objects", None):
            bag.set_custom_data(CUSTOM_OBJECTS, json.dumps(objects))
        for t, obs in enumerate(observations):
            stamp = start_ns + t * period_ns
            check_image(obs.image, image_size, what=f"write_episode {path}: frame {t}")
            bag.write(Topics.IMAGE, EPISODE_TOPICS[Topics.IMAGE], stamp, image_msg(obs.image, stamp))
            bag.write(
                Topics.JOINT_STATES,
                EPISODE_TOPICS[Topics.JOINT_STATES],
                stamp,
                joint_state_msg(obs.joint_names, obs.joint_positions, obs.joint_velocities, stamp),
            )
            bag.write(
                Topics.EE_POSE,
                EPISODE_TOPICS[Topics.EE_POSE],
                stamp,
                pose_msg(obs.ee_position, obs.ee_orientation, stamp),
            )
            if t < len(actions):
                linear, yaw_rate, grip = scaling.to_command(actions[t])
                cmd_stamp = stamp + COMMAND_DELAY_NS
                bag.write(
                    Topics.CMD_EE_DELTA,
                    EPISODE_TOPICS[Topics.CMD_EE_DELTA],
                    cmd_stamp,
                    twist_msg(linear, yaw_rate, cmd_stamp),
                )
                bag.write(
                    Topics.CMD_GRIPPER, EPISODE_TOPICS[Topics.CMD_GRIPPER], cmd_stamp, float64_msg(grip)
                )
        if success is not None:
            end = start_ns + (len(observations) - 1) * period_ns + SUCCESS_DELAY_NS
            bag.write(Topics.TASK_SUCCESS, TASK_SUCCESS_TYPE, end, bool_msg(bool(success)))
    return Path(path)


# ---------------------------------------------------------------- reading


def _register_unknown_types(store, connections) -> None:
    """Teach the typestore the bag's own definitions of types Jazzy does not know."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    typs = {}
    for conn in connections:
        if conn.msgtype in store.types or conn.msgdef.format == MessageDefinitionFormat.NONE:
            continue
        if conn.msgdef.format == MessageDefinitionFormat.MSG:
            typs.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        else:
            typs.update(get_types_from_idl(conn.msgdef.data))
    if typs:
        store.register(typs)


def _describe(exc: Exception) -> str:
    """One line from a library error, with a hint where its wording is obscure."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    if "end magic" in text or "footer" in text.lower():
        text += " (the MCAP file is truncated, or its writer never closed it)"
    return text or type(exc).__name__


class BagReader:
    """An open rosbag2 bag (MCAP or sqlite3). Every failure is a BagError naming the bag."""

    def __init__(self, path: str | os.PathLike):
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.is_dir():
            raise BagError(self.path, "not a bag directory" if self.path.exists() else "does not exist")
        if not (self.path / "metadata.yaml").is_file():
            hint = (
                " (an unfinished bag: recover_bag can salvage it)"
                if self.path.name.endswith(PARTIAL_SUFFIX)
                else ""
            )
            raise BagError(self.path, f"no metadata.yaml, not a complete rosbag2 bag{hint}")
        self._store = typestore()
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises many types for corrupt files; all mean "unreadable"
            raise BagError(self.path, f"cannot open: {_describe(exc)}") from exc
        unknown = {c.msgtype for c in self._reader.connections} - set(self._store.types)
        if unknown:
            from rosbags.typesys import Stores, get_typestore

            self._store = get_typestore(Stores.ROS2_JAZZY)
            try:
                _register_unknown_types(self._store, self._reader.connections)
            except Exception as exc:
                raise BagError(
                    self.path, f"cannot parse the definitions of {sorted(unknown)}: {exc}"
                ) from exc

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        """Topic name (as recorded) -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self._reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        return counts

    @property
    def custom_data(self) -> dict[str, str]:
        return dict(getattr(self._reader.storage.metadata, "custom", None) or {})

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, object]]:
        """(topic, msgtype, bag timestamp ns, message) in the bag's order."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        index = 0
        try:
            for conn, stamp, raw in self._reader.messages(conns):
                index += 1
                yield conn.topic, conn.msgtype, int(stamp), self._store.deserialize_cdr(raw, conn.msgtype)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(self.path, f"unreadable after {index} messages: {_describe(exc)}") from exc


def read_bag(
    path: str | os.PathLike, topics: Iterable[str] | None = None
) -> Iterator[tuple[str, str, int, object]]:
    """Iterate over (topic, msgtype, stamp_ns, deserialised message) of a bag."""
    with BagReader(path) as reader:
        yield from reader.messages(topics)


def find_bags(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[dict]]:
    """Expand paths to bag directories: a bag itself, or any directory holding bags.

    Returns (bags in sorted order, skipped) where skipped lists, with a reason, what looks
    like a bag but is not usable as one (an unfinished `.partial`, a storage file without
    metadata.yaml, a path with no bag at all), so nothing is dropped silently.
    """
    bags: list[Path] = []
    skipped: list[dict] = []

    def visit(d: Path) -> bool:
        if d.name.endswith(PARTIAL_SUFFIX):
            skipped.append(
                {"bag": str(d), "error": "unfinished bag (.partial): its writer did not complete it"}
            )
            return True
        if (d / "metadata.yaml").is_file():
            bags.append(d)
            return True
        found = False
        if any(f.suffix in (".mcap", ".db3") for f in d.iterdir() if f.is_file()):
            skipped.append({"bag": str(d), "error": "storage files but no metadata.yaml"})
            found = True
        for child in sorted(p for p in d.iterdir() if p.is_dir()):
            found = visit(child) or found
        return found

    for p in paths:
        p = Path(p)
        if not p.exists():
            skipped.append({"bag": str(p), "error": "does not exist"})
        elif not p.is_dir():
            skipped.append({"bag": str(p), "error": "not a directory (give the bag directory, not its file)"})
        elif not visit(p):
            skipped.append({"bag": str(p), "error": "no rosbag2 bag in it"})
    return sorted(dict.fromkeys(bags)), skipped


def bag_sha256(path: str | os.PathLike) -> str:
    """Hash of a bag directory's files (names and contents), for the dataset manifest."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- recovery of unfinished MCAP bags

_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _mcap_records(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of each complete record; stops quietly at a truncated tail."""
    pos = 0
    while pos + 9 <= len(buf):
        op = buf[pos]
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        if pos + 9 + length > len(buf):
            return
        yield op, buf[pos + 9 : pos + 9 + length]
        pos += 9 + length


def _mcap_string(body: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", body, pos)
    return bytes(body[pos + 4 : pos + 4 + n]).decode(), pos + 4 + n


def _salvage_mcap(file: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, stamp, cdr) of every message in the complete chunks of an MCAP file.

    Channels and schemas are written inside the first chunk by rosbags, so a chunk that
    made it to disk is self-describing together with the chunks before it.
    """
    data = memoryview(file.read_bytes())
    if bytes(data[:8]) != _MCAP_MAGIC:
        raise BagError(file, "not an MCAP file (bad magic)")
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    for op, body in _mcap_records(data[8:]):
        if op != 0x06:  # chunk
            continue
        pos = 8 * 3 + 4  # start, end, uncompressed size, crc
        compression, pos = _mcap_string(body, pos)
        if compression:
            raise BagError(file, f"compressed chunks ({compression}) cannot be salvaged")
        (size,) = struct.unpack_from("<Q", body, pos)
        for inner_op, rec in _mcap_records(body[pos + 8 : pos + 8 + size]):
            if inner_op == 0x03:  # schema: id u16, name
                (sid,) = struct.unpack_from("<H", rec, 0)
                schemas[sid], _ = _mcap_string(rec, 2)
            elif inner_op == 0x04:  # channel: id u16, schema u16, topic
                cid, sid = struct.unpack_from("<HH", rec, 0)
                topic, _ = _mcap_string(rec, 4)
                channels[cid] = (topic, schemas.get(sid, ""))
            elif inner_op == 0x05:  # message: channel u16, seq u32, log time u64, publish time u64
                (cid,) = struct.unpack_from("<H", rec, 0)
                (log_time,) = struct.unpack_from("<Q", rec, 6)
                topic, msgtype = channels[cid]
                yield topic, msgtype, log_time, bytes(rec[22:])


def recover_bag(partial: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Turn the `.partial` of a killed MCAP writer into a complete bag (default: its final name).

    Everything that reached the disk (every message before the last `flush()`) is kept;
    the partial is removed only after the recovered bag is complete.
    """
    partial = Path(partial)
    out = Path(out) if out is not None else partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
    if not partial.is_dir():
        raise BagError(partial, "does not exist")
    files = sorted(partial.rglob("*.mcap"))
    if not files:
        raise BagError(partial, "no MCAP file to recover")
    # The writer needs `out.partial`, which may be this very directory: move it aside first.
    source = partial.with_name(partial.name + ".recovering")
    os.replace(partial, source)
    try:
        with BagWriter(out) as writer:
            for file in sorted(source.rglob("*.mcap")):
                for topic, msgtype, stamp, cdr in _salvage_mcap(file):
                    writer.write_cdr(topic, msgtype, stamp, cdr)
    except BaseException:
        shutil.rmtree(partial_path(out), ignore_errors=True)
        os.replace(source, partial)
        raise
    shutil.rmtree(source)
    return out
