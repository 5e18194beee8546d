"""Videos of what the camera saw: a policy's rollout beside its goal, a logged episode beside its last frame.

Why a video beside the picture strip: a strip shows eight moments, and what people look for
in a failed grasp (the hand hovering, closing a step early, the object slipping) happens
between them. robomimic and LeRobot save a rollout video next to each evaluation for the
same reason, and LeRobot's dataset viewer is how its users check what they recorded before
training on it. The frames are the learner's own 64x64 view, enlarged without smoothing so
the pixels it decides on stay visible. WebM with VP8, through the ffmpeg inside
opencv-python-headless (no install): browsers play it, so a report page can show it, which
they do not do for the mp4v that wheel can also write (it has no H.264 encoder).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

VIDEO_SCALE = 4  # 64x64 frames -> 256x256 tiles
CAPTION_LINE_PX = 18  # one caption line under the tiles
HOLD_LAST_S = 1.0  # the final frame stays this long, so the outcome can be read


def captioned_frames(frames: list[np.ndarray], captions: list[str], side: np.ndarray | None = None,
                     side_label: str = "goal", scale: int = VIDEO_SCALE, colour=(0, 0, 0)) -> list[np.ndarray]:
    """Video frames (RGB uint8): each frame, `side` beside it when given (a goal picture, labelled
    `side_label` unless empty), and its caption under them ("\\n" starts a second line), in `colour`."""
    import cv2

    if not frames:
        raise ValueError("a video needs at least one frame")
    if len(captions) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(captions)} captions")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or (side is not None and side.shape != shape):
        shapes = sorted({f.shape for f in frames} | ({side.shape} if side is not None else set()))
        raise ValueError(f"every frame must have the {'goal' if side is not None else 'first frame'}'s shape, got {shapes}")
    labelled = side is not None and bool(side_label)
    lines = max(c.count("\n") + 1 for c in captions) + labelled  # the side's label has a line of its own

    def enlarge(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    side_tile = None  # the gap and the side picture, enlarged once for every frame
    if side is not None:
        side_tile = enlarge(np.concatenate([np.full((shape[0], max(2, shape[1] // 16), 3), 255, np.uint8),
                                            side.astype(np.uint8)], axis=1))
    out = []
    for frame, caption in zip(frames, captions, strict=True):
        tile = enlarge(frame.astype(np.uint8))
        if side_tile is not None:
            tile = np.concatenate([tile, side_tile], axis=1)
        band = np.full((CAPTION_LINE_PX * lines + 4, tile.shape[1], 3), 255, np.uint8)
        for i, line in enumerate(caption.split("\n")):
            _put(band, line, 4, i, colour)
        if labelled:
            _put(band, side_label, side_tile.shape[1] + 4, 0, colour)  # frame and side are one width: it starts there
        out.append(np.concatenate([tile, band], axis=0))
    return out


def _put(band: np.ndarray, text: str, x: int, line: int, colour=(0, 0, 0)) -> None:
    import cv2

    cv2.putText(band, text, (x, CAPTION_LINE_PX * (line + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)


VIDEO_SUFFIX = ".webm"


def write_video(path: str | os.PathLike, video: list[np.ndarray], fps: float = 10.0) -> Path:
    """A WebM (VP8) of these RGB frames, the last held HOLD_LAST_S; written atomically.
    `path` must end in .webm."""
    import cv2

    path = Path(path)
    if path.suffix != VIDEO_SUFFIX:
        raise ValueError(f"{path}: videos are written as {VIDEO_SUFFIX}")
    video = video + [video[-1]] * round(HOLD_LAST_S * fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # OpenCV picks the container by the suffix
    height, width = video[0].shape[:2]
    with _quiet_stderr():
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"VP80"), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write a VP8 video here")
    try:
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _quiet_stderr():
    """OpenCV's ffmpeg prints a line to the process's stderr for every WebM it opens ("tag
    'VP80' is not supported with codec id 139", then uses the right tag): silence the C level
    stderr for that call only, so commands' own messages are not buried under it."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def rollout_frames(frames: list[np.ndarray], goal: np.ndarray, outcome: str = "") -> list[np.ndarray]:
    """A rollout's frames beside the goal it pursued, captioned with the step and, on the
    last one, `outcome` (e.g. "success, 23 steps")."""
    captions = [f"t={t}" for t in range(len(frames))]
    if captions and outcome:
        captions[-1] += f"  {outcome}"
    return captioned_frames(frames, captions, goal)


def write_rollout_video(path: str | os.PathLike, frames: list[np.ndarray], goal: np.ndarray, fps: float = 10.0,
                        outcome: str = "") -> Path:
    """A video of a rollout beside its goal (rollout_frames)."""
    return write_video(path, rollout_frames(frames, goal, outcome), fps)


def episode_frames(episode: dict, title: str = "") -> list[np.ndarray]:
    """A logged episode as the learner sees it: each frame with the action logged after it,
    the gripper state and height, beside the episode's last frame (the goal hindsight
    relabeling gives it); the last caption says the task label, when there is one.

    `episode`: the arrays of one episode as `dataset_build.episode_from_bag` returns them and
    `store.write_store` takes them (images, actions, gripper, optional ee_position and success).
    """
    images, actions, gripper = episode["images"], episode["actions"], episode["gripper"]
    heights = None if episode.get("ee_position") is None else np.asarray(episode["ee_position"])[:, 2]
    last = len(images) - 1
    captions = []
    for t in range(len(images)):
        vx, vy, vz, wz, grip = (float(a) for a in actions[t])
        height = "" if heights is None or not np.isfinite(heights[t]) else f"  height {100 * float(heights[t]):.1f} cm"
        captions.append(f"{title}{'  ' if title else ''}t={t}/{last}  gripper {float(gripper[t]):.2f}{height}\n"
                        f"action v ({vx:+.2f} {vy:+.2f} {vz:+.2f}) wz {wz:+.2f} grip {'close' if grip > 0 else 'open'}")
    label = {True: "task: success", False: "task: failure"}.get(episode.get("success"), "")
    if label:
        captions[-1] += f"\n{label}"
    frames = [np.asarray(image) for image in images]
    return captioned_frames(frames, captions, frames[-1], side_label="last frame")


SHEET_COLUMNS = 6
SHEET_EPISODES = 48  # at most this many, evenly spread over the store
LABEL_COLOURS = {True: (26, 127, 55), False: (207, 34, 46), None: (87, 96, 106)}  # RGB: success, failure, unlabelled


def episode_sheet(store, count: int = SHEET_EPISODES, scale: int = 2) -> np.ndarray:
    """One picture of a store (RGB uint8): for up to `count` episodes spread over it, the first
    and the last frame side by side, captioned with the index, length and task label in its
    colour. What a person looks at first to see whether a recording session went as meant
    (starts varied, objects moved, labels plausible) before watching single episodes."""

    if store.num_episodes == 0:
        raise ValueError(f"{store.root}: no episodes")
    picks = np.unique(np.linspace(0, store.num_episodes - 1, min(count, store.num_episodes)).round().astype(int))
    bounds = store.episode_bounds()
    tiles = []
    for episode in picks:
        start, end = (int(i) for i in bounds[episode])
        success = store.manifest["episodes"][episode].get("success")
        label = {True: "success", False: "failure"}.get(success, "unlabelled")
        (tile,) = captioned_frames([np.asarray(store.images[start])], [f"{episode}: {end - start} steps, {label}"],
                                   np.asarray(store.images[end - 1]), side_label="", scale=scale, colour=LABEL_COLOURS[success])
        tiles.append(np.pad(tile, ((3, 3), (3, 3), (0, 0)), constant_values=255))
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % SHEET_COLUMNS)
    rows = [np.concatenate(tiles[i:i + SHEET_COLUMNS], 1) for i in range(0, len(tiles), SHEET_COLUMNS)]
    return np.concatenate(rows, 0)
