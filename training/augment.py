"""Random-shift augmentation (DrQ, Kostrikov et al. 2020): pad 4 by edge replication, crop back.

Small shifts stop the Q-network from keying on exact pixel positions of a few thousand
logged frames. The crop is one gather with clamped row/column indices (identical to
replicate-padding then cropping), on uint8 NHWC on the training device, so it costs about
a copy of the batch.
"""

from __future__ import annotations

import torch


def random_shift(images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B,H,W,C) -> (B,H,W,C), each image shifted independently by up to `pad` pixels."""
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=gen_device).to(images.device) - pad
    rows = (torch.arange(h, device=images.device)[None, :] + shifts[:, :1]).clamp_(0, h - 1)
    cols = (torch.arange(w, device=images.device)[None, :] + shifts[:, 1:]).clamp_(0, w - 1)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]
