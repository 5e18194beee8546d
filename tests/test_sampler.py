"""Goal sampling from a real (tiny) store: hindsight relabeling, chaining, determinism, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_app.store import Store
from training.augment import (
    hue_rotations,
    random_hue_aligned,
    random_shift,
    random_shift_aligned,
    shift_numpy,
    shift_torch,
)
from training.runner import to_torch
from training.sampler import GoalSampler, MixedSampler, SamplerConfig, make_synthetic_store

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store.open(make_synthetic_store(tmp_path_factory.mktemp("store") / "s", episodes=8, steps=12))


def test_hindsight_goals_are_later_frames_of_the_same_episode_and_t_plus_1_is_success(store):
    idx = GoalSampler(store, SamplerConfig(p_chain=0.0), seed=0).sample_indices(5000)
    t, goal, success = idx["t"], idx["goal"], idx["success"]
    assert not idx["chained"].any()
    assert (store.episode[t] == store.episode[t + 1]).all(), "t must have a successor in its episode"
    assert (store.episode[goal] == store.episode[t]).all()
    assert (goal > t).all()
    np.testing.assert_array_equal(success, goal == t + 1)
    np.testing.assert_array_equal(idx["steps"], goal - t)  # the logged path to a hindsight goal
    # p_next=0.2 plus geometric offsets of 1 plus uniform draws landing on t+1
    assert 0.25 < success.mean() < 0.5
    assert (goal - t > 1).mean() > 0.4, "most hindsight goals must bootstrap"


def test_chained_goals_come_from_other_episodes_and_are_never_successes(store):
    idx = GoalSampler(store, SamplerConfig(p_chain=0.5), seed=1).sample_indices(4000)
    chained = idx["chained"]
    assert 0.45 < chained.mean() < 0.55
    assert (store.episode[idx["goal"][chained]] != store.episode[idx["t"][chained]]).all()
    assert not idx["success"][chained].any()
    assert (idx["steps"][chained] == 0).all()  # no logged path reaches a chained goal
    # every other episode is used as a source of chained goals
    assert len(np.unique(store.episode[idx["goal"][chained]])) == store.num_episodes


def test_chaining_needs_two_episodes(tmp_path):
    one = Store.open(make_synthetic_store(tmp_path / "one", episodes=1, steps=6))
    with pytest.raises(ValueError, match="at least 2 episodes"):
        GoalSampler(one, SamplerConfig(p_chain=0.25))
    assert len(GoalSampler(one, SamplerConfig(p_chain=0.0))) == 5


def test_bad_probabilities_are_refused(store):
    with pytest.raises(ValueError, match="p_next"):
        GoalSampler(store, SamplerConfig(p_next=0.8, p_geometric=0.5))
    with pytest.raises(ValueError, match="p_chain"):
        GoalSampler(store, SamplerConfig(p_chain=1.5))


def test_batch_holds_the_store_rows_of_its_indices(store):
    b = GoalSampler(store, SamplerConfig(), seed=2).sample(32)
    np.testing.assert_array_equal(b.image, store.images[b.t])
    np.testing.assert_array_equal(b.next_image, store.images[b.t + 1])
    np.testing.assert_array_equal(b.goal, store.images[b.goal_index])
    np.testing.assert_array_equal(b.action, store.actions[b.t])
    np.testing.assert_array_equal(b.next_gripper[:, 0], store.gripper[b.t + 1])
    assert b.image.dtype == np.uint8 and b.gripper.shape == (32, 1)


def test_same_seed_or_restored_state_gives_the_same_batches(store):
    a, b = GoalSampler(store, SamplerConfig(), seed=7), GoalSampler(store, SamplerConfig(), seed=7)
    a.sample_indices(10)
    state = a.get_state()
    first = a.sample_indices(64)
    b.set_state(state)
    again = b.sample_indices(64)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def test_random_shift_is_replicate_pad_then_crop():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8))
    out = random_shift(images, pad=4, generator=torch.Generator().manual_seed(3))
    shifts = torch.randint(0, 9, (6, 2), generator=torch.Generator().manual_seed(3)).numpy()
    padded = np.pad(images.numpy(), ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    for i, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(out[i].numpy(), padded[i, dy : dy + 16, dx : dx + 16])
    assert out.dtype == torch.uint8 and out.is_contiguous()
    assert torch.equal(random_shift(images, pad=0), images)
    # the accelerator implementation crops the same pixels
    np.testing.assert_array_equal(shift_torch(images, torch.from_numpy(shifts), 4).numpy(),
                                  shift_numpy(images.numpy(), shifts, 4))


def test_current_next_and_goal_images_are_each_augmented(store):
    batch = GoalSampler(store, SamplerConfig(), seed=4).sample(16)
    plain = to_torch(batch, torch.device("cpu"))
    shifted = to_torch(batch, torch.device("cpu"), pad=4, generator=torch.Generator().manual_seed(0))
    for name in ("image", "next_image", "goal"):
        assert not torch.equal(plain[name], shifted[name]), name
    assert torch.equal(plain["action"], shifted["action"])


def test_a_samples_images_share_one_shift_so_the_goal_stays_registered_to_the_frame(store):
    """Where the cube is in the goal against where it is now is the task; the shift must keep it."""
    batch = GoalSampler(store, SamplerConfig(), seed=4).sample(16)
    batch.goal = batch.image.copy()
    batch.next_image = batch.image.copy()
    aligned = to_torch(batch, torch.device("cpu"), pad=4, generator=torch.Generator().manual_seed(0), aligned=True)
    assert not torch.equal(aligned["image"], torch.from_numpy(batch.image))
    assert torch.equal(aligned["goal"], aligned["image"]) and torch.equal(aligned["next_image"], aligned["image"])
    # the default: each image its own shift, so the goal drifts against the frame
    independent = to_torch(batch, torch.device("cpu"), pad=4, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(independent["goal"], independent["image"])


def test_aligned_shift_crops_each_batch_like_a_single_shift_with_the_same_offsets():
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 255, size=(5, 12, 12, 3), dtype=np.uint8))
    others = torch.flip(images, dims=(1,)).contiguous()
    first, second = random_shift_aligned([images, others], pad=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, random_shift(images, pad=3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(second, random_shift(others, pad=3, generator=torch.Generator().manual_seed(7)))
    assert random_shift_aligned([images], pad=0)[0] is images


def test_hue_rotation_keeps_grey_turns_red_to_yellow_and_is_undone_by_the_opposite_angle():
    angles = torch.tensor([torch.pi / 3, 1.1, -2.5], dtype=torch.float64)
    turns = hue_rotations(angles)
    grey = torch.tensor([90.0, 90.0, 90.0], dtype=torch.float64)
    for turn in turns:
        torch.testing.assert_close(turn @ grey, grey)  # table, arm and background keep their colour
        torch.testing.assert_close(turn @ turn.T, torch.eye(3, dtype=torch.float64))  # brightness and saturation kept
    red, green, blue = (turns[0] @ torch.tensor([255.0, 0.0, 0.0], dtype=torch.float64)).tolist()
    assert red == pytest.approx(green) and red > 150 and blue < 0  # clamped to 0: yellow
    torch.testing.assert_close(hue_rotations(-angles) @ turns, torch.eye(3, dtype=torch.float64).expand(3, 3, 3))


def test_a_samples_images_share_one_hue_and_samples_differ(store):
    """The object in the goal must keep the colour of the object to fetch; across samples, every hue."""
    batch = GoalSampler(store, SamplerConfig(), seed=4).sample(16)
    batch.goal = batch.image.copy()
    batch.next_image = batch.image.copy()
    plain = to_torch(batch, torch.device("cpu"))
    turned = to_torch(batch, torch.device("cpu"), generator=torch.Generator().manual_seed(0), hue=1.0)
    assert torch.equal(turned["goal"], turned["image"]) and torch.equal(turned["next_image"], turned["image"])
    changed = (turned["image"].int() - plain["image"].int()).abs().flatten(1).amax(1)
    assert (changed > 20).float().mean() > 0.5  # most samples visibly turned
    first, second = random_hue_aligned([plain["image"], plain["image"]], 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and first.dtype == torch.uint8
    # one angle per sample, drawn uniformly: the mean colour of the same frame differs across samples
    same = torch.from_numpy(np.repeat(batch.image[:1], 64, axis=0))
    means = random_hue_aligned([same], 1.0, torch.Generator().manual_seed(2))[0].float().mean(dim=(1, 2))
    assert means.std(dim=0).max() > 2.0


def test_no_hue_draws_nothing_so_runs_without_it_sample_as_before(store):
    batch = GoalSampler(store, SamplerConfig(), seed=4).sample(8)
    with_off, before = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    off = to_torch(batch, torch.device("cpu"), pad=4, generator=with_off, hue=0.0)
    assert torch.equal(off["image"], to_torch(batch, torch.device("cpu"), pad=4, generator=before)["image"])
    assert torch.equal(with_off.get_state(), before.get_state())
    assert random_hue_aligned([off["image"]], 0.0)[0] is off["image"]


def test_hue_turns_only_the_images_the_algorithm_reads_and_draws_the_same(store):
    """GCBC never reads the next frame: it is shifted as before, not turned, and nothing else changes."""
    from training.am import ActionableModels
    from training.gcbc import GCBC

    assert set(GCBC.image_inputs) == {"image", "goal"} and "next_image" in ActionableModels.image_inputs
    batch = GoalSampler(store, SamplerConfig(), seed=4).sample(16)
    every, read, shifted = (torch.Generator().manual_seed(3) for _ in range(3))
    all_turned = to_torch(batch, torch.device("cpu"), pad=4, generator=every, hue=1.0)
    gcbc_turned = to_torch(batch, torch.device("cpu"), pad=4, generator=read, hue=1.0, hue_keys=GCBC.image_inputs)
    only_shifted = to_torch(batch, torch.device("cpu"), pad=4, generator=shifted)
    for key in GCBC.image_inputs:
        assert torch.equal(gcbc_turned[key], all_turned[key])
    assert torch.equal(gcbc_turned["next_image"], only_shifted["next_image"])
    assert not torch.equal(all_turned["next_image"], only_shifted["next_image"])
    assert torch.equal(every.get_state(), read.get_state())


def test_pre_grasp_transitions_are_those_before_the_hand_takes_or_lets_go_and_are_drawn_more_often(tmp_path):
    from robot_app.store import write_store
    from training.sampler import pre_grasp_rows

    # episode A takes a cube at frame 5 and lets it go at frame 9; episode B starts holding
    # (no change at its first frame) and lets go at frame 3, then closes on nothing (0.95).
    grippers = [np.r_[[0.0] * 5, [0.35] * 4, [0.0] * 3], np.r_[[0.35] * 3, [0.95] * 9]]
    write_store(tmp_path / "s", [{"images": np.zeros((12, 64, 64, 3), np.uint8), "actions": np.zeros((12, 5), np.float32),
                                  "gripper": g.astype(np.float32), "timestamps": np.arange(12) * 0.1} for g in grippers])
    store = Store.open(tmp_path / "s")
    plain = GoalSampler(store, SamplerConfig(p_chain=0.0), seed=3)
    near = pre_grasp_rows(store, plain.t_index, plain.t_last, steps=2)
    assert plain.t_index[near].tolist() == [3, 4, 7, 8, 12 + 1, 12 + 2]

    weighted = GoalSampler(store, SamplerConfig(p_chain=0.0, pre_grasp_steps=2, pre_grasp_weight=5.0), seed=3)
    assert weighted.pre_grasp_fraction == pytest.approx(6 / 22)
    drawn = np.isin(weighted.sample_indices(20000)["t"], plain.t_index[near]).mean()
    assert drawn == pytest.approx(30 / 46, abs=0.02)  # 6 rows at weight 5 against 16 at weight 1
    # weight 1 is the uniform sampler, draw for draw
    same = GoalSampler(store, SamplerConfig(p_chain=0.0, pre_grasp_steps=2, pre_grasp_weight=1.0), seed=3)
    np.testing.assert_array_equal(same.sample_indices(64)["t"], plain.sample_indices(64)["t"])
    with pytest.raises(ValueError, match="pre_grasp"):
        GoalSampler(store, SamplerConfig(pre_grasp_steps=2, pre_grasp_weight=0.0))


# ---------------------------------------------------------------- sharing a second store


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Store:
    return Store.open(make_synthetic_store(tmp_path_factory.mktemp("other") / "s", episodes=5, steps=9, seed=3))


def test_shared_rows_are_the_shared_stores_own_relabelled_transitions(store, other):
    mixed = MixedSampler(GoalSampler(store, SamplerConfig(), seed=0), GoalSampler(other, SamplerConfig(p_chain=0.0), seed=1), 0.25)
    b = mixed.sample(32)
    assert mixed.split(32) == (24, 8)
    own, shared = slice(0, 24), slice(24, 32)
    np.testing.assert_array_equal(b.image[own], store.images[b.t[own]])
    offset = len(store)
    t, goal = b.t[shared] - offset, b.goal_index[shared] - offset
    assert (t >= 0).all() and (t < len(other)).all()
    np.testing.assert_array_equal(b.image[shared], other.images[t])
    np.testing.assert_array_equal(b.next_image[shared], other.images[t + 1])
    np.testing.assert_array_equal(b.goal[shared], other.images[goal])
    np.testing.assert_array_equal(b.action[shared], other.actions[t])
    episode = np.asarray(other.episode)
    assert (goal > t).all() and (episode[goal] == episode[t]).all()  # hindsight goals within the shared episode


def test_a_mixed_sampler_restored_from_its_state_draws_the_same_batches(store, other):
    def make():
        return MixedSampler(GoalSampler(store, SamplerConfig(), seed=4), GoalSampler(other, SamplerConfig(), seed=5), 0.5)

    a, b = make(), make()
    a.sample(16)
    b.set_state(a.get_state())
    np.testing.assert_array_equal(a.sample(16).goal, b.sample(16).goal)
    with pytest.raises(ValueError, match="without shared data"):
        b.set_state(GoalSampler(store, SamplerConfig()).get_state())


def test_sharing_refuses_other_image_sizes_other_action_scaling_and_a_share_of_nothing_or_everything(store, tmp_path):
    main = GoalSampler(store, SamplerConfig())
    small = Store.open(make_synthetic_store(tmp_path / "small", episodes=3, steps=6, image_size=32))
    with pytest.raises(ValueError, match="image_size 32"):
        MixedSampler(main, GoalSampler(small, SamplerConfig()), 0.5)
    faster = Store.open(make_synthetic_store(tmp_path / "fast", episodes=3, steps=6,
                                             manifest_extra={"action_scaling": {"max_linear_speed": 0.4}}))
    with pytest.raises(ValueError, match="action scaling"):
        MixedSampler(main, GoalSampler(faster, SamplerConfig()), 0.5)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="share_fraction"):
            MixedSampler(main, GoalSampler(store, SamplerConfig()), fraction)
