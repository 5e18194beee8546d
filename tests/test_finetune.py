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
    # the return floor's path length: k steps to the rewarded end of a success, 0 in a failure
    episode = np.asarray(task_store.episode[tt.t])
    for e, (_start, end) in enumerate(bounds):
        rows = episode == e
        expected = (end - 1 - tt.t[rows]) if e in (0, 2) else np.zeros(rows.sum())
        np.testing.assert_array_equal(tt.steps_to_success[rows], expected)
    assert (tt.steps_to_success[tt.reward == 1.0] == 1).all()


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


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A tiny unlabelled pretraining store, a labelled task store and a pretrained AM run (debug sizes)."""
    from training import runner

    root = tmp_path_factory.mktemp("finetune")
    play = write_store(root / "play", synthetic_episodes([8] * 4, [None] * 4, seed=1))
    task = write_store(root / "task", synthetic_episodes([6, 7, 6, 5], [True, False, True, False], seed=2))
    config = runner.resolve_config(algo="am", debug=True, steps=2, data=str(play),
                                   overrides=["num_threads=1", "checkpoint_every=2", "precision=fp32"])
    runner.train(config, root / "pretrained", progress=False)
    return {"root": root, "play": play, "task": task, "pretrained": root / "pretrained"}


@pytest.fixture(scope="module")
def gcbc_run(stores):
    """A tiny goal-conditioned BC run on the same play store (debug sizes)."""
    from training import runner

    config = runner.resolve_config(algo="gcbc", debug=True, steps=2, data=str(stores["play"]),
                                   overrides=["num_threads=1", "checkpoint_every=2", "precision=fp32"])
    runner.train(config, stores["root"] / "gcbc", progress=False)
    return stores["root"] / "gcbc"


def test_shared_data_takes_reward_zero_and_terminals_without_success_target_zero(stores):
    from training import runner
    from training.finetune import TaskBatches, TaskQ, _to_torch, task_goal_image, task_transitions
    from training.sampler import GoalSampler, SamplerConfig

    task_store, play_store = Store.open(stores["task"]), Store.open(stores["play"])
    goal, _ = task_goal_image(task_store)
    batches = TaskBatches(task_transitions(task_store), goal, GoalSampler(play_store, SamplerConfig(p_chain=0.0)), seed=0)
    batch, terminal = batches.share_candidates(32)
    assert not batch.success.any() and not terminal.any()  # reward 0, never terminal
    assert not batch.steps_to_goal.any()  # and no return floor: nothing shows them reaching the task
    assert (batch.goal == goal).all()  # shared transitions are judged against the task goal

    c = runner.resolve_config(algo="am", debug=True)
    algo = TaskQ(c.am, network=c.network, device=torch.device("cpu"), precision="fp32")
    b = _to_torch(batches.task_batch(64), torch.device("cpu"), c, None, algo)
    b["success"][:4], b["terminal"][:4] = torch.tensor([True, False, False, True]), torch.tensor([True, True, False, True])
    y = algo.td_target(b)
    assert y[0] == 1.0 and y[3] == 1.0  # the last transition of a success
    assert y[1] == 0.0  # the last transition of a failure: terminal, reward 0
    assert 0.0 < y[2] < c.am.gamma  # any other transition bootstraps


def _finetune(stores, out, *extra):
    from robot_app.cli import main

    argv = ["finetune", "--data", str(stores["task"]), "--out", str(out), "--debug", "--no-progress", *extra]
    return main(argv)


def test_finetune_command_end_to_end_each_mode(stores, capsys):
    from training.runner import load_run

    root, pre = stores["root"] / "runs", str(stores["pretrained"])
    assert _finetune(stores, root / "scratch", "--mode", "scratch") == 0
    assert _finetune(stores, root / "pretrained", "--mode", "pretrained", "--from", pre) == 0
    assert _finetune(stores, root / "cds", "--mode", "cds", "--from", pre, "--share-data", str(stores["play"]),
                     "--share-percentile", "50") == 0
    for mode in ("scratch", "pretrained", "cds"):
        run_dir = root / mode
        for name in ("config.yaml", "finetune.yaml", "metrics.csv", "curve.png", "goal.png"):
            assert (run_dir / name).is_file(), f"{mode}: {name} missing"
        assert load_run(run_dir).step == 12
    header = (root / "cds" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_td", "loss_neg", "shared", "rewarded"} <= set(header)

    # pretrained starts from the run's four networks exactly; scratch from a fresh initialisation
    from training.finetune import base_train_config, build, resolve_config, run_train_config

    for mode, seed in (("pretrained", 0), ("scratch", 5)):
        config = resolve_config(mode=mode, pretrained=pre, data=str(stores["task"]), seed=seed, gamma=0.95, lr=1e-4,
                                neg_keep_gripper=True)
        base, checkpoint = base_train_config(config)
        algo = build(config, run_train_config(config, base), checkpoint, torch.device("cpu"))
        # the task's settings reach the update, over the pretrained run's
        assert (algo.config.gamma, algo.config.return_floor, algo.optimizer.param_groups[0]["lr"]) == (0.95, True, 1e-4)
        assert algo.config.neg_keep_gripper and not base.am.neg_keep_gripper
        assert base.am.gamma != 0.95
        same = [torch.equal(v, checkpoint["algorithm"][name][k]) for name, m in algo.modules().items() for k, v in m.state_dict().items()]
        assert all(same) if mode == "pretrained" else not any(same[:1])

    # bad input: clear errors naming the problem, exit code 2
    assert _finetune(stores, root / "bad1", "--mode", "cds", "--from", pre) == 2
    assert "--share-data" in capsys.readouterr().err
    assert _finetune(stores, root / "bad2", "--mode", "pretrained") == 2
    assert "--from RUN" in capsys.readouterr().err
    assert _finetune(stores, root / "scratch", "--mode", "scratch") == 2  # never overwrites a run
    assert "already holds" in capsys.readouterr().err


def test_exported_task_model_runs_in_the_policy_runtime_with_its_goal(stores, tmp_path):
    from robot_app.evaluation import as_act_fn
    from robot_app.policy import Policy
    from training.finetune import export_finetuned, read_png

    run_dir = stores["root"] / "export_run"
    assert _finetune(stores, run_dir, "--mode", "pretrained", "--from", str(stores["pretrained"])) == 0
    onnx_path, card_path, goal_path = export_finetuned(run_dir, tmp_path / "models" / "grasp_test.onnx")
    assert goal_path.name == "grasp_test_goal.png"
    policy = Policy.load(card_path)
    assert policy.card.task == "grasp-heldout" and policy.card.goal_image == "grasp_test_goal.png"
    assert policy.card.algo == "am-finetune-pretrained"
    np.testing.assert_array_equal(policy.task_goal, read_png(run_dir / "goal.png"))
    image = np.zeros((64, 64, 3), np.uint8)
    action, q = policy.act(image, policy.task_goal, 0.0)
    assert action.shape == (5,) and np.all(np.abs(action) <= 1.0) and 0.0 < q < 1.0

    # evaluation feeds the task's own goal, whatever goal image a suite renders
    seen = []
    act_fn = as_act_fn(type("P", (), {"task_goal": policy.task_goal, "act": lambda self, i, g, s: seen.append(g) or np.zeros(5)})())
    act_fn(image, np.full((64, 64, 3), 7, np.uint8), 0.0)
    np.testing.assert_array_equal(seen[0], policy.task_goal)

    # the plain `robot-app export` of a fine-tuned run ships the task goal too
    from robot_app.cli import main as robot_app

    assert robot_app(["export", str(run_dir), "-o", str(tmp_path / "cli" / "grasp_cli.onnx")]) == 0
    exported = Policy.load(tmp_path / "cli" / "grasp_cli.onnx")
    assert exported.card.task == "grasp-heldout" and exported.card.goal_image == "grasp_cli_goal.png"
    np.testing.assert_array_equal(exported.task_goal, policy.task_goal)

    goal_path.unlink()  # a card naming a missing goal image is refused by name
    with pytest.raises(ValueError, match="grasp_test_goal.png"):
        Policy.load(card_path)


def test_finetune_from_a_gcbc_run_takes_its_trunk_and_exports_as_a_task_q(stores, gcbc_run, tmp_path):
    """A cloned policy has no Q-function: its image trunk starts every Q-network, the heads start fresh,
    and the fine-tuned run is an AM task Q that exports and runs like any other."""
    from robot_app.policy import Policy
    from training.finetune import base_train_config, build, export_finetuned, resolve_config, run_train_config

    ft = resolve_config(mode="pretrained", pretrained=str(gcbc_run), data=str(stores["task"]))
    base, checkpoint = base_train_config(ft)
    run = run_train_config(ft, base)
    assert base.algo == "gcbc" and run.algo == "am"
    algo = build(ft, run, checkpoint, torch.device("cpu"))
    cloned = checkpoint["algorithm"]["policy"]
    for name, q in algo.modules().items():
        for key, value in q.encoder.state_dict().items():
            assert torch.equal(value, cloned[f"encoder.{key}"]), (name, key)
    fresh = build(resolve_config(mode="scratch", pretrained=str(gcbc_run), data=str(stores["task"])), run, None,
                  torch.device("cpu"))
    assert not torch.equal(next(fresh.q1.encoder.parameters()), next(algo.q1.encoder.parameters()))  # scratch: not the trunk

    assert _finetune(stores, tmp_path / "ft", "--mode", "pretrained", "--from", str(gcbc_run)) == 0
    onnx_path, card_path, _ = export_finetuned(tmp_path / "ft", tmp_path / "task.onnx")
    policy = Policy.load(onnx_path)
    assert policy.card.algo == "am-finetune-pretrained" and policy.task_goal is not None
    image = np.zeros((64, 64, 3), np.uint8)
    assert policy.act(image, policy.task_goal, 0.0)[0].shape == (5,)


def test_bc_mode_clones_the_successes_from_the_gcbc_policy_and_exports_a_cloned_task_model(stores, gcbc_run, tmp_path, capsys):
    from robot_app.policy import Policy
    from training.finetune import (
        TaskBatches,
        base_train_config,
        build_bc,
        episode_labels,
        export_finetuned,
        resolve_config,
        run_train_config,
        task_goal_image,
        task_transitions,
    )

    ft = resolve_config(mode="bc", pretrained=str(gcbc_run), data=str(stores["task"]))
    base, checkpoint = base_train_config(ft)
    algo = build_bc(ft, run_train_config(ft, base), checkpoint, torch.device("cpu"))
    for key, value in algo.policy.state_dict().items():  # the whole cloned policy, head included
        assert torch.equal(value, checkpoint["algorithm"]["policy"][key]), key

    task_store = Store.open(stores["task"])
    goal, _ = task_goal_image(task_store)
    batch, _ = TaskBatches(task_transitions(task_store), goal, None, seed=0).success_batch(200)
    successful = np.flatnonzero(episode_labels(task_store))
    assert np.isin(task_store.episode[batch.t], successful).all()  # only the successes are cloned
    assert len(np.unique(task_store.episode[batch.t])) == len(successful) and (batch.goal == goal).all()

    assert _finetune(stores, tmp_path / "bc", "--mode", "bc", "--from", str(gcbc_run)) == 0
    assert "loss_bc" in (tmp_path / "bc" / "metrics.csv").read_text().splitlines()[0]
    onnx_path, _, _ = export_finetuned(tmp_path / "bc", tmp_path / "task_bc.onnx")
    policy = Policy.load(onnx_path)
    assert policy.card.algo == "gcbc-finetune-bc" and not policy.card.q_means_reached  # never stopped as "reached"
    assert policy.card.task == "grasp-heldout" and policy.task_goal is not None
    assert policy.act(np.zeros((64, 64, 3), np.uint8), policy.task_goal, 0.0)[0].shape == (5,)

    assert _finetune(stores, tmp_path / "bad", "--mode", "bc", "--from", str(stores["pretrained"])) == 2
    assert "GCBC (or GCIVL) run" in capsys.readouterr().err


def test_fine_tuned_task_models_of_one_goal_export_as_their_mean(stores, gcbc_run, tmp_path, capsys):
    """Fine-tunes of one task (here two seeds) average like goal-conditioned policies; the mean keeps the task goal."""
    from robot_app.cli import main
    from robot_app.policy import Policy
    from training.finetune import export_finetuned

    runs = [tmp_path / f"bc{seed}" for seed in (0, 1)]
    for seed, run in enumerate(runs):
        assert _finetune(stores, run, "--mode", "bc", "--from", str(gcbc_run), "--seed", str(seed)) == 0
    assert main(["export", *map(str, runs), "-o", str(tmp_path / "mean.onnx")]) == 0  # checks ONNX against the torch mean
    policy = Policy.load(tmp_path / "mean.onnx")
    assert policy.card.algo == "gcbc-mean2-finetune-bc" and policy.card.task == "grasp-heldout"
    single = Policy.load(export_finetuned(runs[0], tmp_path / "one.onnx")[0])
    assert np.array_equal(policy.task_goal, single.task_goal)
    image = np.full((64, 64, 3), 90, np.uint8)
    assert not np.allclose(policy.q_values(image, policy.task_goal, 0.0, np.zeros((1, 5), np.float32)),
                           single.q_values(image, single.task_goal, 0.0, np.zeros((1, 5), np.float32)))

    assert main(["export", str(runs[0]), str(gcbc_run), "-o", str(tmp_path / "bad.onnx")]) == 2
    assert "average runs of one kind" in capsys.readouterr().err


def test_a_weight_averaged_fine_tune_starts_its_average_at_the_pretrained_policy_and_exports_it(stores, gcbc_run, tmp_path):
    from robot_app.policy import Policy
    from training.config import ConfigError
    from training.finetune import (
        base_train_config,
        build_bc,
        export_finetuned,
        resolve_config,
        run_train_config,
    )
    from training.runner import load_run

    ft = resolve_config(mode="bc", pretrained=str(gcbc_run), data=str(stores["task"]), overrides=["ema_decay=0.9"])
    base, checkpoint = base_train_config(ft)
    run = run_train_config(ft, base)
    assert run.gcbc.ema_decay == 0.9 and base.gcbc.ema_decay == 0.0
    algo = build_bc(ft, run, checkpoint, torch.device("cpu"))
    for key, value in algo.average.module.state_dict().items():  # not the random weights the policy was built with
        assert torch.equal(value, checkpoint["algorithm"]["policy"][key]), key

    assert _finetune(stores, tmp_path / "ema", "--mode", "bc", "--from", str(gcbc_run), "--set", "ema_decay=0.9") == 0
    loaded = load_run(tmp_path / "ema")
    state = torch.load(sorted((tmp_path / "ema" / "checkpoints").glob("step_*.pt"))[-1], weights_only=True)["algorithm"]
    assert "average" in state
    policy = Policy.load(export_finetuned(tmp_path / "ema", tmp_path / "ema.onnx")[0])
    image = np.full((64, 64, 3), 90, np.uint8)
    as_image = torch.from_numpy(image)[None]
    goal = torch.from_numpy(policy.task_goal)[None]
    with torch.no_grad():
        averaged = loaded.model.policy(as_image, goal, torch.zeros(1, 1))[0].numpy()
        trained = loaded.model.policy.__class__(loaded.model.policy.config)
        trained.load_state_dict(state["policy"])
        raw = trained(as_image, goal, torch.zeros(1, 1))[0].numpy()
    assert not np.allclose(averaged, raw, atol=1e-4)  # the average is another policy than the last weights...
    q = policy.q_values(image, policy.task_goal, 0.0, np.stack([averaged, raw]).astype(np.float32))
    assert q[0] > 0.999 and q[1] < q[0]  # ...and the export scores the average's action as the cloned one

    with pytest.raises(ConfigError, match="ema_decay is for the cloning modes"):
        resolve_config(mode="pretrained", pretrained=str(gcbc_run), data=str(stores["task"]), overrides=["ema_decay=0.9"])


def test_cloning_with_share_data_co_trains_on_play_transitions_toward_their_own_goals(stores, gcbc_run, tmp_path, capsys):
    """Half of each update is the task's cloned attempts under the task goal, half play data under hindsight goals."""
    from training import finetune
    from training.finetune import TaskBatches, resolve_config, task_goal_image, task_transitions, update_bc
    from training.gcbc import GCBC
    from training.runner import effective_sampler
    from training.runner import resolve_config as train_config
    from training.sampler import GoalSampler

    task_store, play_store = Store.open(stores["task"]), Store.open(stores["play"])
    goal, _ = task_goal_image(task_store)
    run = train_config(algo="gcbc", debug=True, overrides=["precision=fp32", "augment_pad=0"])  # frames as stored
    batches = TaskBatches(task_transitions(task_store), goal, GoalSampler(play_store, effective_sampler(run), seed=0), seed=0)
    config = resolve_config(mode="bc-scratch", data=str(stores["task"]), share_data=str(stores["play"]),
                            batch_size=6, share_batch_size=10)
    algo = GCBC(run.gcbc, run.network, torch.device("cpu"), precision="fp32")
    seen = []
    algo.update = lambda b: seen.append(b) or {}
    metrics = update_bc(algo, batches, config, torch.device("cpu"), run, None)
    (b,) = seen
    assert len(b["image"]) == 16 and metrics["shared"] == pytest.approx(10 / 16)
    task_goal = torch.from_numpy(goal)
    assert all(torch.equal(g, task_goal) for g in b["goal"][:6])  # the task rows: the task goal
    assert not any(torch.equal(g, task_goal) for g in b["goal"][6:])  # the play rows: their own frames as goals
    play_images = torch.from_numpy(np.array(play_store.images))
    assert all((play_images == g).all(dim=(1, 2, 3)).any() for g in b["goal"][6:])

    assert _finetune(stores, tmp_path / "co", "--mode", "bc", "--from", str(gcbc_run), "--share-data", str(stores["play"])) == 0
    header = (tmp_path / "co" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "shared" in header
    assert _finetune(stores, tmp_path / "bad", "--mode", "pretrained", "--from", str(stores["pretrained"]),
                     "--share-data", str(stores["play"])) == 2
    assert "--share-data is used by --mode cds and the cloning modes" in capsys.readouterr().err
    assert finetune.BC_MODES == ("bc", "bc-scratch")


def test_cloning_can_draw_the_steps_before_a_grasp_more_often(stores):
    from training.finetune import TaskBatches, resolve_config, task_goal_image, task_transitions
    from training.sampler import pre_grasp_rows

    task_store = Store.open(stores["task"])
    task, (goal, _) = task_transitions(task_store), task_goal_image(task_store)
    rows = TaskBatches(task, goal, None, seed=0).cloned_rows(True)
    near = pre_grasp_rows(task_store, task.t[rows], task.index.t_last[rows], 3)
    assert 0 < near.sum() < len(near)  # the fixture's gripper does take hold somewhere, not everywhere
    near_t = set(task.t[rows][near].tolist())

    def near_fraction(weight: float) -> float:
        batch, _ = TaskBatches(task, goal, None, seed=0).success_batch(4000, True, (3, weight))
        return float(np.mean([t in near_t for t in batch.t]))

    plain = near_fraction(1.0)
    assert plain == pytest.approx(near.mean(), abs=0.03)
    expected = 10 * near.mean() / (10 * near.mean() + (1 - near.mean()))
    assert near_fraction(10.0) == pytest.approx(expected, abs=0.03)
    unweighted, _ = TaskBatches(task, goal, None, seed=0).success_batch(64, True)
    same, _ = TaskBatches(task, goal, None, seed=0).success_batch(64, True, (3, 1.0))
    assert np.array_equal(unweighted.t, same.t)  # weight 1 draws exactly what the uniform draw did
    with pytest.raises(Exception, match="pre_grasp_weight"):
        resolve_config(mode="bc-scratch", data=str(stores["task"]), overrides=["pre_grasp_weight=0"])
    with pytest.raises(Exception, match="pre_grasp_weight is for the cloning modes"):
        resolve_config(mode="scratch", data=str(stores["task"]), overrides=["pre_grasp_weight=3"])


def test_bc_mode_starts_from_a_gcivl_policy_too(stores, tmp_path):
    """A GCIVL run's policy is a BCPolicy: mode bc clones the successes from it, with its switch weight."""
    import torch

    from training import runner
    from training.finetune import base_train_config, build_bc, resolve_config, run_train_config

    config = runner.resolve_config(algo="gcivl", debug=True, steps=2, data=str(stores["play"]),
                                   overrides=["num_threads=1", "checkpoint_every=2", "precision=fp32", "gcivl.switch_weight=3"])
    runner.train(config, tmp_path / "gcivl", progress=False)
    ft = resolve_config(mode="bc", pretrained=str(tmp_path / "gcivl"), data=str(stores["task"]))
    base, checkpoint = base_train_config(ft)
    run = run_train_config(ft, base)
    assert run.algo == "gcbc" and run.gcbc.switch_weight == 3.0
    algo = build_bc(ft, run, checkpoint, torch.device("cpu"))
    for key, value in algo.policy.state_dict().items():
        assert torch.equal(value, checkpoint["algorithm"]["policy"][key]), key
    assert _finetune(stores, tmp_path / "bc", "--mode", "bc", "--from", str(tmp_path / "gcivl")) == 0


def test_finetuning_turns_no_hues_unless_told_whatever_its_pretraining_did():
    from dataclasses import replace

    from training import runner
    from training.finetune import FinetuneConfig, run_train_config

    base = runner.resolve_config(algo="gcbc", overrides=["augment_hue=0.5"])
    ft = FinetuneConfig(mode="bc", pretrained="runs/x", data="data/task")
    assert run_train_config(ft, base).augment_hue == 0.0
    assert run_train_config(replace(ft, augment_hue=0.25), base).augment_hue == 0.25
    assert run_train_config(replace(ft, mode="pretrained", augment_hue=1.0), replace(base, augment_hue=0.0)).augment_hue == 1.0
    from training.config import ConfigError
    from training.finetune import check_config

    with pytest.raises(ConfigError, match="augment_hue=-1"):
        check_config(replace(ft, augment_hue=-1.0))


def test_each_mode_trains_for_its_own_default_number_of_updates_unless_told():
    """Cloning needs more updates than the Q modes' 2000 (session 19); an explicit count always wins."""
    from training.config import ConfigError
    from training.finetune import DEFAULT_STEPS, FinetuneConfig, default_steps, resolve_config

    common = {"pretrained": "runs/x", "data": "data/task"}
    assert resolve_config(mode="bc", **common).steps == DEFAULT_STEPS["bc"] == 9000
    assert resolve_config(mode="bc-scratch", data="data/task").steps == 9000
    assert resolve_config(mode="pretrained", **common).steps == 2000
    assert resolve_config(mode="bc", steps=300, **common).steps == 300
    assert resolve_config(mode="bc", overrides=["steps=400"], **common).steps == 400
    assert resolve_config(mode="bc", debug=True, **common).steps == 12
    assert default_steps(FinetuneConfig(mode="cds", **common)).steps == 2000  # what finetune() runs when built directly
    with pytest.raises(ConfigError, match="steps=-1"):
        resolve_config(mode="bc", steps=-1, **common)


def test_an_ensemble_trains_each_member_as_alone_and_acts_with_their_mean():
    """gcbc.members: members start apart, each gets its own loss's gradient (scaled 1/M), the action is their mean."""
    from training.gcbc import GCBCConfig, MeanPolicy, make_policy
    from training.networks import NetworkConfig

    network = NetworkConfig(channels=(8, 8, 8, 8), feature_dim=16, head_hidden=16)
    torch.manual_seed(0)
    ensemble = make_policy(network, GCBCConfig(members=3))
    assert isinstance(ensemble, MeanPolicy) and len(ensemble.members) == 3
    first = [next(m.parameters()) for m in ensemble.members]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])  # independent initialisations

    g = torch.Generator().manual_seed(1)
    image, goal = (torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8, generator=g) for _ in range(2))
    grip, action = torch.rand((4, 1), generator=g), torch.rand((4, 5), generator=g) * 2 - 1
    raw = ensemble.raw(image, goal, grip)
    assert raw.shape == (3, 4, 5)
    torch.testing.assert_close(ensemble.action_of(raw), torch.stack([m(image, goal, grip) for m in ensemble.members]).mean(0))
    torch.testing.assert_close(ensemble(image, goal, grip), ensemble.action_of(raw))

    ensemble.loss(raw, action).backward()
    for member in ensemble.members:
        alone = [p.grad.clone() for p in member.parameters()]
        member.zero_grad()
        member.loss(member.raw(image, goal, grip), action).backward()
        for got, want in zip(alone, member.parameters(), strict=True):
            torch.testing.assert_close(got * 3, want.grad)
    with pytest.raises(ValueError, match="members"):
        make_policy(network, GCBCConfig(members=0))


def test_an_exported_cloned_policy_fine_tunes_like_its_run(stores, gcbc_run, tmp_path, capsys):
    """--from MODEL.onnx: the shipped model's weights come back exactly, an ensemble with every member."""
    from robot_app.cli import main as robot_app
    from robot_app.policy import Policy, PolicyLoadError
    from training import runner
    from training.export import export_onnx, import_cloned_model
    from training.finetune import base_train_config, build_bc, resolve_config, run_train_config
    from training.gcbc import BCScorer

    assert robot_app(["export", str(gcbc_run), "-o", str(tmp_path / "one.onnx")]) == 0
    config, checkpoint = import_cloned_model(tmp_path / "one.onnx")
    run = torch.load(runner.find_checkpoint(gcbc_run), map_location="cpu", weights_only=True)
    assert config.network == runner.load_run(gcbc_run).network and config.gcbc.members == 1
    assert checkpoint["algorithm"]["policy"].keys() == run["algorithm"]["policy"].keys()
    for key, value in run["algorithm"]["policy"].items():
        assert torch.equal(checkpoint["algorithm"]["policy"][key], value), key

    # an ensemble run (gcbc.members=2) exports as "-mean2" and imports with both members
    ens_config = runner.resolve_config(algo="gcbc", debug=True, steps=2, data=str(stores["play"]),
                                       overrides=["num_threads=1", "checkpoint_every=2", "precision=fp32", "gcbc.members=2"])
    runner.train(ens_config, tmp_path / "ens", progress=False)
    assert robot_app(["export", str(tmp_path / "ens"), "-o", str(tmp_path / "ens.onnx")]) == 0
    assert Policy.load(tmp_path / "ens.onnx").card.algo == "gcbc-mean2"
    config, checkpoint = import_cloned_model(tmp_path / "ens.onnx")
    assert config.gcbc.members == 2

    # mode bc from the model starts from its exact weights; bc-scratch from the same shape, freshly drawn
    for mode in ("bc", "bc-scratch"):
        ft = resolve_config(mode=mode, pretrained=str(tmp_path / "ens.onnx"), data=str(stores["task"]), seed=3)
        base, ckpt = base_train_config(ft)
        algo = build_bc(ft, run_train_config(ft, base), ckpt, torch.device("cpu"))
        same = [torch.equal(v, ckpt["algorithm"]["policy"][k]) for k, v in algo.policy.state_dict().items()]
        assert len(same) == len(ckpt["algorithm"]["policy"])
        assert all(same) if mode == "bc" else not any(same)
    assert _finetune(stores, tmp_path / "ft", "--mode", "bc", "--from", str(tmp_path / "ens.onnx")) == 0
    assert _finetune(stores, tmp_path / "ft_q", "--mode", "pretrained", "--from", str(tmp_path / "ens.onnx")) == 0
    assert robot_app(["export", str(tmp_path / "ft"), "-o", str(tmp_path / "task.onnx")]) == 0
    task = Policy.load(tmp_path / "task.onnx")
    assert task.card.algo == "gcbc-mean2-finetune-bc" and task.task_goal is not None

    # refused by name: a Q-function model, a fine-tuned task model, a graph this code did not write
    assert robot_app(["export", str(stores["pretrained"]), "-o", str(tmp_path / "am.onnx")]) == 0
    assert _finetune(stores, tmp_path / "bad1", "--mode", "bc", "--from", str(tmp_path / "am.onnx")) == 2
    assert "Q-function" in capsys.readouterr().err
    with pytest.raises(ValueError, match="task model"):
        import_cloned_model(tmp_path / "task.onnx")
    load = runner.load_run(gcbc_run)
    wide = BCScorer(load.model.policy, sigma=0.5)  # another score width: same weights, another graph
    export_onnx(wide, tmp_path / "wide.onnx", 64, {"algo": "gcbc", "network": load.network})
    with pytest.raises(PolicyLoadError, match="scores"):
        import_cloned_model(tmp_path / "wide.onnx")
    assert not (tmp_path / "bad1").exists()


def test_failed_approaches_are_cloned_up_to_their_first_close_and_no_further(tmp_path):
    from training.finetune import TaskBatches, task_goal_image, task_transitions

    episodes = synthetic_episodes([6, 6, 5, 4], [True, False, False, False], seed=3)
    for ep, first_close in zip(episodes, (2, 3, 0, None), strict=True):  # the last failure never closes
        ep["actions"][:, 4] = -1.0
        if first_close is not None:
            ep["actions"][first_close:, 4] = 1.0
            ep["actions"][first_close + 1:, 4] = -1.0  # opening again does not end "after the close"
    store = Store.open(write_store(tmp_path / "task", episodes))
    task = task_transitions(store)
    t_in_episode = task.t - store.episode_bounds()[np.asarray(store.episode[task.t]), 0]
    expected = {0: [0, 1], 1: [0, 1, 2], 2: [], 3: [0, 1, 2]}  # transitions are t < last frame
    for e, before in expected.items():
        rows = np.asarray(store.episode[task.t]) == e
        np.testing.assert_array_equal(t_in_episode[rows & task.before_close], before)

    batches = TaskBatches(task, task_goal_image(store)[0], None, seed=0)
    success_rows = np.flatnonzero(np.asarray(store.episode[task.t]) == 0)
    np.testing.assert_array_equal(batches.cloned_rows(), success_rows)  # filtered BC: the success only, all of it
    with_failures = batches.cloned_rows(failed_approaches=True)
    failed = with_failures[~np.isin(with_failures, success_rows)]
    assert len(failed) == 3 + 0 + 3 and task.before_close[failed].all()
    batch, _ = batches.success_batch(400, failed_approaches=True)
    assert set(np.unique(store.episode[batch.t])) == {0, 1, 3}  # the failure that closed at once gives nothing


def test_fine_tuning_evaluates_the_task_model_on_its_goal_and_keeps_the_best(stores, gcbc_run, tmp_path, capsys):
    import csv
    import json

    from robot_app.policy import Policy, sha256_file
    from training.finetune import export_finetuned, read_png, resolve_config
    from training.runner import Evaluator, TrainConfig, load_run, make_act_fn

    run = tmp_path / "bc_eval"
    over = ["--set", "eval_every=6", "--set", "eval_episodes=1", "--set", "keep_checkpoints=10"]
    assert _finetune(stores, run, "--mode", "bc", "--from", str(gcbc_run), *over) == 0
    with (run / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["step"]), r["family"], int(r["n"])) for r in rows] == [(6, "grasp-heldout", 1), (12, "grasp-heldout", 1)]
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    rates = {int(r["step"]): float(r["success_rate"]) for r in rows}
    assert best["step"] == min(s for s, rate in rates.items() if rate == max(rates.values()))
    assert (run / "success_vs_step.png").is_file() and (run / "eval" / "step_00000006" / "strip_grasp-heldout.png").is_file()
    onnx_path, _, goal_path = export_finetuned(run, tmp_path / "best.onnx", checkpoint="best")
    card = Policy.load(onnx_path).card
    assert card.task == "grasp-heldout"  # best.pt is a fine-tune's checkpoint, its record kept
    assert card.goal_image_sha256 == sha256_file(goal_path)  # the picture is checked at load, like the graph

    # The task model acts on its own goal image, whatever goal the episode shows (as the policy node runs it).
    loaded = load_run(run, "best")
    goal = read_png(run / "goal.png")
    c = TrainConfig()
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    got = Evaluator(c, tmp_path / "e", None, goal=goal).act_fn(loaded.model)(image, np.zeros_like(image), 0.5)
    want = make_act_fn(loaded.model, c.cem, seed=c.eval_seed)(image, goal, 0.5)
    np.testing.assert_array_equal(got[0], want[0])
    unfixed = Evaluator(c, tmp_path / "e", None).act_fn(loaded.model)(image, np.zeros_like(image), 0.5)
    assert not np.array_equal(unfixed[0], want[0]) or unfixed[1] != want[1]

    with pytest.raises(Exception, match="eval_every"):
        resolve_config(mode="bc", pretrained=str(gcbc_run), data=str(stores["task"]), task="pick-mug", overrides=["eval_every=5"])
