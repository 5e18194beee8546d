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
        return cls(tuple(d["eye"]), tuple(d["target"]), tuple(d["up"]), float(d["fov_deg"]), int(d["size"]))

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
