"""Random-shift augmentation (DrQ, Kostrikov et al. 2020): pad 4 by edge replication, crop back.

Small shifts stop the Q-network from keying on exact pixel positions of a few thousand
logged frames. Shifts are drawn from a torch generator (part of the checkpoint, so a
resumed run shifts exactly as the uninterrupted one).

A goal-conditioned sample is several images of one fixed camera (current, next, goal), and
what the task asks is where things are in the goal *relative to* where they are now. So
`random_shift_aligned` moves all images of one sample by the same offset (as OGBench's
pixel agents crop observations and goals together): shifted independently, a 4-pixel pad
moves a cube in the goal by up to 8 pixels against the current frame, about 10 cm here,
more than the 4 cm a placement is allowed. Reaching survives that (the arm's shape gives
its pose); moving objects should not.

Measured (session 5, BENCHMARKS.md, 3 seeds x 3000 updates each): aligned shifts did not
make any method move an object, and AM reached fewer reach goals with them (68% against
90%; GCBC 97% either way). So training shifts each image on its own by default
(`augment_aligned: false`); the aligned mode stays for the longer runs this machine could
not afford.

Two equal implementations: on CPU numpy's edge pad plus a strided view of all crops and
one fancy index (about 1 ms for 256 64x64 frames; torch's uint8 gathers took 20-45 ms on
the same machine); on an accelerator one gather with clamped row/column indices.
"""

from __future__ import annotations

import numpy as np
import torch


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B,H,W,C) -> (B,H,W,C), each image shifted independently by up to `pad` pixels."""
    return random_shift_aligned([images], pad, generator)[0]


def random_shift_aligned(images: list[torch.Tensor], pad: int = 4,
                         generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Several uint8 (B,H,W,C) batches; row i of every one is shifted by the same offset."""
    if pad <= 0 or not images:
        return list(images)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(0, 2 * pad + 1, (images[0].shape[0], 2), generator=generator, device=gen_device)
    return [_shift(batch, offsets, pad) for batch in images]


def _shift(images: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    if images.device.type == "cpu":
        return torch.from_numpy(shift_numpy(images.numpy(), offsets.cpu().numpy(), pad))
    return shift_torch(images, offsets.to(images.device), pad)


def shift_numpy(images: np.ndarray, offsets: np.ndarray, pad: int) -> np.ndarray:
    """Crop image i of the edge-padded batch at (offsets[i, 0], offsets[i, 1]), each in [0, 2 pad]."""
    b, h, w, c = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    s0, s1, s2, s3 = padded.strides
    crops = np.lib.stride_tricks.as_strided(padded, (b, 2 * pad + 1, 2 * pad + 1, h, w, c), (s0, s1, s2, s1, s2, s3))
    return crops[np.arange(b), offsets[:, 0], offsets[:, 1]]


def shift_torch(images: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """The same crop as shift_numpy, as one gather with clamped indices (for GPU tensors)."""
    b, h, w, _ = images.shape
    rows = (torch.arange(h, device=images.device)[None, :] + offsets[:, :1] - pad).clamp_(0, h - 1)
    cols = (torch.arange(w, device=images.device)[None, :] + offsets[:, 1:] - pad).clamp_(0, w - 1)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def hue_basis(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """(3, 3, 3): the identity, the projection on grey and the cross product with the grey axis.

    Made once where a CUDA graph will use it: building a tensor from Python numbers is a
    host-to-device copy, which a graph cannot capture.
    """
    eye = torch.eye(3, dtype=dtype)
    grey = torch.full((3, 3), 1.0 / 3.0, dtype=dtype)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=dtype) / 3.0**0.5
    return torch.stack([eye, grey, cross]).to(device)


def hue_rotations(angles: torch.Tensor, basis: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) radians -> (B, 3, 3): rotations of RGB space about the grey axis (Rodrigues).

    Grey (the table, the arm, the background) stays exactly where it is; a saturated colour
    turns round the colour wheel at constant brightness and saturation: red by 60 degrees
    comes out yellow. `basis`: hue_basis() on the angles' device (made here when None).
    """
    eye, grey, cross = hue_basis(angles.dtype, angles.device) if basis is None else basis
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    return cos * eye + (1.0 - cos) * grey + sin * cross


def random_hue_aligned(images: list[torch.Tensor], fraction: float,
                       generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Several uint8 (B,H,W,3) batches; row i of every one is turned by the same random hue.

    Why: play data shows only red, green and blue cubes, so a trunk learns "red thing" rather
    than "thing", and meets the yellow held-out object as something it never saw (the shipped
    GCBC grasps cubes in 50 of 100 tasks and the held-out object in 2). Turning every colour
    of a sample by one angle, drawn uniformly in +-fraction x 180 degrees, keeps what the task
    asks (the object in the goal is the one of the same colour now) and shows objects of every
    hue. One angle per sample, for its current, next and goal image alike: turned apart, the
    goal's object would have another colour than the one to fetch.

    Measured (sessions 15-16, BENCHMARKS.md, GCBC seeds 0/1/2, 12000 updates, with and without
    full turns): fine-tuned on 50 held-out attempts, the turned pretraining grasps the held-out
    object in 136/900 tasks against 28/900, and each turned seed beats each plain one. But it
    grasps the cubes less often (41/300 against 66/300). Turning only the images GCBC reads,
    they still cost about a fifth of its updates/s on one CPU core (4.1 against 5.2,
    bench/bench_augment.py). So turns stay off by default for training.
    """
    if fraction <= 0 or not images:
        return list(images)
    unit = draw_hue_units(images[0].shape[0], generator)
    rotations = hue_rotations(hue_angles(unit, fraction)).to(images[0].device)
    return turn_hues(images, rotations)


def draw_hue_units(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) uniform [0, 1) float32, one per sample: the only random draw of a hue turn
    (training.device_step draws it the same way, so both feeds turn the same batches alike)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(batch, generator=generator, device=gen_device)


def hue_angles(unit: torch.Tensor, fraction: float) -> torch.Tensor:
    """Uniform draws in [0, 1) -> angles in +-fraction x 180 degrees."""
    return (2.0 * unit - 1.0) * fraction * torch.pi


def turn_hues(images: list[torch.Tensor], rotations: torch.Tensor) -> list[torch.Tensor]:
    """Every uint8 (B,H,W,3) batch of `images`, row i turned by rotations[i]."""
    return [_rotate_colours(batch, rotations) for batch in images]


def _rotate_colours(images: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Three broadcast multiply-adds: a batched 3x3 matmul (bmm, einsum) is 30% slower on CPU."""
    pixels, columns = images.float(), rotations[:, None, None]
    turned = pixels[..., 0:1] * columns[..., 0]
    turned.addcmul_(pixels[..., 1:2], columns[..., 1]).addcmul_(pixels[..., 2:3], columns[..., 2])
    return turned.round_().clamp_(0, 255).to(torch.uint8)
