"""Scripted experts solve the goal suites; expert agreement scores a policy's actions along their path."""

from __future__ import annotations

import numpy as np
import pytest

from robot_app.expert_agreement import MOVING, direction_cosine, expert_agreement, markdown_agreement
from sim_worlds.experts import CLOSED, OPEN, solve
from sim_worlds.goals import FAMILIES, make_suite, world_for

PHASES = {
    "reach": ["move"],
    "push": ["approach", "lower", "push"],
    "grasp": ["approach", "descend", "close", "lift"],
    "grasp-heldout": ["approach", "descend", "close", "lift"],
    "rearrange": ["approach", "descend", "close", "lift", "carry", "lower", "release", "retreat"],
    "chain": ["approach", "descend", "close", "lift", "carry", "lower", "release"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_expert_solves_each_family_within_its_budget(family):
    world = world_for(family)
    try:
        for task in make_suite(family, 2, seed=3):
            trace = solve(world, task)
            assert trace.success, f"{family}#{task.index}: the data's own skills failed the task"
            assert task.check(world)  # the world is left in the solved state
            assert len(trace.observations) == len(trace.actions) + 1 == len(trace.phases) + 1
            assert 0 < len(trace.actions) <= task.max_steps
            # Stopped at the first success: the state before the last action had not succeeded.
            assert list(dict.fromkeys(trace.phases)) == PHASES[family][: len(dict.fromkeys(trace.phases))]
            assert set(np.unique(trace.actions[:, 4])) <= {OPEN, CLOSED}
    finally:
        world.close()


def test_the_expert_is_noise_free_and_stops_at_success():
    world = world_for("grasp")
    try:
        task = make_suite("grasp", 1, seed=5)[0]
        trace = solve(world, task)
        # Noise-free proportional control: the descent is straight down, bar the last
        # millimetres of the approach's xy error (play's noise alone has std 0.2 per axis).
        descend = trace.actions[np.array(trace.phases) == "descend"]
        assert len(descend) and np.all(descend[:, 2] < 0) and np.abs(descend[:, :2]).max() < 0.1
        # No random draw reaches the actions: another seed, in a fresh world, gives the same ones.
        again = world_for("grasp")
        try:
            assert np.allclose(solve(again, task, seed=1).actions, trace.actions, atol=1e-4)
        finally:
            again.close()
        # The last action made the check pass; one fewer would not have.
        world.set_state(task.start_state)
        for action in trace.actions[:-1]:
            world.act(action)
            assert not task.check(world)
    finally:
        world.close()


def test_direction_cosine():
    assert direction_cosine(np.array([0, 0, -1.0]), np.array([0, 0, -0.5])) == pytest.approx(1.0)
    assert direction_cosine(np.array([0, 0, 1.0]), np.array([0, 0, -0.5])) == pytest.approx(-1.0)
    assert direction_cosine(np.array([1.0, 0, 0]), np.array([0, 0, -0.5])) == pytest.approx(0.0)
    assert direction_cosine(np.zeros(3), np.array([0, 0, -0.5])) == 0.0  # standing still is not agreeing


def _descend_and_close(image, goal, gripper):
    return np.array([0.0, 0.0, -1.0, 0.0, CLOSED], np.float32)


def _copy_the_gripper(image, goal, state):
    return np.array([0.0, 0.0, 0.0, 0.0, CLOSED if state.gripper > 0.2 else OPEN], np.float32)


def test_agreement_scores_directions_and_gripper_switches():
    down = expert_agreement(_descend_and_close, ["grasp"], 2, seed=0)["families"]["grasp"]
    assert down["expert_success"] == 1.0 and down["n"] == 2
    phases = down["phases"]
    assert phases["descend"]["direction"] > 0.95  # the expert goes straight down too
    assert phases["lift"]["direction"] < -0.5  # while it lifts, "down" is the wrong way
    assert phases["close"]["direction"] is None  # the expert holds still while closing
    assert phases["close"]["gripper"] == 1.0 and phases["approach"]["gripper"] == 0.0
    assert down["gripper_switches"] == {"made": 0, "n": 2}  # closed all along: no close is on time

    # A copycat agrees with the gripper on most steps and still never closes on the cube.
    copy = expert_agreement(_copy_the_gripper, ["grasp"], 2, seed=0)["families"]["grasp"]
    assert copy["gripper_switches"] == {"made": 0, "n": 2}
    assert copy["phases"]["approach"]["gripper"] == 1.0 and copy["phases"]["lift"]["gripper"] == 1.0
    assert all(p["direction"] in (None, 0.0) for p in copy["phases"].values())  # it never moves
    table = markdown_agreement({"families": {"grasp": copy}})
    assert "| grasp | 100% | 0/2 |" in table and "descend +0.00 / 100%" in table


class ReplayExpert:
    """A policy that replays the expert's own actions, step by step (reseeded at every task)."""

    def __init__(self, family: str, episodes: int, seed: int):
        world = world_for(family)
        try:
            self.traces = [solve(world, task).actions for task in make_suite(family, episodes, seed)]
        finally:
            world.close()
        self.task = -1

    def reseed(self, seed: int) -> None:
        self.task, self.step = self.task + 1, 0

    def act(self, image, goal, gripper):
        self.step += 1
        return self.traces[self.task][self.step - 1]


def test_the_expert_itself_agrees_everywhere_and_makes_every_switch_on_time():
    replay = expert_agreement(ReplayExpert("chain", 2, seed=0), ["chain"], 2, seed=0)["families"]["chain"]
    assert replay["gripper_switches"] == {"made": 4, "n": 4}  # close on the cube, open over the tray, twice
    for phase, p in replay["phases"].items():
        assert p["gripper"] == 1.0, phase
        assert p["direction"] is None or p["direction"] > 0.99, phase


def test_agreement_rejects_no_episodes():
    with pytest.raises(ValueError, match="episodes"):
        expert_agreement(_copy_the_gripper, ["reach"], 0, seed=0)


def test_moving_threshold_leaves_holds_out():
    assert 0.0 < MOVING < 1.0


def test_bench_expert_tabulates_and_draws_a_run_against_step(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_expert

    def judged(policy, step):
        from robot_app.evaluation import evaluate_suite

        result = evaluate_suite(policy, ["grasp"], 1, 0, progress=False, max_steps=2)
        result["expert_agreement"] = expert_agreement(policy, ["grasp"], 1, 0)
        result["training_step"] = step
        return result

    results = {"copy@100": judged(_copy_the_gripper, 100), "copy@200": judged(_descend_and_close, 200)}
    table = bench_expert.markdown(results)
    rows = [line for line in table.splitlines() if line.startswith("| copy@")]
    assert [r.split(" | ")[0] for r in rows] == ["| copy@100", "| copy@200"]  # in step order
    assert "| 0/1 | 0/1 |" in rows[0]  # no grasp solved, no switch on time
    assert "+1.00" in rows[1] or "+0.9" in rows[1]  # descending the whole way agrees with the descent
    assert "Expert success on the same tasks (1 a family): grasp 100%" in table
    picture = bench_expert.plot(results, tmp_path / "agreement.png")
    assert picture is not None and picture.stat().st_size > 5000
    assert bench_expert.plot({"random": results["copy@100"]}, tmp_path / "none.png") is None  # no NAME@STEP series


def test_close_decision_picture_shows_the_grasp_expert_closing(tmp_path):
    """The docs picture of the close step: drawn from the expert's own trace, one row per task."""
    from sim_worlds.pictures import close_decision

    task = make_suite("grasp", 1, 0)[0]
    world = world_for("grasp")
    try:
        trace = solve(world, task)
    finally:
        world.close()
    close = trace.phases.index("close")
    # The step the picture centres on: fingers still open, command closes, one step later they are closing.
    assert trace.observations[close].gripper < 0.2 < trace.observations[close + 1].gripper
    assert trace.actions[close - 1][4] == OPEN and trace.actions[close][4] == CLOSED
    path = close_decision(tmp_path, 64, tasks=1)
    assert path.name == "close_decision.png" and path.stat().st_size > 10_000
