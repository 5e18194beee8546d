"""Synthetic data for a task model that proposes its goal (robot-app task-goals): labelled
attempts at a yellow blob, and a play store of held, lifted frames over known spots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_app.camera import PinholeCamera
from robot_app.store import write_store

SIZE = 64
GRASP_Z = 0.03


def camera() -> PinholeCamera:
    from sim_worlds.panda_world import sim_camera

    return sim_camera(SIZE)


def blob_image(pixel, rng, size=SIZE) -> np.ndarray:
    """Table-coloured noise with a 4x4 yellow square centred on the (column, row) pixel."""
    image = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
    c, r = int(round(pixel[0])), int(round(pixel[1]))
    image[r - 2:r + 2, c - 2:c + 2] = (240, 215, 30)
    return image


def task_episodes(pixels, rng, length=8, close_at=5):
    """Labelled grasp attempts: the blob lies at `pixel` until the close command at `close_at`,
    where the grasp point is that pixel on the grasp plane; every attempt succeeds."""
    cam = camera()
    episodes = []
    for i, pixel in enumerate(pixels):
        actions = np.zeros((length, 5), np.float32)
        actions[close_at:, 4] = 1.0
        ee = np.tile(cam.to_plane(pixel, GRASP_Z), (length, 1))
        ee[:close_at, 2] += 0.05
        episodes.append({"images": np.stack([blob_image(pixel, rng) for _ in range(length)]), "actions": actions,
                         "gripper": np.zeros(length, np.float32), "timestamps": np.arange(length) * 0.1, "ee_position": ee,
                         "success": True, "task": "grasp-heldout", "source": f"ep{i}"})
    return episodes


def play_episode(rng, places=12):
    """Held, lifted frames over `places` spots, each frame's image tagged by its spot."""
    cam = camera()
    pixels = np.column_stack([np.linspace(12, 52, places), np.full(places, 32.0)])
    ee = cam.to_plane(pixels, GRASP_Z)
    ee[:, 2] = 0.15
    images = np.stack([np.full((SIZE, SIZE, 3), 10 * (k + 1), np.uint8) for k in range(places)])
    return [{"images": images, "actions": np.zeros((places, 5), np.float32), "gripper": np.full(places, 0.35, np.float32),
             "timestamps": np.arange(places) * 0.1, "ee_position": ee}], pixels


def make_tiny_task_model(out: Path, base: Path | None = None) -> np.ndarray:
    """Write out/task_model.onnx (and its files) with `robot-app task-goals` from `base` (default
    a fresh QNetwork exported as gcbc) and synthetic stores; returns the play spots' pixels."""
    import torch

    from robot_app.cli import main
    from training.export import export_onnx
    from training.networks import QNetwork

    rng = np.random.default_rng(1)
    if base is None:
        torch.manual_seed(0)
        base = out / "goal.onnx"
        export_onnx(QNetwork().eval(), base, SIZE, {"algo": "gcbc", "training_steps": 1, "data_manifest_hash": "feed"})
    write_store(out / "task", task_episodes(rng.uniform(12, 52, (24, 2)).round(), rng))
    episodes, spots = play_episode(rng)
    write_store(out / "play", episodes)
    code = main(["task-goals", "--model", str(base), "--data", str(out / "task"), "--play", str(out / "play"),
                 "--out", str(out / "task_model.onnx"), "--steps", "200", "--no-progress"])
    assert code == 0
    return spots
