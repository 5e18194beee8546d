"""Training: locked config, AM targets and negatives, the train command end to end, exact resume after SIGKILL."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_app import cli
from robot_app.cem import CEMSettings
from robot_app.store import Store
from training.am import ActionableModels, AMConfig
from training.config import ConfigError
from training.networks import NetworkConfig
from training.runner import (
    TrainConfig,
    check_config,
    load_run,
    make_act_fn,
    resolve_config,
    to_torch,
    train,
)
from training.sampler import GoalSampler, SamplerConfig, make_synthetic_store

ROOT = Path(__file__).resolve().parents[1]
TINY = NetworkConfig(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32)
FAST = ["num_threads=1", "log_every=5"]

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("store") / "s", episodes=8, steps=12)


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- config


def test_unknown_key_and_wrong_type_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.am: unknown key\(s\) \['gama'\]"):
        resolve_config(overrides=["am.gama=0.5"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler:\n  p_chian: 0.1\n")
    with pytest.raises(ConfigError, match="p_chian"):
        resolve_config(bad)
    with pytest.raises(ConfigError, match=r"config\.batch_size: expected an integer"):
        resolve_config(overrides=["batch_size=lots"])
    with pytest.raises(ConfigError, match="key=value"):
        resolve_config(overrides=["steps"])


def test_yaml_presets_and_overrides_resolve_in_order():
    c = resolve_config(ROOT / "config" / "train_am.yaml", "am-nonneg", ["am.gamma=0.95", "network.channels=[16,16,16,16]"], steps=7)
    assert isinstance(c, TrainConfig)
    assert (c.algo, c.am.negatives, c.am.chaining, c.am.gamma, c.steps) == ("am-nonneg", False, True, 0.95, 7)
    assert c.network.channels == (16, 16, 16, 16)
    assert resolve_config(algo="am-nochain").am.chaining is False
    with pytest.raises(ConfigError, match="am-nonneg"):
        resolve_config(algo="am", overrides=["am.negatives=false"])


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 1e-4 as a string; a float field must take it as the learning rate it spells
    assert resolve_config(overrides=["am.lr=1e-4"]).am.lr == pytest.approx(1e-4)
    (tmp_path / "lr.yaml").write_text("gcbc:\n  lr: 3E-5\n")
    assert resolve_config(tmp_path / "lr.yaml", "gcbc").gcbc.lr == pytest.approx(3e-5)
    with pytest.raises(ConfigError, match=r"am\.lr: expected a number, got 'fast'"):
        resolve_config(overrides=["am.lr=fast"])
    with pytest.raises(ConfigError, match="expected an integer"):  # ints stay strict: 1e3 updates is not an int
        resolve_config(overrides=["steps=1e3"])


def test_hue_augmentation_is_a_fraction_of_the_half_colour_wheel():
    assert resolve_config(overrides=["augment_hue=1"]).augment_hue == 1.0
    with pytest.raises(ConfigError, match="augment_hue=1.5"):
        check_config(resolve_config(overrides=["augment_hue=1.5"]))


# ---------------------------------------------------------------- AM maths


@pytest.fixture(scope="module")
def am_and_batch(store_dir):
    algo = ActionableModels(AMConfig(neg_candidates=32, neg_count=4), TINY, torch.device("cpu"), precision="fp32")
    sampler = GoalSampler(Store.open(store_dir), SamplerConfig(p_chain=0.3), seed=0)
    return algo, to_torch(sampler.sample(64), torch.device("cpu"))


def test_td_targets_are_one_only_for_t_plus_1_and_bootstrap_otherwise(am_and_batch):
    algo, b = am_and_batch
    y = algo.td_target(b)
    success, chained = b["success"], b["chained"]
    assert success.any() and chained.any() and (~success & ~chained).any()
    assert torch.all(y[success] == 1.0)
    assert torch.all(y[~success] <= algo.config.gamma) and torch.all(y[~success] > 0)
    assert torch.all(y[chained] < 1.0)


def test_return_floor_lifts_hindsight_targets_to_the_logged_return_and_leaves_chained_alone(am_and_batch):
    algo, b = am_and_batch
    start, config = algo.generator.get_state(), algo.config
    y_plain = algo.td_target(b)
    algo.generator.set_state(start)  # the same CEM draws for both targets
    algo.config = replace(config, return_floor=True)
    try:
        y = algo.td_target(b)
    finally:
        algo.config = config
    k, chained = b["steps_to_goal"], b["chained"]
    hindsight = ~chained
    logged = config.gamma ** (k[hindsight].float() - 1.0)
    torch.testing.assert_close(y[hindsight], torch.maximum(y_plain[hindsight], logged))
    assert (y[hindsight] > y_plain[hindsight]).any(), "the floor must lift some target on an untrained network"
    assert (y[b["success"]] == 1.0).all()
    torch.testing.assert_close(y[chained], y_plain[chained])  # chained goals: bootstrap only, never 1
    assert (y[chained] < 1.0).all()


def test_negatives_are_away_from_the_logged_action(am_and_batch):
    algo, b = am_and_batch
    with torch.no_grad():
        feats = algo.q1.encode(b["image"], b["goal"])
    neg = algo.pick_negatives(feats, b["gripper"], b["action"])
    assert neg.shape == (64, 4, 5)
    assert neg.abs().max() <= 1.0
    dist = torch.linalg.vector_norm(neg - b["action"][:, None], dim=-1)
    assert dist.min() >= algo.config.neg_min_distance


def test_negatives_can_keep_the_logged_gripper_command(am_and_batch):
    algo, b = am_and_batch
    start, config = algo.generator.get_state(), algo.config
    plain = algo.negative_candidates(b["action"])
    assert (torch.sign(plain[:, :, 4]) != torch.sign(b["action"][:, None, 4])).any()  # by default some flip it
    algo.generator.set_state(start)
    algo.config = replace(config, neg_keep_gripper=True)
    try:
        kept = algo.negative_candidates(b["action"])
        with torch.no_grad():
            neg = algo.pick_negatives(algo.q1.encode(b["image"], b["goal"]), b["gripper"], b["action"])
    finally:
        algo.config = config
    assert torch.equal(kept[:, :, 4], b["action"][:, None, 4].expand(-1, kept.shape[1]))
    torch.testing.assert_close(kept[:, :, :4], plain[:, :, :4])  # the same draws otherwise
    assert torch.equal(neg[:, :, 4], b["action"][:, None, 4].expand(-1, neg.shape[1]))
    assert torch.linalg.vector_norm(neg - b["action"][:, None], dim=-1).min() >= config.neg_min_distance


def test_negatives_push_unseen_actions_down_and_can_be_switched_off(store_dir):
    sampler = GoalSampler(Store.open(store_dir), SamplerConfig(), seed=1)
    batches = [to_torch(sampler.sample(32), torch.device("cpu")) for _ in range(4)]
    on = ActionableModels(AMConfig(lr=1e-3), TINY, torch.device("cpu"), precision="fp32")
    off = ActionableModels(AMConfig(lr=1e-3, negatives=False), TINY, torch.device("cpu"), precision="fp32")
    for i in range(30):
        m_on, m_off = on.update(batches[i % 4]), off.update(batches[i % 4])
    assert "loss_neg" not in m_off and "q_neg" not in m_off
    assert float(m_on["loss_neg"]) > 0

    def q_random(algo):
        with torch.no_grad():
            b = batches[0]
            a = torch.rand((32, 16, 5), generator=torch.Generator().manual_seed(0)) * 2 - 1
            return torch.sigmoid(algo.q1.logits(b["image"], b["goal"], b["gripper"], a)).mean().item()

    assert q_random(on) < q_random(off) - 0.1


# ---------------------------------------------------------------- the command and runs


def test_train_command_debug_end_to_end(store_dir, tmp_path):
    run = tmp_path / "run"
    code = cli.main(["train", "--data", str(store_dir), "--out", str(run), "--debug", "--steps", "12",
                     "--set", "checkpoint_every=6", "--set", "num_threads=1", "--no-progress"])
    assert code == 0
    assert (run / "config.yaml").is_file() and (run / "curve.png").stat().st_size > 1000
    metrics = rows(run / "metrics.csv")
    assert [int(r["step"]) for r in metrics] == [5, 10, 12]
    assert {"loss_td", "loss_neg", "q_data", "q_neg", "positives", "updates_per_s"} <= set(metrics[0])
    ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
    assert [p.name for p in ckpts] == ["step_00000006.pt", "step_00000012.pt"]
    torch.load(ckpts[-1], weights_only=True)  # no arbitrary pickle

    loaded = load_run(run)
    assert (loaded.algo, loaded.step) == ("am", 12)
    assert loaded.data_manifest_hash == Store.open(store_dir).manifest_hash()
    image = np.zeros((64, 64, 3), np.uint8)
    with torch.no_grad():
        q = loaded.model(torch.from_numpy(image)[None], torch.from_numpy(image)[None], torch.zeros(1, 1), torch.zeros(1, 7, 5))
    assert q.shape == (1, 7) and 0 < q.min().item() and q.max().item() < 1
    action, value = make_act_fn(loaded.model, loaded.cem)(image, image, 0.0)
    assert action.shape == (5,) and np.abs(action).max() <= 1 and 0 < value < 1

    # a second fresh run into the same directory is refused; nothing is overwritten
    assert cli.main(["train", "--data", str(store_dir), "--out", str(run), "--debug", "--no-progress"]) == 2
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 2


def test_losses_fall_on_a_tiny_learnable_dataset(tmp_path):
    store_dir = make_synthetic_store(tmp_path / "store", episodes=8, steps=12, constant_actions=True)
    common = ["num_threads=1", "log_every=10", "augment_pad=0", "precision=fp32", "batch_size=32"]
    bc = resolve_config(algo="gcbc", debug=True, steps=60, data=str(store_dir), overrides=[*common, "gcbc.lr=0.002"])
    train(bc, tmp_path / "gcbc", progress=False)
    losses = [float(r["loss_bc"]) for r in rows(tmp_path / "gcbc" / "metrics.csv")]
    assert losses[-1] < 0.6 * losses[0], losses
    q = resolve_config(algo="am", debug=True, steps=60, data=str(store_dir), overrides=[*common, "am.lr=0.001"])
    train(q, tmp_path / "am", progress=False)
    m = rows(tmp_path / "am" / "metrics.csv")
    total = [float(r["loss_td"]) + float(r["loss_neg"]) for r in m]
    assert total[-1] < 0.92 * total[0], total  # BCE on soft TD targets has an entropy floor


def test_gcbc_scorer_drives_cem_to_the_cloned_action(store_dir, tmp_path):
    c = resolve_config(algo="gcbc", debug=True, steps=6, data=str(store_dir), overrides=FAST)
    train(c, tmp_path / "bc", progress=False)
    loaded = load_run(tmp_path / "bc")
    image = np.array(Store.open(store_dir).images[0])
    with torch.no_grad():
        mu = loaded.model.policy(torch.from_numpy(image)[None], torch.from_numpy(image)[None], torch.zeros(1, 1))[0]
    action, q = make_act_fn(loaded.model, CEMSettings(samples=256, elites=16, iterations=4))(image, image, 0.0)
    assert np.linalg.norm(action - mu.numpy()) < 0.2 and q > 0.7


def test_gcbc_switch_weight_counts_the_gripper_switches_more():
    from robot_app.spec import gripper_switches
    from training.gcbc import GCBC, GCBCConfig

    gripper = torch.tensor([[0.0], [0.0], [0.4], [1.0]])  # open, open, holding a cube, closed on nothing
    action = torch.zeros(4, 5)
    action[:, 4] = torch.tensor([-1.0, 1.0, 1.0, -1.0])  # stay open, close (switch), keep holding, open (switch)
    assert gripper_switches(gripper, action).tolist() == [False, True, False, True]

    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    batch = {"image": images, "goal": images.flip(0), "gripper": gripper, "action": action, "success": torch.zeros(4)}
    losses = {}
    for weight in (1.0, 10.0):
        bc = GCBC(GCBCConfig(switch_weight=weight), TINY, torch.device("cpu"), seed=0, precision="fp32")
        with torch.no_grad():
            per_sample = ((bc.policy(images, images.flip(0), gripper) - action) ** 2).mean(dim=1)
        losses[weight] = float(bc.update(batch)["loss_bc"]), per_sample
    plain, per_sample = losses[1.0]
    assert plain == pytest.approx(float(per_sample.mean()), rel=1e-5)
    weighted = (per_sample * torch.tensor([1.0, 10.0, 1.0, 10.0])).sum() / 22.0
    assert losses[10.0][0] == pytest.approx(float(weighted), rel=1e-5) and losses[10.0][0] != pytest.approx(plain)
    with pytest.raises(ValueError, match="switch_weight"):
        GCBC(GCBCConfig(switch_weight=0.0), TINY, torch.device("cpu"))


def test_gcbc_with_action_bins_acts_with_the_mode_where_regression_averages_the_modes(tmp_path):
    """One state, a logged vx of -1 five times and +1 three times: MSE learns -0.25, a move nobody made; bins learn -1."""
    from training.gcbc import GCBC, GCBCConfig, policy_from_state

    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8).expand(8, -1, -1, -1).contiguous()
    action = torch.zeros(8, 5)
    action[:, 0] = torch.tensor([-1.0] * 5 + [1.0] * 3)
    action[:, 4] = -1.0
    batch = {"image": image, "goal": image.flip(1), "gripper": torch.zeros(8, 1), "action": action, "success": torch.zeros(8)}
    learned = {}
    for bins in (0, 21):
        bc = GCBC(GCBCConfig(action_bins=bins, lr=3e-3), TINY, torch.device("cpu"), seed=0, precision="fp32")
        for _ in range(150):
            bc.update(batch)
        with torch.no_grad():
            learned[bins] = policy_from_state(bc.state_dict(), TINY, GCBCConfig(action_bins=bins)).policy(
                image[:1], image[:1].flip(1), torch.zeros(1, 1))[0]
    assert learned[0][0] == pytest.approx(-0.25, abs=0.1)
    assert learned[21][0] == -1.0 and learned[21][4] == -1.0 and learned[21][1] == 0.0  # bin values, exactly
    with pytest.raises(ValueError, match="action_bins"):
        GCBC(GCBCConfig(action_bins=2), TINY, torch.device("cpu"))


def test_gcbc_weight_average_acts_follows_the_recurrence_and_resumes_exactly():
    """The averaged policy is what acts and exports; a checkpoint round trip continues it bit for bit."""
    from training.gcbc import GCBC, GCBCConfig, policy_from_state

    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 64, 64, 3), dtype=torch.uint8)
    batch = {"image": images, "goal": images.flip(0), "gripper": torch.rand(6, 1), "action": torch.rand(6, 5) * 2 - 1,
             "success": torch.zeros(6)}
    config = GCBCConfig(ema_decay=0.8, lr=1e-2)
    bc = GCBC(config, TINY, torch.device("cpu"), seed=0, precision="fp32")
    expected = {k: v.clone() for k, v in bc.policy.state_dict().items()}
    for n in range(6):
        bc.update(batch)
        keep = min(0.8, (1 + n) / (10 + n))  # the warm-up: the first updates weigh the start less
        expected = {k: keep * expected[k] + (1 - keep) * v for k, v in bc.policy.state_dict().items()}
    for key, value in bc.average.module.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(bc.average.module.head[0].weight, bc.policy.head[0].weight)  # it does lag the weights

    with torch.no_grad():
        acted = bc.policy_module().policy(images, images.flip(0), batch["gripper"])
        loaded = policy_from_state(bc.state_dict(), TINY, config).policy(images, images.flip(0), batch["gripper"])
        averaged = bc.average.module(images, images.flip(0), batch["gripper"])
        raw = bc.policy(images, images.flip(0), batch["gripper"])
    assert torch.equal(acted, averaged) and torch.equal(loaded, averaged) and not torch.allclose(acted, raw)

    saved = io.BytesIO()  # through a file, as a checkpoint: a live state dict would share Adam's moments
    torch.save(bc.state_dict(), saved)
    saved.seek(0)
    resumed = GCBC(config, TINY, torch.device("cpu"), seed=1, precision="fp32")
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    for algo in (bc, resumed):
        algo.update(batch)
    for key, value in bc.average.module.state_dict().items():
        assert torch.equal(value, resumed.average.module.state_dict()[key]), key
    plain = GCBC(GCBCConfig(), TINY, torch.device("cpu"), seed=0, precision="fp32")  # a run that kept no average
    resumed.load_state_dict(plain.state_dict())  # e.g. init_from a pretraining: the average starts at its weights
    for key, value in plain.policy.state_dict().items():
        assert torch.equal(resumed.average.module.state_dict()[key], value), key
    assert int(resumed.average.updates) == 0
    with pytest.raises(ValueError, match="ema_decay"):
        GCBC(GCBCConfig(ema_decay=1.0), TINY, torch.device("cpu"))


def test_resume_after_sigkill_continues_bit_for_bit(store_dir, tmp_path):
    steps, args = 60, ["--set", "checkpoint_every=10", "--set", "num_threads=1", "--set", "log_every=5"]
    straight, killed = tmp_path / "a", tmp_path / "b"
    c = resolve_config(algo="am", debug=True, steps=steps, data=str(store_dir),
                       overrides=["checkpoint_every=10", "num_threads=1", "log_every=5"])
    train(c, straight, progress=False)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "training.commands.train", "--data", str(store_dir), "--out", str(killed),
           "--debug", "--steps", str(steps), "--no-progress", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("step_*.pt")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted((killed / "checkpoints").glob("step_*.pt"))
    assert int(done[-1].stem.split("_")[1]) < steps, "the run finished before it could be killed"

    assert cli.main(["train", "--out", str(killed), "--resume", "--no-progress"]) == 0
    a = torch.load(straight / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    for net in ("q1", "q2", "t1", "t2"):
        for name, tensor in a["algorithm"][net].items():
            assert torch.equal(tensor, b["algorithm"][net][name]), f"{net}.{name} differs after resume"
    for key, value in a["algorithm"]["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg_sq"], b["algorithm"]["optimizer"]["state"][key]["exp_avg_sq"])
    assert a["rng"][0]["sampler"] == b["rng"][0]["sampler"]
    assert [int(r["step"]) for r in rows(killed / "metrics.csv")] == list(range(5, steps + 1, 5))


def test_success_is_evaluated_against_step_on_the_sim_suite(store_dir, tmp_path):
    c = resolve_config(algo="am", debug=True, steps=4, data=str(store_dir),
                       overrides=["num_threads=1", "eval_every=2", "eval_episodes=1", "checkpoint_every=4"])
    train(c, tmp_path / "run", progress=False)
    evals = rows(tmp_path / "run" / "eval.csv")
    assert [(int(r["step"]), r["family"], int(r["n"])) for r in evals] == [(2, "reach", 1), (4, "reach", 1)]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in evals)
    assert all(float(r["distance_closed"]) <= 1.0 for r in evals)  # how close the episode came, not only whether
    assert (tmp_path / "run" / "success_vs_step.png").stat().st_size > 1000


def test_the_best_evaluation_keeps_its_weights_and_rollouts_and_a_resume_redoes_a_later_best(store_dir, tmp_path):
    run = tmp_path / "run"
    over = ["num_threads=1", "eval_every=2", "eval_episodes=2", "checkpoint_every=2", "keep_checkpoints=10"]
    train(resolve_config(algo="gcbc", debug=True, steps=6, data=str(store_dir), overrides=over), run, progress=False)
    means = {}
    for r in rows(run / "eval.csv"):
        means.setdefault(int(r["step"]), []).append(float(r["success_rate"]))
    top = max(sum(v) / len(v) for v in means.values())
    first_top = min(step for step, v in means.items() if sum(v) / len(v) == top)
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["step"] == first_top and best["mean_success"] == pytest.approx(top)
    assert load_run(run, "best").step == first_top

    def weights(path):
        return torch.load(path, map_location="cpu", weights_only=True)["algorithm"]["policy"]

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    assert same(weights(run / "checkpoints" / "best.pt"), weights(run / "checkpoints" / f"step_{first_top:08d}.pt"))
    assert not same(weights(run / "checkpoints" / "step_00000002.pt"), weights(run / "checkpoints" / "step_00000006.pt"))
    for step in (2, 4, 6):  # each evaluation's first episode, as a strip and a video
        names = sorted(p.name for p in (run / "eval" / f"step_{step:08d}").iterdir())
        assert len(names) == 2 and names[0].startswith("rollout_reach_000_") and names[1] == "strip_reach.png", names

    # Killed after a best at step 4 with the last checkpoint at step 2: the resume redoes step
    # 4's evaluation, so the best it claimed goes, and the redone evaluation sets it again.
    (run / "checkpoints" / "step_00000004.pt").unlink()
    (run / "checkpoints" / "step_00000006.pt").unlink()
    (run / "checkpoints" / "best.json").write_text(json.dumps({**best, "step": 4, "mean_success": 2.0}))
    train(resolve_config(algo="gcbc", debug=True, steps=4, data=str(store_dir), overrides=over), run, resume=True,
          progress=False)
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert best["step"] == 4 and best["mean_success"] <= 1.0  # not the dropped claim of 2.0
    assert same(weights(run / "checkpoints" / "best.pt"), weights(run / "checkpoints" / f"step_{best['step']:08d}.pt"))


def test_ctrl_c_checkpoints_the_step_it_finished(store_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "training.commands.train", "--data", str(store_dir), "--out", str(run), "--debug",
           "--steps", "100000", "--set", "checkpoint_every=100000", "--set", "num_threads=1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run / "metrics.csv").is_file() and rows(run / "metrics.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start logging"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ckpts = list((run / "checkpoints").glob("step_*.pt"))
    assert len(ckpts) == 1 and 5 <= int(ckpts[0].stem.split("_")[1]) < 100000
    assert "interrupted at step" in err and "--resume" in err


def test_init_from_starts_a_run_on_new_data_from_another_runs_weights_at_its_own_rate(store_dir, tmp_path):
    """Goal-conditioned fine-tuning: the source's network and weights, this run's data and learning rate."""
    source = resolve_config(algo="gcbc", debug=True, steps=6, data=str(store_dir), overrides=FAST)
    train(source, tmp_path / "source", progress=False)
    other_store = make_synthetic_store(tmp_path / "other", episodes=4, steps=10, seed=7)
    frozen = ["gcbc.lr=0", "network.feature_dim=16", *FAST]  # lr 0: the weights must stay the source's
    tuned = resolve_config(algo="gcbc", debug=True, steps=2, data=str(other_store),
                           overrides=[*frozen, f"init_from={tmp_path / 'source'}"])
    train(tuned, tmp_path / "tuned", progress=False)
    train(resolve_config(algo="gcbc", debug=True, steps=2, data=str(other_store), overrides=frozen), tmp_path / "fresh",
          progress=False)

    averaged = resolve_config(algo="gcbc", debug=True, steps=2, data=str(other_store),  # the source kept no average
                              overrides=[*frozen, "gcbc.ema_decay=0.9", f"init_from={tmp_path / 'source'}"])
    train(averaged, tmp_path / "averaged", progress=False)

    weights = {name: load_run(tmp_path / name).model.state_dict() for name in ("source", "tuned", "averaged")}
    assert weights["source"].keys() == weights["tuned"].keys() == weights["averaged"].keys()
    assert all(torch.equal(weights["source"][k], weights["tuned"][k]) for k in weights["source"])
    for k in weights["source"]:  # the acting weights: the average, started at the source's (k w + (1 - k) w rounds)
        torch.testing.assert_close(weights["averaged"][k], weights["source"][k], rtol=1e-6, atol=1e-7)
    assert load_run(tmp_path / "fresh").network.feature_dim == 16  # without init_from the command line's shape
    assert load_run(tmp_path / "tuned").network == load_run(tmp_path / "source").network
    assert load_run(tmp_path / "tuned").data_manifest_hash == Store.open(other_store).manifest_hash()

    wrong_algo = resolve_config(algo="gcivl", debug=True, steps=2, data=str(other_store),
                                overrides=[*FAST, f"init_from={tmp_path / 'source'}"])
    with pytest.raises(ConfigError, match="pass --algo gcbc"):
        train(wrong_algo, tmp_path / "wrong", progress=False)


def test_init_from_an_exported_mean_of_two_continues_both_members(store_dir, tmp_path):
    """A fresh checkout has the shipped models, not their runs: init_from takes the .onnx, its
    members come back exactly and train on together, with a fresh optimiser."""
    source = resolve_config(algo="gcbc", debug=True, steps=2, data=str(store_dir),
                            overrides=[*FAST, "precision=fp32", "gcbc.members=2", "network.feature_dim=16"])
    train(source, tmp_path / "source", progress=False)
    assert cli.main(["export", str(tmp_path / "source"), "-o", str(tmp_path / "ens.onnx")]) == 0
    frozen = [*FAST, "precision=fp32", "gcbc.lr=0"]  # lr 0: the weights must stay the model's
    tuned = resolve_config(algo="gcbc", debug=True, steps=2, data=str(store_dir),
                           overrides=[*frozen, f"init_from={tmp_path / 'ens.onnx'}"])
    train(tuned, tmp_path / "tuned", progress=False)
    run = load_run(tmp_path / "tuned")
    assert run.config["gcbc"]["members"] == 2 and run.network.feature_dim == 16  # the model's shape, not the defaults
    exported = load_run(tmp_path / "source").model.state_dict()
    assert exported.keys() == run.model.state_dict().keys()
    assert all(torch.equal(exported[k], run.model.state_dict()[k]) for k in exported)

    q_model = resolve_config(algo="am", debug=True, steps=2, data=str(store_dir),
                             overrides=[*FAST, f"init_from={tmp_path / 'ens.onnx'}"])
    with pytest.raises(ConfigError, match="an exported model continues as a cloned policy; pass --algo gcbc"):
        train(q_model, tmp_path / "wrong", progress=False)
    missing = resolve_config(algo="gcbc", debug=True, steps=2, data=str(store_dir),
                             overrides=[*FAST, f"init_from={tmp_path / 'absent.onnx'}"])
    with pytest.raises(ConfigError, match="absent.onnx"):
        train(missing, tmp_path / "absent", progress=False)


def test_runs_lists_each_runs_progress_state_and_best_evaluation(store_dir, tmp_path, capsys):
    from training.commands.runs import describe

    over = ["num_threads=1", "eval_every=2", "eval_episodes=1", "checkpoint_every=2", "log_every=2"]
    train(resolve_config(algo="gcbc", debug=True, steps=4, data=str(store_dir), overrides=over), tmp_path / "a",
          progress=False)
    train(resolve_config(algo="am", debug=True, steps=4, data=str(store_dir), overrides=FAST), tmp_path / "b",
          progress=False)
    config = (tmp_path / "b" / "config.yaml").read_text()  # as if it had been asked for 10 and killed at 4
    (tmp_path / "b" / "config.yaml").write_text(config.replace("steps: 4", "steps: 10"))
    for path in [tmp_path / "b" / "metrics.csv", *(tmp_path / "b" / "checkpoints").glob("*.pt")]:
        os.utime(path, (time.time() - 3600, time.time() - 3600))

    a, b = describe(tmp_path / "a"), describe(tmp_path / "b")
    best = json.loads((tmp_path / "a" / "checkpoints" / "best.json").read_text())
    assert (a["algo"], a["step"], a["steps"], a["state"]) == ("gcbc", 4, 4, "done")
    assert a["best_eval"]["step"] == best["step"] and a["last_eval"]["step"] == 4 and "loss_bc" in a["loss"]
    assert (b["algo"], b["step"], b["steps"]) == ("am", 4, 10) and b["state"] == "stopped (resume from step_00000004)"
    assert b["best_eval"] is None and "loss_td" in b["loss"] and b["updated_s_ago"] >= 3600

    capsys.readouterr()
    assert cli.main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["run", "algo", "data", "step", "state"]
    assert lines[1].startswith(str(tmp_path / "b")) and lines[2].startswith(str(tmp_path / "a"))  # most recent last
    assert cli.main(["runs", str(tmp_path / "nothing")]) == 1


def test_a_run_sharing_a_second_store_resumes_bit_for_bit_and_only_with_that_store(store_dir, tmp_path):
    shared = make_synthetic_store(tmp_path / "shared", episodes=5, steps=9, seed=3)

    def config(steps):
        return resolve_config(algo="gcbc", debug=True, steps=steps, data=str(store_dir),
                              overrides=["num_threads=1", "log_every=5", f"share_data={shared}", "share_fraction=0.25"])

    train(config(20), tmp_path / "straight", progress=False)
    train(config(10), tmp_path / "stopped", progress=False)
    train(config(20), tmp_path / "stopped", resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoints" / f"step_{20:08d}.pt", weights_only=True)
    b = torch.load(tmp_path / "stopped" / "checkpoints" / f"step_{20:08d}.pt", weights_only=True)
    assert a["share_manifest_hash"] == Store.open(shared).manifest_hash() != ""
    assert set(a["rng"][0]["sampler"]) == {"main", "shared"}
    for name, tensor in a["algorithm"]["policy"].items():
        assert torch.equal(tensor, b["algorithm"]["policy"][name]), f"policy.{name} differs after resume"

    alone = resolve_config(algo="gcbc", debug=True, steps=30, data=str(store_dir), overrides=["num_threads=1"])
    with pytest.raises(ValueError, match="resume needs the same shared store"):
        train(alone, tmp_path / "stopped", resume=True, progress=False)
    with pytest.raises(ConfigError, match="share_fraction"):
        check_config(replace(config(5), share_fraction=1.0))

    # the command line's --share-data is the same setting
    assert cli.main(["train", "--data", str(store_dir), "--share-data", str(shared), "--algo", "gcbc", "--debug",
                     "--steps", "2", "--set", "num_threads=1", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    saved = torch.load(tmp_path / "cli" / "checkpoints" / f"step_{2:08d}.pt", weights_only=True)
    assert saved["config"]["share_data"] == str(shared.resolve()) and saved["share_manifest_hash"] == a["share_manifest_hash"]
