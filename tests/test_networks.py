"""The Q-network's trunks: both score actions per state; a keypoint says where its feature fires."""

from __future__ import annotations

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
