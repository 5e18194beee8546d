"""Goal image files: read them, refuse what cannot be a goal, fit the rest to the camera.

A goal image must look like a camera frame to the policy: same size, RGB. A file of
another size is resized when that keeps its content recognisable (near-square, not a
thumbnail), and the user is told; anything else is refused with the reason, so a bad file
never reaches the policy and never takes the window down.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

# The policy node refuses frames past these limits; a goal is held to the same ones.
from ros_nodes.conversions import MAX_ASPECT, MIN_SIDE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
MAX_FILE_BYTES = 64 * 1024 * 1024  # refuse before decoding something absurd


class GoalImageError(ValueError):
    """A file or array that cannot serve as a goal image; the message says why."""


def load_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB, or raise GoalImageError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GoalImageError(f"{path.name}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise GoalImageError(f"{path.name}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise GoalImageError(f"{path.name}: {size / 2**20:.0f} MiB is too large for a goal image")
    raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise GoalImageError(f"{path.name}: not a readable image (PNG, JPEG, BMP, TIFF or WebP expected)")
    return as_rgb8(raw, path.name, bgr=True)


def as_rgb8(raw: np.ndarray, what: str, bgr: bool = False) -> np.ndarray:
    """Bring grey, alpha and 16-bit images to 8-bit RGB; OpenCV decodes colour as BGR."""
    if raw.dtype == np.uint16:
        raw = (raw >> 8).astype(np.uint8)
    elif raw.dtype != np.uint8:
        raise GoalImageError(f"{what}: pixel type {raw.dtype} not supported (8 or 16 bit expected)")
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 3, 4):
        raise GoalImageError(f"{what}: shape {raw.shape} is not an image with 1, 3 or 4 channels")
    if raw.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(raw, 3, axis=2))
    rgb = raw[:, :, 2::-1] if bgr else raw[:, :, :3]
    return np.ascontiguousarray(rgb)


def check_goal_shape(image: np.ndarray, what: str) -> None:
    """Refuse images whose resize to a square camera frame would not be sound."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise GoalImageError(f"{what}: {w}x{h} is too small for a goal image (at least {MIN_SIDE} px a side)")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise GoalImageError(
            f"{what}: {w}x{h} is too far from square to match the camera (aspect {max(h, w) / min(h, w):.2f}, "
            f"at most {MAX_ASPECT:.2f}); crop it first"
        )


def fit_to_camera(image: np.ndarray, width: int, height: int, what: str) -> tuple[np.ndarray, str | None]:
    """Return the image at the camera's size and a note when it had to be resized.

    A near-square image is centre-cropped to the camera's aspect, then resized (area
    interpolation when shrinking, as the dataset builder does, cubic when enlarging).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image, None
    check_goal_shape(image, what)
    target_aspect = width / height
    if w / h > target_aspect:
        crop_w = round(h * target_aspect)
        x0 = (w - crop_w) // 2
        cropped = image[:, x0 : x0 + crop_w]
    else:
        crop_h = round(w / target_aspect)
        y0 = (h - crop_h) // 2
        cropped = image[y0 : y0 + crop_h]
    shrinking = cropped.shape[0] > height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(cropped, (width, height), interpolation=interpolation)
    note = f"{what}: {w}x{h} resized to {width}x{height} to match the camera"
    return np.ascontiguousarray(resized), note


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
