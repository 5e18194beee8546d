"""`robot-app finetune --mode goal`: continue a goal-conditioned policy on labelled attempts, then
make it a task model that proposes its goal (training/goal_task.py), from the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from task_model_fixtures import play_episode, task_episodes

from robot_app.store import Store, write_store

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Labelled attempts at a yellow blob, a play store of held, lifted frames, and a tiny GCBC run
    pretrained on the play store (debug sizes) to continue from."""
    from training import runner

    root = tmp_path_factory.mktemp("goal_task")
    rng = np.random.default_rng(3)
    task = write_store(root / "task", task_episodes(rng.uniform(12, 52, (12, 2)).round(), rng))
    episodes, _ = play_episode(rng)
    play = write_store(root / "play", episodes)
    for algo in ("gcbc", "am"):
        config = runner.resolve_config(algo=algo, debug=True, steps=4, data=str(play),
                                       overrides=["num_threads=1", "checkpoint_every=4", "precision=fp32", "sampler.p_chain=0"])
        runner.train(config, root / f"pre_{algo}", progress=False)
    return {"root": root, "task": task, "play": play, "gcbc": root / "pre_gcbc", "am": root / "pre_am"}


def _finetune(stores, out, *extra):
    from robot_app.cli import main

    return main(["finetune", "--mode", "goal", "--data", str(stores["task"]), "--out", str(out),
                 "--debug", "--no-progress", *extra])


def test_goal_mode_continues_the_policy_with_the_recipe_and_writes_a_task_model_that_proposes(stores, capsys):
    from robot_app.policy import Policy
    from training.config import load_yaml
    from training.runner import load_run

    out = stores["root"] / "ft"
    assert _finetune(stores, out, "--from", str(stores["gcbc"]), "--play", str(stores["play"]),
                     "--task", "grasp-blob", "--steps", "6") == 0
    printed = capsys.readouterr()
    assert "task model" in printed.out and "continuing" in printed.err

    # step 1: a `train` continuation from the source, with the pre-grasp recipe
    config = load_yaml(out / "config.yaml")
    assert config["algo"] == "gcbc" and config["init_from"] == str(stores["gcbc"]) and config["steps"] == 6
    assert config["gcbc"]["switch_weight"] == 3 and config["sampler"]["p_next"] == 0 and config["sampler"]["p_geometric"] == 0
    assert (config["sampler"]["pre_grasp_steps"], config["sampler"]["pre_grasp_weight"]) == (10, 3)
    assert load_run(out).step == 6
    source = torch.load(next((stores["gcbc"] / "checkpoints").glob("*.pt")), weights_only=True)["algorithm"]
    tuned = torch.load(next((out / "checkpoints").glob("*6.pt")), weights_only=True)["algorithm"]
    assert source.keys() == tuned.keys()  # the same network, continued: shapes equal, weights moved
    moved = [not torch.equal(source["policy"][k], tuned["policy"][k]) for k in source["policy"]]
    assert any(moved)

    # step 2: the goal model stays goal-conditioned; the task model proposes its goal from a first frame
    goal_model = Policy.load(out / "goal_model.onnx")
    assert not goal_model.card.task and goal_model.card.training_steps == 6
    task_model = Policy.load(out / "task_model.onnx")
    assert task_model.card.task == "grasp-blob" and task_model.card.goal_proposer
    assert task_model.card.goal_proposer["play_data"] == str(stores["play"])
    first_frame = np.asarray(Store.open(stores["task"]).images[0])
    proposal = task_model.goal_proposer.propose(first_frame)
    assert proposal.goal.shape == first_frame.shape and proposal.goal.dtype == np.uint8
    action, _ = task_model.act(first_frame, proposal.goals, 0.0)  # acts toward what it proposed
    assert action.shape == (5,) and np.all(np.abs(action) <= 1.0)


def test_the_default_length_follows_the_number_of_attempts_and_steps_overrides_it(stores):
    from training.goal_task import GoalTaskConfig, default_updates, train_config

    config = GoalTaskConfig(pretrained=str(stores["gcbc"]), data=str(stores["task"]))
    assert [default_updates(n) for n in (10, 25, 35, 36, 50, 100)] == [500, 500, 500, 3000, 3000, 3000]
    assert train_config(config, attempts=25).steps == 500 and train_config(config, attempts=50).steps == 3000
    from dataclasses import replace

    assert train_config(replace(config, steps=700), attempts=25).steps == 700
    user = train_config(replace(config, overrides=("gcbc.switch_weight=1", "seed=4")), attempts=25)
    assert user.gcbc.switch_weight == 1 and user.seed == 4  # the user's --set wins over the recipe


def test_goal_mode_refuses_what_it_cannot_use_before_training(stores, capsys):
    root = stores["root"]
    assert _finetune(stores, root / "no_from", "--play", str(stores["play"])) == 2
    assert "--from RUN" in capsys.readouterr().err
    assert _finetune(stores, root / "no_play", "--from", str(stores["gcbc"])) == 2
    assert "pass --play STORE" in capsys.readouterr().err
    assert _finetune(stores, root / "am_from", "--from", str(stores["am"]), "--play", str(stores["play"])) == 2
    assert "a 'am' run; mode=goal continues a goal-conditioned GCBC policy" in capsys.readouterr().err
    assert not (root / "am_from" / "checkpoints").exists()  # refused before anything was trained
    assert _finetune(stores, root / "bad_play", "--from", str(stores["gcbc"]), "--play", str(root / "nowhere")) == 2
    assert "not a dataset store" in capsys.readouterr().err
    assert not (root / "bad_play" / "checkpoints").exists()  # refused before the continuation, not after it
    no_heights = write_store(root / "no_heights", [{k: v for k, v in e.items() if k != "ee_position"}
                                                   for e in task_episodes([(20, 30), (40, 30)], np.random.default_rng(0))])
    from robot_app.cli import main

    assert main(["finetune", "--mode", "goal", "--from", str(stores["gcbc"]), "--data", str(no_heights), "--play",
                 str(stores["play"]), "--out", str(root / "no_heights_run"), "--debug", "--no-progress"]) == 2
    assert "no ee_position" in capsys.readouterr().err and not (root / "no_heights_run" / "checkpoints").exists()
    assert _finetune(stores, root / "cfg", "--from", str(stores["gcbc"]), "--config", "x.yaml") == 2
    assert "--config are for the other modes" in capsys.readouterr().err
    assert _finetune(stores, root / "bad_name", "--from", str(stores["gcbc"]), "--play", str(stores["play"]),
                     "--export", "model.bin") == 2
    assert "must end in .onnx" in capsys.readouterr().err

    other = main(["finetune", "--mode", "bc", "--from", str(stores["gcbc"]), "--data", str(stores["task"]),
                  "--out", str(root / "bc"), "--play", str(stores["play"]), "--debug", "--no-progress"])
    assert other == 2 and "--play go with --mode goal" in capsys.readouterr().err


def test_the_readme_fine_tuning_path_on_real_sim_attempts_from_a_shipped_model(tmp_path, capsys):
    """collect -> dataset build -> finetune --mode goal (from the shipped varied pretraining, the
    goal bank from the attempts' own frames) -> eval, on real pybullet attempts: every part the
    user's path touches (a real store's gripper heights, the shipped model's import, the localiser
    on rendered frames, the task model in the runtime and the suite), at a few updates."""
    import json

    from robot_app.cli import main

    bags, store, run = tmp_path / "bags", tmp_path / "store", tmp_path / "run"
    assert main(["collect", "--task", "grasp-heldout", "--episodes", "8", "--seed", "100", "--out", str(bags),
                 "--no-progress"]) == 0
    assert main(["dataset", "build", str(bags), "-o", str(store)]) == 0
    assert main(["finetune", "--mode", "goal", "--from", "models/varied_pretrained.onnx", "--data", str(store),
                 "--play", str(store), "--out", str(run), "--steps", "10", "--debug", "--no-progress"]) == 0
    assert "on 8 attempts for 10 updates" in capsys.readouterr().err
    result = tmp_path / "eval.json"
    assert main(["eval", "--policy", str(run / "task_model.onnx"), "--suite", "grasp-heldout", "--episodes", "2",
                 "--json", str(result), "--no-progress"]) == 0
    judged = json.loads(result.read_text())
    assert judged["families"]["grasp-heldout"]["n"] == 2 and judged["training_step"] == 10  # the continuation, judged
    from robot_app.policy import Policy

    card = Policy.load(run / "task_model.onnx").card
    assert card.source.startswith(f"{run.resolve()}@") and "(8 labelled episodes)" in card.source
    from training.config import load_yaml

    assert load_yaml(run / "config.yaml")["init_from"] == "models/varied_pretrained.onnx"
    assert card.goal_proposer["bank_pictures"] > 0 and card.goal_proposer["play_data"] == str(store)
