"""Fine-tuning on a labelled task: rewards from labels, the task goal image, CDS sharing, the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_app.store import Store, write_store

torch.set_num_threads(1)


def synthetic_episodes(lengths, labels, size=64, seed=0):
    """Episodes of random frames whose last frame encodes the label (bright if success)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i, (length, label) in enumerate(zip(lengths, labels, strict=True)):
        images = rng.integers(0, 100, (length, size, size, 3), dtype=np.uint8)
        if label:
            images[-1] = 200 + i  # successful final frames: near each other
        episodes.append({
            "images": images,
            "actions": rng.uniform(-1, 1, (length, 5)).astype(np.float32),
            "gripper": rng.uniform(0, 1, length).astype(np.float32),
            "timestamps": np.arange(length) * 0.1,
            "success": label,
            "task": None if label is None else "grasp-heldout",
            "source": f"ep{i}",
        })
    return episodes


@pytest.fixture
def task_store(tmp_path):
    return Store.open(write_store(tmp_path / "task", synthetic_episodes([5, 4, 6, 3], [True, False, True, False])))


def test_labels_to_rewards_only_last_transition_of_success(task_store):
    from training.finetune import task_transitions

    tt = task_transitions(task_store)
    bounds = task_store.episode_bounds()
    assert len(tt) == sum(e - s - 1 for s, e in bounds)  # every transition t < last, no more
    expected_ones = {bounds[0, 1] - 2, bounds[2, 1] - 2}  # last transition of episodes 0 and 2
    assert set(tt.t[tt.reward == 1.0].tolist()) == expected_ones
    assert set(tt.t[tt.terminal].tolist()) == {e - 2 for _, e in bounds}  # every episode ends terminal
    assert tt.reward.sum() == 2 and set(np.unique(tt.reward).tolist()) == {0.0, 1.0}


def test_unlabelled_task_data_is_refused_by_name(tmp_path):
    from training.finetune import task_transitions

    store = Store.open(write_store(tmp_path / "s", synthetic_episodes([4, 4], [True, None])))
    with pytest.raises(ValueError, match=r"no success label \(episodes 1\)"):
        task_transitions(store)
    none = Store.open(write_store(tmp_path / "f", synthetic_episodes([4, 4], [False, False])))
    with pytest.raises(ValueError, match="no episode is labelled a success"):
        task_transitions(none)


def test_goal_image_is_a_successful_final_frame(task_store):
    from training.finetune import task_goal_image

    goal, episode = task_goal_image(task_store)
    assert episode in (0, 2)
    end = task_store.episode_bounds()[episode, 1] - 1
    np.testing.assert_array_equal(goal, task_store.images[end])
    assert goal.dtype == np.uint8 and goal.shape == (64, 64, 3)
    again, _ = task_goal_image(task_store)
    np.testing.assert_array_equal(goal, again)


def test_share_mask_picks_exactly_the_transitions_above_the_percentile():
    from training.finetune import share_mask

    q_task = torch.arange(101, dtype=torch.float32) / 100.0  # percentile p is exactly p / 100
    q_unl = torch.tensor([0.05, 0.89, 0.9, 0.91, 0.5, 0.99])
    assert share_mask(q_unl, q_task, 90.0).tolist() == [False, False, True, True, False, True]
    assert share_mask(q_unl, q_task, 50.0).tolist() == [False, True, True, True, True, True]
    assert share_mask(q_unl, q_task, 0.0).all()
    assert share_mask(q_unl, q_task, 100.0).tolist() == [False] * 6
    with pytest.raises(ValueError, match="share_percentile"):
        share_mask(q_unl, q_task, 120.0)
