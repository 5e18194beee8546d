"""The torch-free runtime: loading refuses what does not fit; act is bounded and seeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from robot_app import policy as policy_module
from robot_app.policy import ModelCard, Policy, PolicyLoadError, sha256_file
from training.export import export_onnx
from training.networks import NetworkConfig, QNetwork

torch.set_num_threads(1)
CARD = {"algo": "am", "training_steps": 5, "data_manifest_hash": "feed"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("models")
    export_onnx(QNetwork().eval(), out / "good.onnx", 64, CARD)
    return out


@pytest.fixture
def copy_of(model_dir, tmp_path):
    """A fresh copy of the good model in tmp_path, safe to damage."""
    def make(name="m"):
        for ext in (".onnx", ".json"):
            (tmp_path / f"{name}{ext}").write_bytes((model_dir / f"good{ext}").read_bytes())
        card = json.loads((tmp_path / f"{name}.json").read_text())
        card["onnx_file"] = f"{name}.onnx"
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
        return tmp_path / f"{name}.onnx"
    return make


def _images(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8), rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_loads_by_onnx_path_card_path_and_name(model_dir, monkeypatch):
    a = Policy.load(model_dir / "good.onnx")
    b = Policy.load(model_dir / "good.json")
    monkeypatch.setattr(policy_module, "MODELS_DIRS", (model_dir,))
    c = Policy.load("good")
    assert a.onnx_path == b.onnx_path == c.onnx_path
    assert a.image_size == 64 and a.card.algo == "am" and a.card.training_steps == 5
    with pytest.raises(PolicyLoadError, match="no such model"):
        Policy.load("absent_model")


def test_act_is_bounded_seeded_and_the_split_graph_changes_nothing(model_dir):
    image, goal = _images()
    whole = Policy.load(model_dir / "good.onnx", seed=3, split=False)
    parted = Policy.load(model_dir / "good.onnx", seed=3)
    assert parted.split and not whole.split
    actions = []
    for _ in range(3):
        a_whole, q_whole = whole.act(image, goal, 0.25)
        a_split, q_split = parted.act(image, goal, 0.25)
        np.testing.assert_allclose(a_whole, a_split, atol=1e-6)
        assert abs(q_whole - q_split) < 1e-5
        assert a_split.shape == (5,) and a_split.dtype == np.float32
        assert np.all(np.abs(a_split) <= 1.0) and 0.0 < q_split < 1.0
        actions.append(a_split)
    assert not np.allclose(actions[0], actions[1])  # the generator advances between calls
    parted.reseed(3)
    np.testing.assert_array_equal(parted.act(image, goal, 0.25)[0], actions[0])
    # CEM's answer is the best Q among what it scored: no worse than a random action's.
    random_actions = np.random.default_rng(0).uniform(-1, 1, (64, 5)).astype(np.float32)
    assert q_split >= parted.q_values(image, goal, 0.25, random_actions).max() - 0.05


@pytest.mark.parametrize("split", [False, True])
def test_a_binary_gripper_card_opens_or_closes_and_moves_as_before(copy_of, split):
    """Same seed, same search: only the grip differs, rounded to the nearer of open and closed."""
    path = copy_of()
    continuous = Policy.load(path, seed=5, split=split)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    assert card["action_scaling"]["binary_gripper"] is False  # what export writes when not told
    card["action_scaling"]["binary_gripper"] = True
    card_path.write_text(json.dumps(card))
    binary = Policy.load(path, seed=5, split=split)
    assert binary.card.action_scaling.binary_gripper and binary.split == split
    image, goal = _images(1)
    grips = []
    for gripper in (0.0, 0.5, 1.0):
        a, q = continuous.act(image, goal, gripper)
        b, q_b = binary.act(image, goal, gripper)
        np.testing.assert_array_equal(b[:4], a[:4])
        assert b[4] == (1.0 if a[4] > 0 else -1.0) and q_b == q and b.dtype == np.float32
        grips.append(a[4])
    assert any(abs(g) < 0.999 for g in grips)  # the continuous search did give a half-way grip to round


def test_q_values_and_input_checks(model_dir):
    policy = Policy.load(model_dir / "good.onnx")
    image, goal = _images()
    q = policy.q_values(image, goal, 0.0, np.zeros((7, 5), np.float32))
    assert q.shape == (7,) and np.all((q > 0) & (q < 1))
    with pytest.raises(ValueError, match="expected 64x64"):
        policy.act(np.zeros((128, 128, 3), np.uint8), goal, 0.0)
    with pytest.raises(ValueError, match="goal image: expected dtype uint8"):
        policy.act(image, goal.astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="gripper"):
        policy.act(image, goal, float("nan"))
    with pytest.raises(ValueError, match=r"actions: expected shape \(N, 5\)"):
        policy.q_values(image, goal, 0.0, np.zeros((7, 4), np.float32))


def test_refuses_a_tampered_graph(copy_of):
    path = copy_of()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(PolicyLoadError, match="does not match its card"):
        Policy.load(path)


def test_refuses_a_task_model_whose_goal_image_was_replaced(copy_of):
    import cv2

    from robot_app.policy import sha256_file

    path = copy_of()
    goal = path.with_name("m_goal.png")
    image, other = _images(3)
    cv2.imwrite(str(goal), image)
    card = json.loads(path.with_suffix(".json").read_text())
    card.update(task="grasp-heldout", goal_image=goal.name, goal_image_sha256=sha256_file(goal))
    path.with_suffix(".json").write_text(json.dumps(card))
    np.testing.assert_array_equal(Policy.load(path).task_goal, image[:, :, ::-1])
    cv2.imwrite(str(goal), other)  # a valid picture of the right size, but not the task's
    with pytest.raises(PolicyLoadError, match="goal image was modified or replaced"):
        Policy.load(path)


@pytest.mark.parametrize("damage, message", [
    ("delete", "model card not found"),
    ("garbage", "not valid JSON"),
    ("drop_field", "missing field"),
    ("bad_cem", "cem settings are inconsistent"),
    ("bad_size", "image_size must be a positive integer"),
    ("bad_file", "onnx_file must be a file name"),
    ("bad_grip", "binary_gripper must be true or false"),
])
def test_refuses_a_missing_or_invalid_card(copy_of, damage, message):
    path = copy_of()
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    if damage == "delete":
        card_path.unlink()
    elif damage == "garbage":
        card_path.write_text("{not json")
    else:
        if damage == "drop_field":
            del card["data_manifest_hash"]
        elif damage == "bad_cem":
            card["cem"]["elites"] = card["cem"]["samples"] + 1
        elif damage == "bad_file":
            card["onnx_file"] = "../elsewhere/m.onnx"
        elif damage == "bad_grip":
            card["action_scaling"]["binary_gripper"] = "yes"
        else:
            card["image_size"] = "64"
        card_path.write_text(json.dumps(card))
    with pytest.raises(PolicyLoadError, match=message):
        Policy.load(path)


class OtherNames(nn.Module):
    """The same function under other input names: a graph that is not our contract."""

    def __init__(self):
        super().__init__()
        self.q = QNetwork()

    def forward(self, obs, target, grip, acts):
        return self.q(obs, target, grip, acts)


def test_refuses_a_graph_with_other_input_names(tmp_path):
    path = tmp_path / "renamed.onnx"
    export_onnx(QNetwork(), path, 64, CARD)
    import onnx

    model = onnx.load(str(path))
    renames = {"image": "obs", "goal": "target"}
    for i in model.graph.input:
        i.name = renames.get(i.name, i.name)
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
    onnx.save(model, str(path))
    _rehash_card(path)
    with pytest.raises(PolicyLoadError, match=r"graph inputs are \['actions', 'gripper', 'obs', 'target'\]"):
        Policy.load(path)


def test_refuses_an_image_size_that_differs_from_the_card(tmp_path):
    path = tmp_path / "small.onnx"
    export_onnx(QNetwork(NetworkConfig(image_size=128)), path, 128, CARD)
    card = ModelCard.read(path.with_suffix(".json"))
    assert card.image_size == 128
    card_d = card.to_dict()
    card_d["image_size"] = 64  # the card lies about the graph
    path.with_suffix(".json").write_text(json.dumps(card_d))
    with pytest.raises(PolicyLoadError, match=r"input 'image' has shape .*128.*card image_size 64"):
        Policy.load(path)


def _rehash_card(onnx_path):
    card_path = onnx_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["onnx_sha256"] = sha256_file(onnx_path)
    card_path.write_text(json.dumps(card))


def test_policy_runs_with_torch_and_onnx_unimportable(model_dir):
    """A robot computer has onnxruntime only: no torch, and maybe no onnx (then no split)."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["onnx"] = None
        import numpy as np
        from robot_app.policy import Policy
        p = Policy.load({str(model_dir / "good.onnx")!r}, seed=3)
        image = np.zeros((64, 64, 3), np.uint8)
        a, q = p.act(image, image, 0.5)
        assert not p.split and a.shape == (5,) and 0 < q < 1, (p.split, a, q)
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok", ",".join(f"{{x:.6f}}" for x in a))
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    # Same seed, same action as the split runtime in this (torch-importing) process.
    a_split, _ = Policy.load(model_dir / "good.onnx", seed=3).act(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), 0.5)
    np.testing.assert_allclose([float(x) for x in out.stdout.split()[1].split(",")], a_split, atol=1e-5)


def test_one_graph_cem_scores_like_the_split_head_and_refits_like_numpy(model_dir):
    """A QNetwork's whole action runs as one graph; its q of every sample it drew matches the
    split head's, and numpy CEM replayed on those q draws the same samples and picks its best."""
    from robot_app.cem import cem_maximize, draw_noise

    policy = Policy.load(model_dir / "good.onnx")
    fused, settings = policy._fused, policy.card.cem
    assert fused is not None
    rng = np.random.default_rng(2)
    n = settings.samples
    for seed, gripper in ((0, 0.0), (1, 0.6), (2, 1.0)):
        image, goal = _images(seed)
        uniform, normal = draw_noise(rng, 1, settings)
        best, best_q = fused.act(image, goal, gripper, uniform, normal)
        drawn = fused.samples_all.reshape(settings.iterations, 1, n, 5).copy()
        scores = fused.q_all.reshape(settings.iterations, 1, n).copy()
        grip = np.full((1, 1), gripper, np.float32)
        for k in range(settings.iterations):
            np.testing.assert_allclose(scores[k], policy._run_split(image[None], goal[None], grip, drawn[k]), rtol=0, atol=1e-6)
        replayed = []

        def replay(actions, replayed=replayed, scores=scores):
            replayed.append(actions.copy())
            return scores[len(replayed) - 1]

        want, want_q = cem_maximize(replay, settings, uniform, normal)
        np.testing.assert_allclose(np.stack(replayed), drawn, rtol=0, atol=1e-6)
        np.testing.assert_allclose(best, want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(best_q, want_q, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(np.clip(drawn, -1, 1), drawn)
    # act is this graph: the same noise gives the same action as the graph alone
    policy.reseed(9)
    image, goal = _images(3)
    action, q = policy.act(image, goal, 0.4)
    best, best_q = fused.act(image, goal, 0.4, *draw_noise(np.random.default_rng(9), 1, settings))
    np.testing.assert_array_equal(action, best[0])
    assert q == float(best_q[0])


class OtherHead(nn.Module):
    """The Q contract with a head that is not the QT-Opt MLP: no one-graph CEM, the split head runs as extracted."""

    def __init__(self):
        super().__init__()
        self.q = QNetwork(NetworkConfig(channels=(8, 8, 8, 8), feature_dim=16, head_hidden=16))

    def forward(self, image, goal, gripper, actions):
        features = self.q.encode(image, goal)
        return torch.sigmoid(self.q.head_logits(features, gripper, actions) + (actions * features[:, None, :5]).sum(-1))


def test_a_head_that_is_not_the_mlp_runs_bound_as_extracted(tmp_path):
    torch.manual_seed(3)
    path, _ = export_onnx(OtherHead().eval(), tmp_path / "other.onnx", 64, CARD)
    whole = Policy.load(path, seed=1, split=False)
    parted = Policy.load(path, seed=1)
    assert parted.split and parted._runner is not None and parted._fused is None  # CEM in numpy, bound split head
    image, goal = _images(5)
    for _ in range(2):
        a_whole, q_whole = whole.act(image, goal, 0.5)
        a_split, q_split = parted.act(image, goal, 0.5)
        np.testing.assert_allclose(a_split, a_whole, atol=1e-6)
        assert abs(q_split - q_whole) < 1e-5
