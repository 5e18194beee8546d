"""ONNX export: one self-contained file with the contract's inputs, torch/onnxruntime parity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from robot_app.cem import CEMSettings, cem_maximize, draw_noise
from robot_app.policy import OPSET, Policy, sha256_file
from robot_app.spec import ActionScaling
from training.export import example_inputs, export_onnx
from training.networks import NetworkConfig, QNetwork

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=["flat", "keypoints"])
def exported(tmp_path_factory, request):
    """The default Q-network and the spatial-softmax one: both must meet the whole ONNX contract."""
    torch.manual_seed(0)
    model = QNetwork(NetworkConfig(encoder=request.param)).eval()
    out = tmp_path_factory.mktemp("export")
    fields = {"algo": "am", "training_steps": 123, "data_manifest_hash": "abc123", "cem": CEMSettings(samples=32, elites=4),
              "action_scaling": ActionScaling(max_linear_speed=0.1)}
    onnx_path, card_path = export_onnx(model, out / "tiny.onnx", 64, fields)
    return model, onnx_path, card_path


def test_export_writes_one_self_contained_file_and_its_card(exported):
    _, onnx_path, card_path = exported
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["tiny.json", "tiny.onnx"]
    model = onnx.load(str(onnx_path), load_external_data=False)
    assert not [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == OPSET
    card = json.loads(card_path.read_text())
    assert card["onnx_sha256"] == sha256_file(onnx_path)
    assert card["image_size"] == 64 and card["algo"] == "am" and card["training_steps"] == 123
    assert card["cem"]["samples"] == 32 and card["action_scaling"]["max_linear_speed"] == 0.1
    assert card["data_manifest_hash"] == "abc123" and card["onnx_file"] == "tiny.onnx"


def test_graph_has_named_inputs_with_dynamic_batch_and_samples(exported):
    _, onnx_path, _ = exported
    graph = onnx.load(str(onnx_path)).graph
    elem = onnx.TensorProto
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert list(dims) == ["image", "goal", "gripper", "actions"]
    assert types == {"image": elem.UINT8, "goal": elem.UINT8, "gripper": elem.FLOAT, "actions": elem.FLOAT}
    assert dims["image"][1:] == [64, 64, 3] and dims["gripper"][1:] == [1] and dims["actions"][2:] == [5]
    assert isinstance(dims["image"][0], str) and all(isinstance(d, str) for d in dims["actions"][:2])
    assert [o.name for o in graph.output] == ["q"]
    # Shapes other than the export example's run: B and N really are dynamic.
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch, samples in ((1, 64), (5, 3)):
        image, goal, gripper, actions = (t.numpy() for t in example_inputs(64, batch, samples, seed=batch))
        (q,) = session.run(["q"], {"image": image, "goal": goal, "gripper": gripper, "actions": actions})
        assert q.shape == (batch, samples) and q.dtype == np.float32


def test_torch_and_onnxruntime_q_agree(exported):
    model, onnx_path, _ = exported
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for seed in range(3):
        inputs = example_inputs(64, batch=4, samples=32, seed=seed)
        with torch.no_grad():
            q_torch = model(*inputs).numpy()
        (q_ort,) = session.run(["q"], dict(zip(["image", "goal", "gripper", "actions"], (t.numpy() for t in inputs), strict=True)))
        assert np.abs(q_torch - q_ort).max() < 1e-4
        assert q_torch.std() > 1e-4  # the inputs really vary the output


def _torch_cem(model, image, goal, gripper, settings, noise):
    """Training's torch CEM, encoding once and scoring with the head, on the given noise."""
    from training.cem import cem_maximize_torch

    with torch.no_grad():
        features = model.encode(image, goal)
        best, best_q = cem_maximize_torch(
            lambda a: torch.sigmoid(model.head_logits(features, gripper, a)), 1, settings, "cpu",
            uniform=torch.from_numpy(noise[0]), normal=torch.from_numpy(noise[1]),
        )
    return best[0].numpy(), float(best_q[0])


def _numpy_cem_over_torch(model, image, goal, gripper, settings, noise):
    def score(actions):
        with torch.no_grad():
            return model(image, goal, gripper, torch.from_numpy(actions)).numpy()

    best, _ = cem_maximize(score, settings, *noise)
    return best[0]


def test_cem_picks_the_same_action_in_torch_and_in_the_runtime(exported):
    """Same noise -> same action: numpy CEM over onnxruntime vs training's torch CEM over torch."""
    pytest.importorskip("training.cem")
    model, onnx_path, _ = exported
    policy = Policy.load(onnx_path)
    assert policy.split and policy._fused is not None  # the fast path holds for either trunk
    settings = policy.card.cem
    for trial in range(4):
        image, goal, gripper, _ = example_inputs(64, batch=1, samples=1, seed=10 + trial)
        policy.reseed(trial)  # act draws its noise first thing from the seeded generator
        noise = draw_noise(np.random.default_rng(trial), 1, settings)
        action_rt, q_rt = policy.act(image[0].numpy(), goal[0].numpy(), float(gripper[0, 0]))
        action_torch, q_torch = _torch_cem(model, image, goal, gripper, settings, noise)
        np.testing.assert_allclose(action_rt, action_torch, atol=1e-6)
        assert abs(q_rt - q_torch) < 1e-4
        # numpy CEM over torch's Q picks it too: parity at the level of CEM, whatever runs it.
        np.testing.assert_allclose(_numpy_cem_over_torch(model, image, goal, gripper, settings, noise), action_rt, atol=1e-6)


def test_a_binned_gcbc_scorer_exports_with_its_argmax(tmp_path):
    """The discrete-action GCBC head (argmax over bins) runs in onnxruntime as in torch, and CEM finds its action."""
    from training.gcbc import BCPolicy, BCScorer

    torch.manual_seed(2)
    scorer = BCScorer(BCPolicy(NetworkConfig(channels=(8, 8, 8, 8), feature_dim=32, head_hidden=32), action_bins=11), 0.25).eval()
    onnx_path, _ = export_onnx(scorer, tmp_path / "bins.onnx", 64, {"algo": "gcbc", "cem": CEMSettings(samples=64, elites=6)})
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(64, batch=3, samples=16, seed=4)
    with torch.no_grad():
        q_torch = scorer(*inputs).numpy()
        mode = scorer.policy(*inputs[:3])[0].numpy()
    (q_ort,) = session.run(["q"], dict(zip(["image", "goal", "gripper", "actions"], (t.numpy() for t in inputs), strict=True)))
    assert np.abs(q_torch - q_ort).max() < 1e-5 and q_torch.std() > 1e-4
    assert np.allclose(mode * 5, np.round(mode * 5))  # on the 11-bin grid -1, -0.8, ..., 1
    image, goal, gripper, _ = (t.numpy() for t in inputs)
    action, _ = Policy.load(onnx_path).act(image[0], goal[0], float(gripper[0, 0]))
    assert np.abs(action[:4] - mode[:4]).max() < 0.2


def test_export_refuses_a_path_without_onnx_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(QNetwork(), tmp_path / "model.bin", 64, {})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real training run of a few debug-sized steps (two checkpoints) on a random store."""
    runner = pytest.importorskip("training.runner")
    from robot_app.store import write_store

    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    episodes = [
        {"images": rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8), "actions": rng.uniform(-1, 1, (10, 5)).astype(np.float32),
         "gripper": np.zeros(10, np.float32), "timestamps": np.arange(10) * 0.1}
        for _ in range(4)
    ]
    write_store(root / "store", episodes)
    config = runner.resolve_config(algo="am", debug=True, steps=4, data=str(root / "store"),
                                   overrides=["checkpoint_every=2", "batch_size=4", "num_threads=1", "precision=fp32"])
    runner.train(config, root / "run", progress=False)
    return root / "run"


def test_export_command_writes_a_model_that_matches_the_run(tiny_run, tmp_path, capsys):
    from robot_app.cli import main as robot_app
    from training.runner import load_run

    out = tmp_path / "models" / "tiny.onnx"
    assert robot_app(["export", str(tiny_run), "-o", str(out)]) == 0
    assert "max |q_torch - q_onnx|" in capsys.readouterr().out
    policy = Policy.load(out)
    run = load_run(tiny_run)
    card = policy.card
    assert card.algo == "am" and card.training_steps == run.step == 4 and card.data_manifest_hash == run.data_manifest_hash
    assert card.cem == run.cem and NetworkConfig.from_dict(card.network) == run.network and card.source.endswith("@latest")
    assert robot_app(["export", str(tiny_run), "-o", str(tmp_path / "x.bin")]) == 2


def test_several_cloned_runs_export_as_one_model_acting_with_their_mean_action(tiny_run, tmp_path, capsys):
    from robot_app.cli import main as robot_app
    from training import runner

    store = tiny_run.parent / "store"
    runs = []
    for seed in (0, 1):
        config = runner.resolve_config(algo="gcbc", debug=True, steps=2, data=str(store),
                                       overrides=[f"seed={seed}", "batch_size=4", "num_threads=1", "precision=fp32"])
        runner.train(config, tmp_path / f"bc{seed}", progress=False)
        runs.append(tmp_path / f"bc{seed}")
    out = tmp_path / "mean.onnx"
    assert robot_app(["export", *map(str, runs), "-o", str(out)]) == 0  # the command checks ONNX against the torch mean
    policy = Policy.load(out)
    assert policy.card.algo == "gcbc-mean2" and not policy.card.q_means_reached and policy.card.source.count("@latest") == 2

    # the exported action is the mean of the two policies' actions, which is neither one's
    members = [runner.load_run(r).model.policy for r in runs]
    image, goal, gripper, _ = example_inputs(64, batch=1, samples=1, seed=3)
    with torch.no_grad():
        actions = [m(image, goal, gripper)[0].numpy() for m in members]
    mean = np.mean(actions, axis=0)
    state = float(gripper[0, 0])
    best = max(np.linspace(-0.3, 0.3, 7), key=lambda d: policy.q_values(image[0].numpy(), goal[0].numpy(), state,
                                                                          (mean + d)[None].astype(np.float32))[0])
    assert best == pytest.approx(0.0) and np.abs(actions[0] - actions[1]).max() > 1e-3

    assert robot_app(["export", str(runs[0]), str(tiny_run), "-o", str(tmp_path / "bad.onnx")]) == 2  # an AM run
    assert "only cloned policies" in capsys.readouterr().err


def test_eval_command_on_a_run_with_all_checkpoints(tiny_run, tmp_path):
    from robot_app.cli import main as robot_app

    out = tmp_path / "report"
    rc = robot_app(["eval", "--policy", str(tiny_run), "--suite", "reach,grasp", "--episodes", "1", "--max-steps", "3",
                    "--all-checkpoints", "--expert", "--out", str(out), "--no-progress"])
    assert rc == 0
    results = json.loads((out / "eval.json").read_text())
    assert [c["step"] for c in results["checkpoints"]] == [2, 4] and results["training_step"] == 4
    # --expert: every checkpoint also scored along the scripted expert's path, in the JSON and the report.
    for judged in [results] + results["checkpoints"]:
        grasp = judged["expert_agreement"]["families"]["grasp"]
        assert grasp["expert_success"] == 1.0 and grasp["gripper_switches"]["n"] == 1
        assert list(grasp["phases"]) == ["approach", "descend", "close", "lift"]
    assert "gripper switches on time" in (out / "eval.md").read_text()
    assert results["families"]["reach"]["n"] == 1 and results["families"]["reach"]["mean_steps"] <= 3
    assert (out / "success_vs_step.png").stat().st_size > 1000 and (out / "strip_reach.png").is_file()


def test_open_close_data_make_a_model_that_opens_or_closes(tmp_path):
    """The store's open/close-only commands travel: checkpoint, card, runtime action and command."""
    from robot_app.cli import main as robot_app
    from robot_app.store import Store, write_store
    from training.runner import load_run, make_act_fn, resolve_config, train

    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (4, 10, 5)).astype(np.float32)
    actions[..., 4] = np.where(actions[..., 4] > 0, 1.0, -1.0)
    episodes = [{"images": rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8), "actions": a,
                 "gripper": (a[:, 4] > 0).astype(np.float32), "timestamps": np.arange(10) * 0.1} for a in actions]
    write_store(tmp_path / "store", episodes)
    store = Store.open(tmp_path / "store")
    assert store.gripper_is_binary and store.action_scaling()["binary_gripper"] is True
    config = resolve_config(algo="gcbc", debug=True, steps=2, data=str(tmp_path / "store"),
                            overrides=["batch_size=4", "num_threads=1", "precision=fp32"])
    train(config, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    scaling = ActionScaling.from_dict(run.config["action_scaling"])
    assert scaling.binary_gripper
    image = episodes[0]["images"][0]
    assert abs(make_act_fn(run.model, run.cem, scaling=scaling)(image, image, 0.0)[0][4]) == 1.0

    assert robot_app(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m.onnx")]) == 0
    policy = Policy.load(tmp_path / "m.onnx")
    assert policy.card.action_scaling.binary_gripper
    grips = [policy.act(image, goal, g)[0][4] for image, goal in zip(episodes[1]["images"][:5], episodes[2]["images"][:5], strict=True)
             for g in (0.0, 1.0)]
    assert set(grips) <= {-1.0, 1.0}
    assert policy.card.action_scaling.to_command(np.array([0, 0, 0, 0, 0.2]))[2] == 1.0  # the driver gets closed, not 0.6


def test_a_store_with_any_half_way_grip_is_not_binary(tmp_path):
    from robot_app.store import Store, write_store

    actions = np.full((6, 5), -1.0, np.float32)
    actions[3, 4] = 0.4  # one command between open and closed
    write_store(tmp_path / "s", [{"images": np.zeros((6, 64, 64, 3), np.uint8), "actions": actions,
                                  "gripper": np.zeros(6, np.float32), "timestamps": np.arange(6) * 0.1}])
    store = Store.open(tmp_path / "s")
    assert not store.gripper_is_binary and store.action_scaling()["binary_gripper"] is False
    scaling = ActionScaling(binary_gripper=False)
    assert scaling.to_command(actions[3])[2] == pytest.approx(0.7) and scaling.settle(actions[3])[4] == pytest.approx(0.4)


@pytest.fixture(scope="module")
def height_model(tmp_path_factory):
    """A Q-network that also takes the end effector height, exported."""
    torch.manual_seed(1)
    model = QNetwork(NetworkConfig(height_input=True)).eval()
    out = tmp_path_factory.mktemp("height")
    fields = {"algo": "am", "cem": CEMSettings(samples=32, elites=4), "network": model.config}
    onnx_path, _ = export_onnx(model, out / "h.onnx", 64, fields)
    return model, onnx_path


def test_a_height_input_model_takes_the_robot_state_on_every_runtime_path(height_model):
    from robot_app.spec import RobotState
    from training.export import check_parity

    model, onnx_path = height_model
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(onnx_path)).graph.input}
    assert dims["gripper"][1:] == [2]
    split, whole = Policy.load(onnx_path), Policy.load(onnx_path, split=False)
    assert split.card.height_input and split.card.proprio_dim == 2 and split.split and split._fused is not None
    assert check_parity(model, split, 64) < 1e-4
    rng = np.random.default_rng(0)
    image, goal = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    actions = rng.uniform(-1, 1, (16, 5)).astype(np.float32)
    low, high = (whole.q_values(image, goal, RobotState(0.0, z), actions) for z in (0.02, 0.25))
    assert np.abs(low - high).max() > 1e-5  # the height really enters Q
    for state in (RobotState(0.0, 0.02), RobotState(1.0, 0.3)):
        split.reseed(3)
        whole.reseed(3)
        a_split, q_split = split.act(image, goal, state)
        a_whole, q_whole = whole.act(image, goal, state)
        np.testing.assert_allclose(a_split, a_whole, atol=1e-5)
        assert q_split == pytest.approx(q_whole, abs=1e-5)
    with pytest.raises(ValueError, match="end effector's height"):
        split.act(image, goal, 0.0)
    with pytest.raises(ValueError, match="ee_height"):
        split.act(image, goal, RobotState(0.0, float("nan")))


def test_a_card_with_a_non_boolean_height_input_is_refused(height_model, tmp_path):
    import shutil

    from robot_app.policy import PolicyLoadError

    _, onnx_path = height_model
    shutil.copy(onnx_path, tmp_path / "h.onnx")
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    card["network"]["height_input"] = "yes"
    (tmp_path / "h.json").write_text(json.dumps(card))
    with pytest.raises(PolicyLoadError, match="height_input"):
        Policy.load(tmp_path / "h.onnx")
