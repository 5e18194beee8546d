"""Export a trained Q-function to the ONNX contract of design section 6, with its model card.

The legacy TorchScript exporter (`dynamo=False`) at opset 17 writes one self-contained
file; the dynamo exporter would put the weights in a separate `.onnx.data` file, which is
easy to lose when a model is copied to a robot. The card (robot_app.policy.ModelCard)
records the graph's sha256, so the runtime refuses a graph that was changed afterwards.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robot_app.cem import CEMSettings
from robot_app.policy import INPUT_NAMES, OPSET, OUTPUT_NAME, ModelCard, sha256_file
from robot_app.spec import (
    ACTION_DIM,
    DEFAULT_SCALING,
    EE_HEIGHT_SCALE_M,
    ActionScaling,
    RobotState,
    proprio_width,
)

DYNAMIC_AXES = {
    "image": {0: "batch"},
    "goal": {0: "batch"},
    "gripper": {0: "batch"},
    "actions": {0: "batch", 1: "samples"},
    OUTPUT_NAME: {0: "batch", 1: "samples"},
}


def example_inputs(image_size: int, batch: int = 2, samples: int = 3, seed: int = 0, proprio_dim: int = 1) -> tuple[torch.Tensor, ...]:
    """Random inputs in the contract's dtypes: (image, goal, gripper (B,P) proprio, actions)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, image_size, image_size, 3)
    return (
        torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
        torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
        torch.rand((batch, proprio_dim), generator=g),
        torch.rand((batch, samples, ACTION_DIM), generator=g) * 2 - 1,
    )


def _card_dict(card_fields: dict, image_size: int, onnx_path: Path) -> dict:
    """Fill the fields the exporter knows; the caller supplies provenance (algo, steps, hash...)."""
    d = dict(card_fields)
    cem = d.get("cem", CEMSettings())
    scaling = d.get("action_scaling", DEFAULT_SCALING)
    d["cem"] = cem.to_dict() if isinstance(cem, CEMSettings) else dict(cem)
    d["action_scaling"] = scaling.to_dict() if isinstance(scaling, ActionScaling) else dict(scaling)
    network = d.get("network", {})
    d["network"] = network.to_dict() if hasattr(network, "to_dict") else dict(network)
    d.setdefault("algo", "unknown")
    d.setdefault("training_steps", 0)
    d.setdefault("data_manifest_hash", "unknown")
    d.update(image_size=image_size, opset=OPSET, onnx_file=onnx_path.name, onnx_sha256=sha256_file(onnx_path))
    return d


def export_onnx(model: nn.Module, path: str | os.PathLike, image_size: int, card_fields: dict) -> tuple[Path, Path]:
    """Write `path` (.onnx) and its card (.json beside it); returns both paths.

    `model(image u8 NHWC, goal u8 NHWC, gripper (B,P) proprio, actions (B,N,5)) -> q (B,N)`;
    P is 2 when `card_fields["network"]` has height_input (the card says so too).
    card_fields: algo, training_steps, data_manifest_hash, cem, action_scaling, network,
    source, evaluation (missing provenance is written as "unknown").
    """
    onnx_path = Path(path)
    if onnx_path.suffix != ".onnx":
        raise ValueError(f"{onnx_path}: the exported model's file name must end in .onnx")
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary name and moved into place, so a reader never sees half a graph.
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                model, example_inputs(image_size, proprio_dim=_proprio_dim(card_fields)), str(tmp), input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME], dynamic_axes=DYNAMIC_AXES, opset_version=OPSET, dynamo=False,
            )
        _check_self_contained(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is meant to be shared
        os.replace(tmp, onnx_path)
    finally:
        model.train(was_training)
        if tmp.exists():
            tmp.unlink()
    card = ModelCard.from_dict(_card_dict(card_fields, image_size, onnx_path), where=str(onnx_path))
    card_path = onnx_path.with_suffix(".json")
    card.write(card_path)
    return onnx_path, card_path


def _proprio_dim(card_fields: dict) -> int:
    network = card_fields.get("network", {})
    network = network.to_dict() if hasattr(network, "to_dict") else dict(network)
    return proprio_width(bool(network.get("height_input", False)))


def _check_self_contained(path: Path) -> None:
    """Refuse a graph that keeps its weights in another file (it would break when copied)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise RuntimeError(f"{path}: exporter wrote external weights ({external[:3]}...); expected one self-contained file")
    onnx.checker.check_model(model)


def check_parity(model: nn.Module, policy, image_size: int, samples: int = 16, seed: int = 0) -> float:
    """Largest |q_torch - q_onnxruntime| on random inputs (batch 1, `samples` actions)."""
    p = policy.card.proprio_dim
    image, goal, gripper, actions = example_inputs(image_size, batch=1, samples=samples, seed=seed, proprio_dim=p)
    model.eval()
    with torch.no_grad():
        q_torch = model(image, goal, gripper, actions)[0].numpy()
    state = RobotState(float(gripper[0, 0]), float(gripper[0, 1]) * EE_HEIGHT_SCALE_M) if p == 2 else float(gripper[0, 0])
    q_ort = policy.q_values(image[0].numpy(), goal[0].numpy(), state, actions[0].numpy())
    return float(np.max(np.abs(q_torch - q_ort)))


def export_run(run_dir: str | os.PathLike, out_path: str | os.PathLike, checkpoint: str = "latest") -> tuple[Path, Path]:
    """Export a training run's checkpoint (training.runner.load_run) with its provenance."""
    from training.runner import load_run

    run = load_run(run_dir, checkpoint=checkpoint)
    return export_loaded_run(run, out_path, source=f"{Path(run_dir).resolve()}@{checkpoint}")


def export_loaded_run(run, out_path: str | os.PathLike, source: str = "") -> tuple[Path, Path]:
    """Export an already loaded run (training.runner.LoadedRun)."""
    fields = {
        "algo": card_algo(run),
        "training_steps": int(run.step),
        "data_manifest_hash": str(run.data_manifest_hash or "unknown"),
        "cem": run.cem,
        "network": run.network,
        "action_scaling": _run_scaling(run.config),
        "source": source,
    }
    return export_onnx(run.model, out_path, run.network.image_size, fields)


def mean_of_runs(runs: list, sources: list[str]) -> tuple[object, str]:
    """Several cloned-policy runs (training.runner.LoadedRun) as one whose policy is their mean action.

    They must be cloned policies (gcbc, gcivl) of one store with the same inputs and action
    scaling, since the card can only say one of each: all goal-conditioned, or all fine-tuned
    task models pursuing one task goal image (fine-tuned from different pretraining seeds, say).
    """
    from dataclasses import replace

    from training.gcbc import BCScorer, MeanPolicy

    first = runs[0]
    for run, source in zip(runs, sources, strict=True):
        if not hasattr(run.model, "policy"):
            raise ValueError(f"{source}: a {run.algo!r} Q-function run; only cloned policies (gcbc, gcivl) can be averaged")
        if run.finetuned != first.finetuned:
            raise ValueError(f"{source} and {sources[0]}: a fine-tuned task model and a goal-conditioned policy; "
                             "average runs of one kind")
        if run.data_manifest_hash != first.data_manifest_hash or _run_scaling(run.config) != _run_scaling(first.config):
            raise ValueError(f"{source}: trained on another store (or action scaling) than {sources[0]}")
        if run.finetuned and not torch.equal(run.task_goal, first.task_goal):
            raise ValueError(f"{source}: fine-tuned toward another task goal image than {sources[0]}")
    scorer = BCScorer(MeanPolicy([r.model.policy for r in runs]), first.model.sigma).eval()
    return replace(first, model=scorer), "; ".join(sources)


def card_algo(run) -> str:
    """The run's algo for its card, with -meanN when the model acts with the mean of N cloned policies."""
    from training.gcbc import BCPolicy

    n = sum(isinstance(m, BCPolicy) for m in run.model.modules())
    return f"{run.algo}-mean{n}" if n > 1 else run.algo


def _run_scaling(config: dict) -> ActionScaling:
    """The run's action scaling if its config records one, else the default it was trained with."""
    scaling = config.get("action_scaling") if isinstance(config, dict) else None
    return ActionScaling.from_dict(scaling) if isinstance(scaling, dict) else DEFAULT_SCALING


def names_a_model(where: str | os.PathLike) -> bool:
    """Whether a --from / init_from names an exported model (a .onnx/.json path, or a bare name
    in models/ that is no directory here) rather than a run directory or a checkpoint."""
    where = Path(where)
    return where.suffix in (".onnx", ".json") or (where.parent == Path(".") and not where.exists())


def import_cloned_model(path: str | os.PathLike, parity_atol: float = 1e-4):
    """An exported cloned-policy model (gcbc, gcivl or their -meanN) back as a run: (TrainConfig, checkpoint).

    Why: a user has the shipped models/*.onnx, not the runs that made them, and fine-tuning
    (`robot-app finetune --mode bc --from models/gcbc_grasp.onnx`) needs torch weights. The
    legacy exporter keeps every weight of a BCScorer as an initializer under its module
    name (`policy.encoder.convs.0.weight`, or `policy.members.N....` for an ensemble),
    so the policy is rebuilt exactly; the rebuilt scorer must then give the graph's own q
    (onnxruntime) on random inputs, or the model is refused: a graph this code did not
    write (another score width, another head) never fine-tunes silently wrong.

    Refused: Q-function models (their ONNX holds one of AM's four networks, not the rest
    of a run) and fine-tuned task models (start from their run directory instead).
    """
    import onnx
    from onnx import numpy_helper

    from robot_app.policy import Policy, PolicyLoadError, resolve_model
    from training.config import to_dict
    from training.gcbc import GCBCConfig, policy_from_state
    from training.networks import NetworkConfig
    from training.runner import CHECKPOINT_FORMAT, TrainConfig

    onnx_path, card_path = resolve_model(path)
    card = ModelCard.read(card_path)
    if card.q_means_reached or card.task:
        what = f"a fine-tuned {card.task!r} task model" if card.task else f"a Q-function ({card.algo!r}) model"
        raise ValueError(f"{onnx_path}: {what}; only goal-conditioned cloned policies (gcbc, gcivl) can be fine-tuned "
                         "from an exported model (pass the run directory instead)")
    policy = Policy.load(card_path, split=False)  # checks the graph against its card (sha256, inputs)
    weights = {t.name.removeprefix("policy."): torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in onnx.load(str(onnx_path)).graph.initializer if t.name.startswith("policy.")}
    members = len({k.split(".")[1] for k in weights if k.startswith("members.")}) or 1
    first = "members.0." if members > 1 else ""
    layers = sorted(int(k.split(".")[-2]) for k in weights if k.startswith(f"{first}head.") and k.endswith(".weight"))
    outputs = weights[f"{first}head.{layers[-1]}.weight"].shape[0] if layers else 0
    if not outputs or outputs % ACTION_DIM:
        raise ValueError(f"{onnx_path}: its weights are not a cloned policy's (no action head of {ACTION_DIM} outputs)")
    bins = outputs // ACTION_DIM if outputs > ACTION_DIM else 0
    network = NetworkConfig.from_dict(card.network)
    gcbc = GCBCConfig(members=members, action_bins=bins)
    state = {"policy": weights}
    try:
        scorer = policy_from_state(state, network, gcbc)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{onnx_path}: its weights do not fit the network its card describes ({exc})") from None
    error = check_parity(scorer, policy, card.image_size)
    if not error <= parity_atol:
        raise PolicyLoadError(f"{onnx_path}: rebuilt in torch it scores {error:.2e} away from its graph; "
                              "not a cloned policy this version can fine-tune")
    config = TrainConfig(algo="gcbc", network=network, cem=card.cem, gcbc=gcbc)
    checkpoint = {"format": CHECKPOINT_FORMAT, "algo": "gcbc", "step": card.training_steps, "config": to_dict(config),
                  "data_manifest_hash": card.data_manifest_hash, "algorithm": state}
    return config, checkpoint
