"""CEM in torch (training) against CEM in numpy (runtime): same maximum, same action from the same noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_app.cem import CEMSettings, cem_maximize, draw_noise
from training.cem import cem_maximize_torch, draw_noise_torch
from training.networks import NetworkConfig, QNetwork

torch.set_num_threads(1)


def bumpy(actions: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """A multimodal score with its global maximum at `peak` (B,5)."""
    d2 = ((actions - peak[:, None, :]) ** 2).sum(-1)
    return np.exp(-d2 / 0.3) + 0.3 * np.sin(4.0 * actions).sum(-1) * np.exp(-d2)


def test_cem_finds_the_maximum_of_a_known_function():
    rng = np.random.default_rng(0)
    peak = rng.uniform(-0.7, 0.7, size=(6, 5)).astype(np.float32)
    target = torch.from_numpy(peak)
    settings = CEMSettings(samples=256, elites=16, iterations=5, min_std=0.01)
    g = torch.Generator().manual_seed(1)
    best, score = cem_maximize_torch(lambda a: -((a - target[:, None]) ** 2).sum(-1), 6, settings, "cpu", generator=g)
    assert best.shape == (6, 5) and score.shape == (6,)
    np.testing.assert_allclose(best.numpy(), peak, atol=0.08)
    np.testing.assert_allclose(score.numpy(), -((best - target) ** 2).sum(-1).numpy(), rtol=1e-5)
    assert (best.abs() <= 1).all()


@pytest.mark.parametrize("settings", [CEMSettings(), CEMSettings(samples=32, elites=4, iterations=4, min_std=0.1)])
def test_torch_and_numpy_pick_the_same_action_from_the_same_noise(settings):
    rng = np.random.default_rng(3)
    batch = 5
    peak = rng.uniform(-0.8, 0.8, size=(batch, 5)).astype(np.float32)
    uniform, normal = draw_noise(rng, batch, settings)
    best_np, score_np = cem_maximize(lambda a: bumpy(a, peak), settings, uniform, normal)

    def torch_score(a: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(bumpy(a.numpy().astype(np.float32), peak).astype(np.float32))

    best_t, score_t = cem_maximize_torch(torch_score, batch, settings, "cpu", uniform=uniform, normal=normal)
    np.testing.assert_allclose(best_t.numpy(), best_np, atol=1e-6)
    np.testing.assert_allclose(score_t.numpy(), score_np, atol=1e-6)


def test_parity_with_a_q_network_as_the_score():
    torch.manual_seed(0)
    net = QNetwork(NetworkConfig(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32)).eval()
    rng = np.random.default_rng(5)
    batch, settings = 3, CEMSettings()
    image = torch.from_numpy(rng.integers(0, 255, size=(batch, 64, 64, 3), dtype=np.uint8))
    goal = torch.from_numpy(rng.integers(0, 255, size=(batch, 64, 64, 3), dtype=np.uint8))
    grip = torch.rand(batch, 1)
    with torch.no_grad():
        feats = net.encode(image, goal)

        def q(a):
            return torch.sigmoid(net.head_logits(feats, grip, torch.as_tensor(a)))

        uniform, normal = draw_noise(rng, batch, settings)
        best_np, score_np = cem_maximize(lambda a: q(a).numpy(), settings, uniform, normal)
        best_t, score_t = cem_maximize_torch(q, batch, settings, "cpu", uniform=uniform, normal=normal)
    np.testing.assert_allclose(best_t.numpy(), best_np, atol=1e-5)
    np.testing.assert_allclose(score_t.numpy(), score_np, atol=1e-6)


def test_noise_shapes_and_bad_noise_is_refused():
    settings = CEMSettings(samples=8, elites=2, iterations=3)
    uniform, normal = draw_noise_torch(4, settings, "cpu", torch.Generator().manual_seed(0))
    assert uniform.shape == (4, 8, 5) and normal.shape == (2, 4, 8, 5)
    assert uniform.min() >= -1 and uniform.max() < 1
    with pytest.raises(ValueError, match="CEM noise"):
        cem_maximize_torch(lambda a: a.sum(-1), 4, settings, "cpu", uniform=uniform[:2], normal=normal)
    with pytest.raises(ValueError, match="elites"):
        cem_maximize_torch(lambda a: a.sum(-1), 4, CEMSettings(samples=4, elites=8), "cpu")
