"""Goal suites: reproducible bit for bit, checks that fail at the start and pass at the goal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim_worlds.goals import (
    FAMILIES,
    MAX_STEPS,
    PLACE_TOLERANCE,
    REACH_TOLERANCE,
    make_suite,
    run_goal_episode,
    world_for,
)


@pytest.fixture(scope="module")
def worlds():
    made = {"default": world_for("reach"), "grasp-heldout": world_for("grasp-heldout")}
    yield lambda family: made["grasp-heldout" if family == "grasp-heldout" else "default"]
    for w in made.values():
        w.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_suites_are_deterministic_bit_for_bit(family):
    a, b = make_suite(family, 2, seed=7), make_suite(family, 2, seed=7)
    other = make_suite(family, 2, seed=8)
    for x, y, z in zip(a, b, other, strict=True):
        assert np.array_equal(x.goal_image, y.goal_image) and x.goal_image.dtype == np.uint8
        assert json.dumps(x.start_state) == json.dumps(y.start_state)
        assert json.dumps(x.goal_state) == json.dumps(y.goal_state)
        assert x.targets == y.targets and x.seed == y.seed
        assert not np.array_equal(x.goal_image, z.goal_image)
        assert json.dumps(x.start_state) != json.dumps(z.start_state)
    assert not np.array_equal(a[0].goal_image, a[1].goal_image)


@pytest.mark.parametrize("family", FAMILIES)
def test_check_fails_at_the_start_and_succeeds_at_the_goal(family, worlds):
    world = worlds(family)
    for task in make_suite(family, 3, seed=1):
        assert task.family == family and task.max_steps == MAX_STEPS[family]
        world.set_state(task.start_state)
        assert not task.check(world)
        goal = world.set_state(task.goal_state)
        assert task.check(world)
        assert np.array_equal(goal.image, task.goal_image)  # the goal image is the goal state's picture


@pytest.mark.parametrize("family", ["grasp", "grasp-heldout"])
def test_grasp_goal_states_really_hold_the_object(family, worlds):
    """A built 'held' state is physically a grasp: stepping physics keeps the object held."""
    world = worlds(family)
    for task in make_suite(family, 2, seed=3):
        world.set_state(task.goal_state)
        for _ in range(10):
            world.act(np.array([0, 0, 0, 0, 1.0]))
        assert task.check(world)


def test_run_goal_episode_stops_at_success(worlds):
    world = worlds("reach")
    task = make_suite("reach", 1, seed=5)[0]
    target = np.array(task.targets["ee"])

    def oracle(image, goal, gripper):
        assert image.shape == goal.shape == (64, 64, 3)
        return np.r_[np.clip((target - world.ee_position()) / 0.02, -1, 1), 0.0, -1.0]

    result = run_goal_episode(world, task, oracle, record_frames=True)
    assert result.success and 0 < result.steps < task.max_steps
    assert len(result.frames) == result.steps + 1
    assert np.array_equal(result.final_image, result.frames[-1])
    assert result.start_distance > 0.08 and result.final_distance < REACH_TOLERANCE  # the builder's >= 8 cm, then reached

    idle = run_goal_episode(world, task, lambda *_: np.zeros(5), max_steps=4)
    assert not idle.success and idle.steps == 4 and idle.frames == []
    assert idle.final_distance == pytest.approx(idle.start_distance, abs=0.01)


def test_object_task_distance_is_measured_on_the_objects_not_the_arm(worlds):
    world = worlds("push")
    task = make_suite("push", 1, seed=2)[0]
    world.set_state(task.start_state)
    moved = task.distance(world)
    assert moved > PLACE_TOLERANCE  # the builder moves the cube 8-15 cm
    world.set_state(task.goal_state)
    assert task.distance(world) < 1e-3


def test_a_task_in_the_wrong_world_is_refused(worlds):
    task = make_suite("grasp-heldout", 1, seed=0)[0]
    with pytest.raises(ValueError, match="world_for"):
        run_goal_episode(worlds("reach"), task, lambda *_: np.zeros(5))
    with pytest.raises(ValueError, match="unknown goal family"):
        make_suite("juggle", 1, seed=0)
    big = make_suite("reach", 1, seed=0, image_size=128)[0]
    assert big.goal_image.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="128x128"):
        run_goal_episode(worlds("reach"), big, lambda *_: np.zeros(5))
    with pytest.raises(ValueError, match="5 finite"):
        run_goal_episode(worlds("reach"), make_suite("reach", 1, seed=0)[0], lambda *_: np.zeros(3))
