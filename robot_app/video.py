"""Rollout videos: what the camera saw beside the goal picture the policy pursued.

Why a video beside the picture strip: a strip shows eight moments, and what people look for
in a failed grasp (the hand hovering, closing a step early, the object slipping) happens
between them. robomimic and LeRobot save a rollout video next to each evaluation for the
same reason. The frames are the policy's own 64x64 view, enlarged without smoothing so the
pixels it decided on stay visible; MP4 (OpenCV's mp4v, no ffmpeg install needed) plays in
browsers and every player.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VIDEO_SCALE = 4  # 64x64 frames -> 256x256 tiles
CAPTION_PX = 22  # the text band under the tiles
HOLD_LAST_S = 1.0  # the final frame stays this long, so the outcome can be read


def rollout_frames(frames: list[np.ndarray], goal: np.ndarray, outcome: str = "", scale: int = VIDEO_SCALE) -> list[np.ndarray]:
    """Video frames (RGB uint8): each camera frame beside the goal, captioned with its step and,
    on the last one, `outcome` (e.g. "success, 23 steps")."""
    import cv2

    if not frames:
        raise ValueError("a rollout video needs at least one frame")
    height, width = goal.shape[:2]
    if any(f.shape != goal.shape for f in frames):
        raise ValueError(f"every frame must have the goal's shape {goal.shape}, got {sorted({f.shape for f in frames})}")
    gap = np.full((height, max(2, width // 16), 3), 255, np.uint8)
    goal_tile = goal.astype(np.uint8)
    out = []
    for t, frame in enumerate(frames):
        tile = np.concatenate([frame.astype(np.uint8), gap, goal_tile], axis=1)
        tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        band = np.full((CAPTION_PX, tile.shape[1], 3), 255, np.uint8)
        text = f"t={t}" + (f"  {outcome}" if outcome and t == len(frames) - 1 else "")
        cv2.putText(band, text, (4, CAPTION_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        goal_x = (width + gap.shape[1]) * scale
        cv2.putText(band, "goal", (goal_x + 4, CAPTION_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(np.concatenate([tile, band], axis=0))
    return out


def write_rollout_video(path: str | os.PathLike, frames: list[np.ndarray], goal: np.ndarray, fps: float = 10.0,
                        outcome: str = "") -> Path:
    """An MP4 of the rollout beside its goal (see rollout_frames), written atomically."""
    import cv2

    video = rollout_frames(frames, goal, outcome)
    video += [video[-1]] * round(HOLD_LAST_S * fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # OpenCV picks the container by the suffix
    height, width = video[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
    try:
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path
