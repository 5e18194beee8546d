"""GCIVL: value targets in steps, the advantage weighting that picks the progressing action, the run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_app.cli import main as robot_app
from training.gcbc import GCBC, GCBCConfig
from training.gcivl import GCIVL, GCIVLConfig, expectile_loss
from training.networks import NetworkConfig
from training.runner import load_run, resolve_config, train
from training.sampler import make_synthetic_store

TINY = NetworkConfig(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32)
CPU = torch.device("cpu")

torch.set_num_threads(1)


def batch(n: int, steps: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (3 * n, 64, 64, 3), dtype=torch.uint8, generator=gen)
    steps_t = torch.tensor(steps)
    return {"image": images[:n], "next_image": images[n:2 * n], "goal": images[2 * n:], "gripper": torch.zeros(n, 1),
            "next_gripper": torch.zeros(n, 1), "action": torch.zeros(n, 5), "success": steps_t == 1,
            "chained": torch.zeros(n, dtype=torch.bool), "steps_to_goal": steps_t}


def test_targets_are_minus_one_on_reaching_and_the_logged_return_while_the_value_is_pessimistic():
    gamma = 0.99
    algo = GCIVL(GCIVLConfig(gamma=gamma, bootstrap=True), TINY, CPU, precision="fp32")
    b = batch(4, [1, 2, 5, 30])
    y = algo.value_target(b)
    logged = [-(1 - gamma**k) / (1 - gamma) for k in (2, 5, 30)]
    assert y[0].item() == pytest.approx(-1.0, rel=1e-5)  # the goal is the next frame: one step, terminal
    assert y[1:].tolist() == pytest.approx(logged, rel=1e-5)  # the fresh value says "never": the floor holds
    with torch.no_grad():
        next_value = algo.target(b["next_image"], b["goal"], b["next_gripper"]).min(dim=1).values
    assert next_value.max().item() < -90  # pessimistic start, -1 / (1 - gamma) = -100
    plain = GCIVL(GCIVLConfig(gamma=gamma, bootstrap=True, return_floor=False), TINY, CPU, precision="fp32")
    assert plain.value_target(b)[1:].tolist() == pytest.approx((-1 + gamma * next_value[1:]).tolist(), rel=1e-5)

    supervised = GCIVL(GCIVLConfig(gamma=gamma), TINY, CPU, precision="fp32")  # the default: no bootstrapping
    torch.nn.init.zeros_(supervised.target.head[-1].bias)  # an optimistic target: every goal about a step away
    assert supervised.value_target(b).tolist() == pytest.approx([-1.0, *logged], rel=1e-5)  # the logged distance, no TD


def test_progress_is_the_steps_gained_by_the_online_value():
    gamma = 0.99
    algo = GCIVL(GCIVLConfig(gamma=gamma), TINY, CPU, precision="fp32")
    b = batch(4, [1, 2, 5, 30])
    with torch.no_grad():
        v = algo.value(b["image"], b["goal"], b["gripper"])
        next_v = algo.value(b["next_image"], b["goal"], b["next_gripper"]).mean(dim=1)
    p = algo.progress(b, v)
    assert p[0].item() == pytest.approx(-v[0].mean().item(), rel=1e-5)  # reached: V(g, g) = 0
    assert p[1:].tolist() == pytest.approx((gamma * next_v[1:] - v[1:].mean(dim=1)).tolist(), rel=1e-5)
    torch.nn.init.zeros_(algo.target.head[-1].bias)  # the target net plays no part in P
    assert algo.progress(b, v).tolist() == pytest.approx(p.tolist(), rel=1e-6)


def test_expectile_loss_weighs_underestimates_by_the_expectile():
    diff = torch.tensor([2.0, -2.0])
    assert expectile_loss(diff, 0.9).tolist() == pytest.approx([0.9 * 4, 0.1 * 4])


def test_weights_clip_progress_and_drop_detours():
    algo = GCIVL(GCIVLConfig(alpha=10.0, max_weight=100.0), TINY, CPU, precision="fp32")
    w = algo.awr_weight(torch.tensor([1.0, 0.0, -1.0]), batch(3, [1, 2, 3]))
    assert w.tolist() == pytest.approx([100.0, 1.0, float(np.exp(-10.0))], rel=1e-5)
    with pytest.raises(ValueError, match="gcivl.expectile"):
        GCIVL(GCIVLConfig(expectile=1.0), TINY, CPU)


def test_gcivl_copies_the_action_that_reaches_the_goal_where_gcbc_averages_in_the_detours():
    """One state s and goal g: three logged moves (vx +1) reach g next step, five (vx -1) go to d, 9 steps from g.

    GCBC regresses the mixture's mean at s, -0.25. GCIVL's value learns V(s, g) near -2.3 and
    V(d, g) near -8.6 (eight more transitions from d are in the batch), so the +1 moves gained
    two steps and the detours lost six: it clones +1.
    """
    n = 16
    b = batch(n, [1] * 3 + [10] * 5 + [9] * 8)
    s, g, d = b["image"][0], b["goal"][0], b["image"][8]
    b["image"][:8], b["image"][8:], b["goal"][:] = s, d, g
    b["next_image"][:3], b["next_image"][3:8] = g, d  # reached; or the detour
    b["action"][:, 0] = torch.tensor([1.0] * 3 + [-1.0] * 5 + [0.0] * 8)
    b["action"][:, 4] = -1.0
    learned = {}
    for name, algo in {"gcbc": GCBC(GCBCConfig(lr=3e-3), TINY, CPU, precision="fp32"),
                       "gcivl": GCIVL(GCIVLConfig(lr=3e-3), TINY, CPU, precision="fp32")}.items():
        for _ in range(900):  # the value separates s and d after ~850 updates here
            algo.update(b)
        with torch.no_grad():
            learned[name] = algo.policy(s[None], g[None], b["gripper"][:1])[0, 0].item()
    assert learned["gcbc"] == pytest.approx(-0.25, abs=0.1)
    assert learned["gcivl"] > 0.8, learned
    with torch.no_grad():
        v_s, v_d = algo.value(torch.stack([s, d]), torch.stack([g, g]), b["gripper"][:2]).mean(dim=1).tolist()
    assert -3.0 < v_s < -1.5 and v_d < -7.0, (v_s, v_d)  # the 0.9-expectile of -1 and -9.6 is -2.3; d's return -8.6


def test_a_gcivl_run_trains_resumes_exactly_and_exports_a_cloned_policy(tmp_path):
    store = make_synthetic_store(tmp_path / "store", episodes=8, steps=12)
    common = {"algo": "gcivl", "debug": True, "data": str(store), "overrides": ["checkpoint_every=10", "log_every=5",
                                                                                "num_threads=1", "precision=fp32"]}
    train(resolve_config(steps=30, **common), tmp_path / "straight", progress=False)
    train(resolve_config(steps=20, **common), tmp_path / "split", progress=False)
    train(resolve_config(steps=30, **common), tmp_path / "split", resume=True, progress=False)
    a = torch.load(Path(tmp_path / "straight/checkpoints/step_00000030.pt"), weights_only=True)["algorithm"]
    b = torch.load(Path(tmp_path / "split/checkpoints/step_00000030.pt"), weights_only=True)["algorithm"]
    for net in ("policy", "value", "target"):
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name} differs after resume"
    header = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_value", "loss_bc", "value", "progress", "weight"} <= set(header)

    run = load_run(tmp_path / "straight")
    assert run.algo == "gcivl" and type(run.model).__name__ == "BCScorer"
    assert robot_app(["export", str(tmp_path / "straight"), "-o", str(tmp_path / "m.onnx")]) == 0
    from robot_app.policy import Policy

    policy = Policy.load(tmp_path / "m.onnx")
    assert policy.card.algo == "gcivl" and not policy.card.q_means_reached
    image = np.zeros((64, 64, 3), np.uint8)
    action, _ = policy.act(image, image, 0.0)
    assert action.shape == (5,) and np.abs(action).max() <= 1.0


def test_with_alpha_zero_the_policy_learns_exactly_as_gcbc():
    """exp(0 * P) = 1: every sample weighs the same and the policy's updates are GCBC's (same seed, same batches)."""
    b = batch(8, [1, 2, 3, 4, 5, 6, 7, 8])
    b["action"] = torch.rand(8, 5, generator=torch.Generator().manual_seed(1)) * 2 - 1
    bc = GCBC(GCBCConfig(), TINY, CPU, seed=3, precision="fp32")
    ivl = GCIVL(GCIVLConfig(alpha=0.0), TINY, CPU, seed=3, precision="fp32")
    for _ in range(5):
        assert bc.update(b)["loss_bc"].item() == pytest.approx(ivl.update(b)["loss_bc"].item(), rel=1e-5)
    for x, y in zip(bc.policy.parameters(), ivl.policy.parameters(), strict=True):
        assert torch.allclose(x, y, atol=1e-6)
