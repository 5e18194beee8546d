"""PandaWorld on real pybullet: grasping, end-effector control, exact state, camera framing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim_worlds.panda_world import (
    OBJECT_KINDS,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    YAW_LIMIT,
    PandaWorld,
    square_yaw,
)


@pytest.fixture(scope="module")
def world():
    w = PandaWorld(image_size=64, seed=0)
    yield w
    w.close()


def _drive(world, target, grip, yaw=None, steps=30, tol=0.004):
    """Proportional control of the grasp target, as a scripted collector does it."""
    for _ in range(steps):
        error = np.asarray(target) - world.ee_position()
        yaw_error = 0.0 if yaw is None else yaw - world.ee_yaw()
        if np.linalg.norm(error) < tol and abs(yaw_error) < 0.02:
            return
        world.act(np.r_[np.clip(error / 0.02, -1, 1), np.clip(yaw_error / 0.1, -1, 1), grip])


def _colour_pixels(image, rgba, tol=60):
    """Pixels whose colour is within tol (per channel) of an object's base colour, any shade."""
    ref = np.array(rgba[:3]) * 255
    img = image.astype(np.float64)
    # Shaded faces are darker: compare chromaticity-like ratios plus a brightness floor.
    scale = img.sum(-1, keepdims=True) / max(ref.sum(), 1)
    return int(
        np.sum(np.all(np.abs(img - ref * scale) < tol, axis=-1) & (img.max(-1) > 40) & (scale[..., 0] > 0.2))
    )


def test_scripted_grasp_lifts_a_cube_and_holds_it(world):
    _grasp_lift_hold(world)


def test_scripted_grasp_also_holds_with_240_hz_physics():
    with PandaWorld(image_size=64, physics_hz=240.0) as fine:
        _grasp_lift_hold(fine)


def _grasp_lift_hold(world):
    world.reset(3)
    name = "red_cube"
    cube = world.object_positions()[name]
    yaw = square_yaw(world.object_yaw(name))
    _drive(world, cube + (0, 0, 0.1), -1.0, yaw)
    _drive(world, cube + (0, 0, -0.004), -1.0, yaw, steps=12)
    for _ in range(4):
        world.act(np.array([0, 0, 0, 0, 1.0]))
    _drive(world, cube + (0, 0, 0.17), 1.0)
    for _ in range(10):  # hold still for a second: a grip that slips drops it here
        world.act(np.array([0, 0, 0, 0, 1.0]))
    lifted = world.object_positions()[name][2] - world.rest_height(name)
    assert lifted > 0.10, f"cube lifted only {lifted:.3f} m"
    assert world.is_held(name)
    assert world.observe().gripper > 0.2  # fingers stopped by the cube, not closed on air


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_act_moves_the_end_effector_in_the_commanded_direction(world, axis, sign):
    world.reset(1)
    world.place_arm((0.52, 0.0, 0.14), 0.0, 0.0)
    before = world.ee_position()
    action = np.zeros(5)
    action[axis] = 0.5 * sign  # 1 cm a step
    for _ in range(5):
        world.act(action)
    moved = world.ee_position() - before
    assert sign * moved[axis] == pytest.approx(0.05, abs=0.012)
    assert np.linalg.norm(np.delete(moved, axis)) < 0.01


def test_act_clamps_to_the_workspace(world):
    world.reset(2)
    for action, bound, axis in (
        ([1, 1, 1, 0, -1], WORKSPACE_HIGH, slice(None)),
        ([-1, -1, -1, 0, -1], WORKSPACE_LOW, slice(None)),
    ):
        for _ in range(35):  # 70 cm of commands, far past every wall
            obs = world.act(np.array(action, dtype=float))
        assert np.allclose(obs.ee_position[axis], bound[axis], atol=0.015), (obs.ee_position, bound)


def test_wz_turns_the_gripper_and_is_clamped(world):
    world.reset(4)
    world.place_arm((0.52, 0.0, 0.15), 0.0, 0.0)
    for _ in range(5):
        world.act(np.array([0, 0, 0, 1.0, -1]))
    assert world.ee_yaw() == pytest.approx(0.5, abs=0.05)
    for _ in range(30):
        world.act(np.array([0, 0, 0, 1.0, -1]))
    assert world.ee_yaw() == pytest.approx(YAW_LIMIT, abs=0.05)


def test_state_round_trips_exactly(world):
    world.reset(5)
    rng = np.random.default_rng(0)
    for _ in range(8):
        world.act(rng.uniform(-1, 1, 5))
    state = json.loads(json.dumps(world.get_state()))
    image = world.render()
    for _ in range(8):
        world.act(rng.uniform(-1, 1, 5))
    assert not np.array_equal(world.render(), image)
    restored = world.set_state(state)
    assert np.array_equal(restored.image, image)
    again = world.get_state()
    for key in ("joint_positions", "joint_velocities", "target", "yaw", "grip", "arm_targets", "time"):
        assert again[key] == state[key], key
    for name, obj in state["objects"].items():
        assert np.allclose(again["objects"][name]["position"], obj["position"], atol=1e-12, rtol=0)


def test_reset_is_a_pure_function_of_the_seed(world):
    first = world.reset(11).image
    for _ in range(5):
        world.act(np.array([1.0, 0, -1, 0, 1]))
    fresh = PandaWorld(image_size=64, seed=99)
    try:
        assert np.array_equal(fresh.reset(11).image, first)
        world.reset(11)
        assert fresh.get_state() == world.get_state()
    finally:
        fresh.close()
    assert not np.array_equal(world.reset(12).image, first)


def test_an_episode_is_a_function_of_its_seed_whatever_the_world_ran_before():
    """Two worlds run the same grasp attempts in opposite orders. Bullet's unsorted contact
    pairs made an episode depend on the episodes before it (`collect --workers 2` gave 25
    successes of 50 where one worker gave 24); each must now come out the same either way."""
    from sim_worlds.collectors import collect_episode

    seeds = [3, 4, 5, 6, 7, 8]
    forward, backward = PandaWorld(image_size=64, heldout=True), PandaWorld(image_size=64, heldout=True)
    try:
        first = {s: collect_episode(forward, s, "grasp-heldout") for s in seeds}
        second = {s: collect_episode(backward, s, "grasp-heldout") for s in reversed(seeds)}
    finally:
        forward.close()
        backward.close()
    for s in seeds:
        assert first[s].success == second[s].success, s
        np.testing.assert_array_equal(first[s].actions, second[s].actions, err_msg=f"seed {s}")
        for a, b in zip(first[s].observations, second[s].observations, strict=True):
            np.testing.assert_array_equal(a.image, b.image, err_msg=f"seed {s}")


def test_every_object_and_the_gripper_are_in_view(world):
    for seed in range(3):
        image = world.reset(seed).image
        for name in world.object_names:
            assert _colour_pixels(image, OBJECT_KINDS[name].rgba) >= 6, (
                f"{name} hardly visible at seed {seed}"
            )
    # The gripper is seen at the far corners of the workspace: moving it changes the picture there.
    for corner in ((0.35, -0.22, 0.25), (0.70, 0.22, 0.02), (0.35, 0.22, 0.02), (0.70, -0.22, 0.25)):
        world.reset(0)
        with_arm = world.place_arm(corner, 0.0, 0.0).image
        without = world.place_arm((0.52, 0.0, 0.22), 0.0, 0.0).image
        assert np.abs(with_arm.astype(int) - without).sum(-1).astype(bool).sum() > 30, corner


def test_fast_visuals_look_like_the_stock_panda():
    fast, stock = PandaWorld(64, seed=0), PandaWorld(64, seed=0, visuals="stock")
    try:
        a, b = fast.reset(7).image.astype(int), stock.reset(7).image.astype(int)
        assert np.mean(np.abs(a - b)) < 8.0  # nearly the same picture (the arm's outline differs a little)
    finally:
        fast.close()
        stock.close()


def test_observation_and_camera(world):
    obs = world.reset(0)
    assert obs.image.shape == (64, 64, 3) and obs.image.dtype == np.uint8
    assert obs.gripper == pytest.approx(0.0, abs=0.02)  # opens at reset
    assert len(obs.joint_names) == len(obs.joint_positions) == 9
    k = world.camera_intrinsics
    assert (k.width, k.height, k.cx, k.cy) == (64, 64, 32, 32) and k.fx > 0


def test_bad_input_is_refused_clearly(world):
    with pytest.raises(ValueError, match="image_size"):
        PandaWorld(image_size=100)
    with pytest.raises(ValueError, match="unknown object"):
        PandaWorld(objects=("purple_cube",))
    with pytest.raises(ValueError, match="5 finite"):
        world.act(np.zeros(4))
    with pytest.raises(ValueError, match="5 finite"):
        world.act(np.array([np.nan, 0, 0, 0, 0]))
    state = world.get_state()
    del state["objects"]["red_cube"]
    with pytest.raises(ValueError, match="red_cube"):
        world.set_state(state)


def test_creating_a_world_prints_nothing_on_stdout(capfd):
    """pybullet's C code says "argv[0]=" on fd 1 at every connect; PandaWorld keeps it out of
    a command's output, and what Python printed before and after still comes through."""
    import ctypes

    print("before", flush=True)
    PandaWorld(image_size=64, seed=0).close()
    print("after", flush=True)
    ctypes.CDLL(None).fflush(None)  # C buffers fd 1 when it is a file: what it holds counts too
    assert capfd.readouterr().out == "before\nafter\n"
