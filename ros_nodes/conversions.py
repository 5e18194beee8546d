"""ROS 2 messages <-> numpy, without cv_bridge (not on PyPI).

One place for the conversions every node needs: camera frames, stamps, and the mapping
between a normalised action and the TwistStamped + Float64 a driver obeys. The action
mapping goes through robot_app.spec.ActionScaling, so the sim driver, the policy node and
the dataset builder cannot disagree on units.
"""

from __future__ import annotations

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image

from robot_app.spec import BASE_FRAME, CAMERA_FRAME, DEFAULT_SCALING, ActionScaling, check_image

# Encodings a camera driver may reasonably send, with their bytes per pixel.
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
MAX_ASPECT = 4.0 / 3.0  # beyond this, squeezing a frame into a square distorts it visibly
MIN_SIDE = 16  # smaller images hold too little to be scaled up into a policy input


class ImageConversionError(ValueError):
    """An Image message that cannot become the RGB frame asked for; the message says why."""


def msg_to_image(msg: Image, colour_only: bool = False, what: str = "image") -> np.ndarray:
    """Return the frame as an H x W x 3 uint8 RGB array (a copy, safe to keep).

    bgr8/bgra8 are reordered, alpha is dropped, mono8 is repeated into three channels
    unless `colour_only` (a policy trained on colour must not be fed grey). Rows may be
    padded (step > width * channels) as real drivers do; data shorter than height * step is
    refused rather than read out of bounds.
    """
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise ImageConversionError(f"{what}: encoding {msg.encoding!r} is not supported (expected one of {sorted(CHANNELS)})")
    if colour_only and channels == 1:
        raise ImageConversionError(f"{what}: encoding mono8 has no colour; the policy needs rgb8 or bgr8")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageConversionError(f"{what}: has no pixels ({w}x{h})")
    if step < w * channels:
        raise ImageConversionError(f"{what}: step {step} is shorter than a row ({w} pixels x {channels} bytes)")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size < h * step:
        raise ImageConversionError(f"{what}: {data.size} bytes of data, expected {h * step} ({w}x{h}, step {step})")
    pixels = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_msg(image: np.ndarray, stamp: Time | None = None, frame_id: str = CAMERA_FRAME) -> Image:
    """Wrap an H x W x 3 uint8 RGB array as an rgb8 Image."""
    image = np.ascontiguousarray(check_image(image, what="image_to_msg"))
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(image.shape[1] * 3)
    msg.data = image.tobytes()
    return msg


def fit_image(image: np.ndarray, size: int, what: str = "image") -> tuple[np.ndarray, str]:
    """Resize an RGB frame to size x size when that keeps it recognisable.

    Returns (image, note); the note says what was changed ("" when nothing was), so the
    caller can tell the user. Frames far from square or tiny are refused: squeezing them
    would show the policy something its camera never produced.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, ""
    if min(h, w) < MIN_SIDE:
        raise ImageConversionError(f"{what}: {w}x{h} is too small to scale to {size}x{size}")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise ImageConversionError(
            f"{what}: {w}x{h} is too far from square to scale to {size}x{size} (aspect above {MAX_ASPECT:.2f})"
        )
    interpolation = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    resized = cv2.resize(image, (size, size), interpolation=interpolation)
    return resized, f"resized from {w}x{h} to {size}x{size}"


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def action_to_twist(action: np.ndarray, stamp: Time, scaling: ActionScaling = DEFAULT_SCALING) -> tuple[TwistStamped, float]:
    """A normalised action as MoveIt Servo's input: (TwistStamped in base_link, grip target)."""
    linear, yaw_rate, grip = scaling.to_command(action)
    msg = TwistStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = BASE_FRAME
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
    msg.twist.angular.z = yaw_rate
    return msg, grip


def twist_to_action(msg: TwistStamped, grip: float, scaling: ActionScaling = DEFAULT_SCALING) -> np.ndarray:
    """Inverse of action_to_twist: velocities beyond the scaling's limits are clipped to them."""
    linear = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z], dtype=np.float64)
    return scaling.from_command(linear, float(msg.twist.angular.z), float(np.clip(grip, 0.0, 1.0)))
