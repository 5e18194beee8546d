"""sensor_msgs/Image <-> numpy for the GUI.

Temporary home: ros_nodes/conversions.py is meant to own image_to_msg / msg_to_image for
every node. Until it lands, the GUI carries these two functions with the same names and
meaning, so switching is a one-line import change.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from robot_app.spec import CAMERA_FRAME, check_image

# Encodings a camera driver may reasonably send; everything is converted to rgb8.
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}


def msg_to_image(msg: Image) -> np.ndarray:
    """Return the frame as an H x W x 3 uint8 RGB array (a copy, safe to keep).

    Rows may be padded (step > width * channels), as real drivers do; a message whose
    data is shorter than height * step is refused instead of being read out of bounds.
    """
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ValueError(
            f"image encoding {msg.encoding!r} not supported (expected one of {sorted(_CHANNELS)})"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"image has no pixels ({w}x{h})")
    if step < w * channels:
        raise ValueError(f"image step {step} is shorter than a row ({w} x {channels} bytes)")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size < h * step:
        raise ValueError(f"image data has {data.size} bytes, expected {h * step} ({w}x{h}, step {step})")
    pixels = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_msg(image: np.ndarray, stamp=None, frame_id: str = CAMERA_FRAME) -> Image:
    """Wrap an H x W x 3 uint8 RGB array as an rgb8 Image (stamp: builtin_interfaces Time)."""
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
