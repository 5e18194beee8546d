"""Record what the shipped models answer to fixed inputs: tests/artifacts/shipped_outputs.npz.

    .venv/bin/python tests/make_shipped_outputs.py

Run it when a change to the outputs is meant (a newly shipped model, a deliberate change to
the runtime's CEM or the goal proposer), and say why in the commit: test_shipped_models.py
compares every model in models/ against this file, so an accidental change to what a shipped
model does (the noise stream, the action scaling, the graph split, preprocessing) fails there.
The inputs are stored too (two grasp-heldout scenes, suite seed 0, and their goal images), so
the comparison does not depend on the simulator's rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "tests" / "artifacts" / "shipped_outputs.npz"
ACTS = 3  # consecutive CEM actions from one seed: the noise stream, not only its first draw
SCENES = 2


def shipped_models() -> list[Path]:
    return sorted(p for p in (ROOT / "models").glob("*.onnx") if p.with_suffix(".json").is_file())


def fixed_inputs() -> dict[str, np.ndarray]:
    from sim_worlds import goals

    tasks = goals.make_suite("grasp-heldout", SCENES, 0, image_size=64)
    world = goals.world_for("grasp-heldout", 64)
    try:
        images = np.stack([world.set_state(t.start_state).image for t in tasks])
    finally:
        world.close()
    rng = np.random.default_rng(0)
    return {
        "images": images,
        "goals": np.stack([t.goal_image for t in tasks]),
        "grippers": np.array([0.0, 1.0], np.float32),
        "heights": np.array([0.25, 0.04], np.float32),
        "actions": rng.uniform(-1, 1, (8, 5)).astype(np.float32),
    }


def model_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Q of fixed actions, then ACTS seeded CEM actions per scene (toward the model's own
    proposal for a task model), and a task model's proposal itself."""
    from robot_app.policy import Policy
    from robot_app.spec import RobotState

    policy = Policy.load(path, seed=0)
    out: dict[str, list] = {"q": [], "act": [], "act_q": []}
    for i, (image, suite_goal) in enumerate(zip(inputs["images"], inputs["goals"], strict=True)):
        state = RobotState(float(inputs["grippers"][i]), float(inputs["heights"][i]))
        if not policy.card.height_input:
            state = state.gripper
        goal = suite_goal
        if policy.goal_proposer is not None:
            proposal = policy.goal_proposer.propose(image)
            out.setdefault("proposed_pixel", []).append(proposal.pixel)
            out.setdefault("proposed_bank", []).append(proposal.bank_indices)
            goal = proposal.goals if len(proposal.goals) > 1 else proposal.goal
        elif policy.task_goal is not None:
            goal = policy.task_goal
        out["q"].append(policy.q_values(image, goal if goal.ndim == 3 else goal[0], state, inputs["actions"]))
        policy.reseed(i)
        for _ in range(ACTS):
            action, q = policy.act(image, goal, state)
            out["act"].append(action)
            out["act_q"].append(q)
    return {k: np.asarray(v) for k, v in out.items()} | {"onnx_sha256": np.array(policy.card.onnx_sha256)}


def main() -> int:
    inputs = fixed_inputs()
    arrays = {f"input/{k}": v for k, v in inputs.items()}
    for path in shipped_models():
        for key, value in model_outputs(path, inputs).items():
            arrays[f"{path.stem}/{key}"] = value
        print(f"recorded {path.relative_to(ROOT)}")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ARTIFACT, **arrays)
    print(f"wrote {ARTIFACT.relative_to(ROOT)} ({ARTIFACT.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
