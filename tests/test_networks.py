"""The Q-network's trunks: both score actions per state; a keypoint says where its feature fires."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.networks import NetworkConfig, QNetwork, SpatialSoftmax

torch.set_num_threads(1)


def test_spatial_softmax_returns_the_position_of_a_peak():
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 0, 3, 12] = 50.0  # channel 0 fires at row 3, column 12
    maps[0, 1, 15, 0] = 50.0  # channel 1 at the bottom-left corner
    x0, y0, x1, y1 = SpatialSoftmax(16, 16)(maps)[0].tolist()
    step = 2.0 / 15.0
    assert (x0, y0) == pytest.approx((-1.0 + 12 * step, -1.0 + 3 * step), abs=1e-3)
    assert (x1, y1) == pytest.approx((-1.0, 1.0), abs=1e-3)
    flat = SpatialSoftmax(16, 16)(torch.zeros(1, 1, 16, 16))[0]
    assert flat.abs().max() < 1e-6  # no peak: the centre


@pytest.mark.parametrize("encoder", ["flat", "keypoints"])
def test_both_trunks_encode_once_and_score_any_number_of_actions(encoder):
    q = QNetwork(NetworkConfig(encoder=encoder, channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32))
    image = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    features = q.encode(image, image)
    assert features.shape == (3, 32)
    logits = q.head_logits(features, torch.zeros(3, 1), torch.rand(3, 7, 5) * 2 - 1)
    assert logits.shape == (3, 7) and logits.std() > 0


def test_unknown_encoder_is_refused_by_name():
    with pytest.raises(ValueError, match="network.encoder='resnet'"):
        QNetwork(NetworkConfig(encoder="resnet"))


def test_gripper_input_off_ignores_the_gripper_but_keeps_the_onnx_contract(tmp_path):
    import onnx

    from robot_app.policy import Policy
    from robot_app.spec import ActionScaling
    from training.export import export_onnx
    from training.gcbc import BCPolicy, BCScorer

    small = dict(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32)
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    actions = torch.rand(2, 4, 5) * 2 - 1
    open_, closed = torch.zeros(2, 1), torch.ones(2, 1)
    torch.manual_seed(0)
    for config, ignored in ((NetworkConfig(**small), False), (NetworkConfig(gripper_input=False, **small), True)):
        q = QNetwork(config)
        bc = BCPolicy(config)
        same_q = torch.equal(q(image, image, open_, actions), q(image, image, closed, actions))
        same_bc = torch.equal(bc(image, image, open_), bc(image, image, closed))
        assert same_q == ignored and same_bc == ignored
    # Exported without the gripper's influence, the graph still takes it: one runtime for every model.
    onnx_path, _ = export_onnx(BCScorer(bc, 0.25).eval(), tmp_path / "nogrip.onnx", 64,
                               {"algo": "gcbc", "action_scaling": ActionScaling()})
    assert [i.name for i in onnx.load(str(onnx_path)).graph.input] == ["image", "goal", "gripper", "actions"]
    policy = Policy.load(onnx_path)
    frame = image[0].numpy()
    picks = []
    for gripper in (0.0, 1.0):
        policy.reseed(0)  # the same CEM noise for both
        picks.append(policy(frame, frame, gripper))
    assert np.array_equal(*picks)


def test_height_input_widens_the_proprio_and_hiding_the_gripper_keeps_the_height():
    from training.gcbc import BCPolicy

    small = dict(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32)
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    actions = torch.rand(2, 4, 5) * 2 - 1
    torch.manual_seed(0)
    low_open, low_closed, high_open = (torch.tensor([[g, z]] * 2) for g, z in ((0.0, 0.1), (1.0, 0.1), (0.0, 0.9)))
    for config in (NetworkConfig(height_input=True, **small), NetworkConfig(height_input=True, gripper_input=False, **small)):
        q, bc = QNetwork(config), BCPolicy(config)
        assert q.action_embed[0].in_features == 5 + 2 and config.proprio_dim == 2
        assert not torch.equal(q(image, image, low_open, actions), q(image, image, high_open, actions))  # the height counts
        assert not torch.equal(bc(image, image, low_open), bc(image, image, high_open))
        gripper_ignored = torch.equal(q(image, image, low_open, actions), q(image, image, low_closed, actions))
        assert gripper_ignored == (not config.gripper_input)
