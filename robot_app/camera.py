"""A fixed pinhole camera: world points to image pixels and image pixels back to a plane.

A task model that proposes goal pictures (training/localiser.py) finds its object as a
pixel and looks up play-data grasps by where on the table they held their object; this is
the one place those two meet. Pixel coordinates are continuous: pixel j's centre is at
j + 0.5, the image centre at size / 2 (pybullet's and OpenCV's convention alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    eye: tuple[float, float, float]  # camera position in the robot's base frame, metres
    target: tuple[float, float, float]  # a point on the optical axis
    up: tuple[float, float, float]
    fov_deg: float  # vertical field of view
    size: int  # square image side in pixels

    @classmethod
    def from_dict(cls, d: dict) -> PinholeCamera:
        """KeyError, TypeError or ValueError when a field is missing or not numbers; see check()."""
        eye, target, up = (tuple(float(x) for x in d[k]) for k in ("eye", "target", "up"))
        return cls(eye, target, up, float(d["fov_deg"]), int(d["size"]))

    @classmethod
    def from_file(cls, path, size: int) -> PinholeCamera:
        """A calibrated camera from a JSON or YAML file: eye, target, up (metres, the robot's base
        frame) and fov_deg (vertical). `size` is the model's image side: the field of view of a
        square image does not change when it is resized, so a size in the file is not needed."""
        import json
        from pathlib import Path

        import yaml

        path = Path(path)
        try:
            text = path.read_text()
            d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read the camera file: {exc}") from None
        try:
            camera = cls.from_dict({**d, "size": size})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: a camera needs eye, target and up (3 numbers each) and fov_deg ({exc!r})") from None
        camera.check()
        return camera

    def check(self) -> None:
        """Refuse a camera the projection cannot use, naming why."""
        if any(len(v) != 3 for v in (self.eye, self.target, self.up)):
            raise ValueError(f"camera eye, target and up need 3 numbers each: {self.to_dict()}")
        forward = np.subtract(self.target, self.eye)
        if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(np.cross(forward, self.up)) < 1e-9:
            raise ValueError(f"camera target equals its eye or up lies along its view: {self.to_dict()}")
        if not 0 < self.fov_deg < 180 or self.size < 1:
            raise ValueError(f"camera fov_deg must lie in (0, 180) and size be positive: {self.to_dict()}")

    def to_dict(self) -> dict:
        return {"eye": list(self.eye), "target": list(self.target), "up": list(self.up), "fov_deg": self.fov_deg,
                "size": self.size}

    def mirror_symmetric(self, tolerance: float = 1e-9) -> bool:
        """Whether the view is symmetric under y -> -y (camera on the robot's x axis, upright):
        then a frame mirrored left-right is the view of the mirrored scene, pixel for pixel."""
        return all(abs(v[1]) <= tolerance for v in (self.eye, self.target, self.up))

    def _axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (self.eye, self.target, self.up))
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        focal = (self.size / 2) / math.tan(math.radians(self.fov_deg) / 2)
        return forward, right, np.cross(right, forward), focal

    def project(self, points) -> np.ndarray:
        """(..., 2) (column, row) of world points (..., 3)."""
        forward, right, up, focal = self._axes()
        d = np.asarray(points, dtype=np.float64) - np.asarray(self.eye, dtype=np.float64)
        depth = d @ forward
        return np.stack([self.size / 2 + focal * (d @ right) / depth, self.size / 2 - focal * (d @ up) / depth], -1)

    def to_plane(self, pixels, height: float) -> np.ndarray:
        """(..., 3) where the rays through pixels (..., 2) meet the horizontal plane z = height."""
        forward, right, up, focal = self._axes()
        pixels = np.asarray(pixels, dtype=np.float64)
        x = (pixels[..., 0:1] - self.size / 2) / focal
        y = (self.size / 2 - pixels[..., 1:2]) / focal
        ray = forward + x * right + y * up
        eye = np.asarray(self.eye, dtype=np.float64)
        t = (height - eye[2]) / ray[..., 2:3]
        return eye + t * ray
