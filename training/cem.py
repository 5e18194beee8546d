"""CEM in torch: the training-side twin of robot_app/cem.py, step for step.

Same settings (robot_app.cem.CEMSettings), same use of the noise: iteration 0 scores
`uniform` (B,N,5) in [-1, 1]; iteration k scores clip(mean + std * normal[k-1]); elites
by a stable descending sort; std is the population std floored at min_std; the answer is
the best sample seen over all iterations. Given the same noise the numpy runtime and this
function pick the same action, so a policy evaluated during training behaves like the
exported one. Noise is drawn here (from `generator`) only when not passed in.

`score_fn(actions (B,N,5)) -> (B,N)` is expected to close over a state encoding computed
once, so each iteration costs only the action head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from robot_app.cem import CEMSettings
from robot_app.spec import ACTION_DIM


def draw_noise_torch(batch: int, settings: CEMSettings, device, generator: torch.Generator | None = None):
    """The noise one call consumes: uniform (B,N,5) in [-1, 1), normal (I-1,B,N,5)."""
    shape = (batch, settings.samples, ACTION_DIM)
    uniform = torch.rand(shape, generator=generator, device=device) * 2.0 - 1.0
    normal = torch.randn((settings.iterations - 1, *shape), generator=generator, device=device)
    return uniform, normal


@torch.no_grad()
def cem_maximize_torch(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    batch: int,
    settings: CEMSettings,
    device,
    generator: torch.Generator | None = None,
    uniform=None,
    normal=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise score_fn over actions; returns (best actions (B,5), best scores (B,)) as float32."""
    if settings.elites > settings.samples or settings.elites < 1 or settings.iterations < 1:
        raise ValueError(f"CEM settings {settings}: need 1 <= elites <= samples and iterations >= 1")
    if uniform is None or normal is None:
        drawn_uniform, drawn_normal = draw_noise_torch(batch, settings, device, generator)
        uniform = drawn_uniform if uniform is None else uniform
        normal = drawn_normal if normal is None else normal
    uniform = torch.as_tensor(uniform, dtype=torch.float32, device=device)
    normal = torch.as_tensor(normal, dtype=torch.float32, device=device)
    expected = (batch, settings.samples, ACTION_DIM)
    if tuple(uniform.shape) != expected or tuple(normal.shape) != (settings.iterations - 1, *expected):
        raise ValueError(f"CEM noise: uniform {tuple(uniform.shape)}, normal {tuple(normal.shape)}; expected {expected}")
    rows = torch.arange(batch, device=device)
    samples = uniform
    mean = std = torch.zeros((batch, ACTION_DIM), dtype=torch.float32, device=device)  # set by iteration 0
    best_action = torch.zeros((batch, ACTION_DIM), dtype=torch.float32, device=device)
    best_score = torch.full((batch,), float("-inf"), dtype=torch.float32, device=device)
    for k in range(settings.iterations):
        if k > 0:
            samples = torch.clamp(mean[:, None, :] + std[:, None, :] * normal[k - 1], -1.0, 1.0)
        scores = score_fn(samples).float()
        top = torch.argmax(scores, dim=1)
        top_score = scores[rows, top]
        improved = top_score > best_score
        best_score = torch.where(improved, top_score, best_score)
        best_action = torch.where(improved[:, None], samples[rows, top], best_action)
        elite_idx = torch.argsort(-scores, dim=1, stable=True)[:, : settings.elites]
        elites = torch.gather(samples, 1, elite_idx[:, :, None].expand(-1, -1, ACTION_DIM))
        mean = elites.mean(dim=1)
        std = torch.clamp(elites.std(dim=1, correction=0), min=settings.min_std)
    return best_action, best_score
