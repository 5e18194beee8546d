"""The training run: config, loop, metrics, checkpoints, exact resume, DDP, evaluation hook.

A run directory holds everything about one run:
    config.yaml               the resolved, locked TrainConfig
    metrics.csv, curve.png    losses, Q means, positives and updates/s against the step
    checkpoints/step_*.pt     written atomically (tmp + os.replace), the last few kept
    eval.csv, success_vs_step.png   when eval_every > 0, with each evaluation's picture
    eval/step_*/              strips and rollout videos, and
    checkpoints/best.pt, best.json   the weights of the evaluation with the highest mean success
A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
torch.load(weights_only=True); it includes the optimiser, the target networks, the step
and every random state (numpy sampler, torch generators, per DDP process), so `--resume`
after a kill continues bit for bit where the uninterrupted run would be.

DDP: under torchrun every process samples its own share of the batch with its own seed
and the gradients are averaged with one all-reduce of the flattened gradients before
each optimiser step (what DistributedDataParallel's reducer does; done by hand because an
AM update runs the networks' heads several times outside one forward call: CEM targets
and negatives). Replicas are checked identical (a digest of every parameter) at each
checkpoint.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_app.cem import CEMSettings, draw_noise
from robot_app.spec import DEFAULT_SCALING, ActionScaling, check_image, proprio_vector
from robot_app.store import Store
from training import am, gcbc, gcivl
from training.am import AMConfig
from training.augment import random_hue_aligned, random_shift, random_shift_aligned
from training.cem import cem_maximize_torch
from training.config import ConfigError, from_dict, load_yaml, merge, parse_override, save_yaml, to_dict
from training.device_step import IMAGE_KEYS, DeviceFeed, DeviceStep
from training.gcbc import GCBCConfig
from training.gcivl import GCIVLConfig
from training.networks import NetworkConfig, QNetwork
from training.sampler import GoalSampler, MixedSampler, SamplerConfig

CHECKPOINT_FORMAT = 1
ALGOS = ("am", "am-nonneg", "am-nochain", "gcbc", "gcivl")
CLONING = ("gcbc", "gcivl")  # algorithms whose model is a cloned policy (a BCPolicy), not a Q-function
# Presets: an algorithm name is AM with one switch flipped, applied over the YAML.
PRESETS: dict[str, dict] = {
    "am": {},
    "am-nonneg": {"am": {"negatives": False}},
    "am-nochain": {"am": {"chaining": False}},
    "gcbc": {},
    "gcivl": {},
}
# --debug: a whole run in seconds on a laptop, every code path still taken (robomimic style).
DEBUG: dict = {
    "steps": 40,
    "batch_size": 16,
    "log_every": 5,
    "checkpoint_every": 20,
    "eval_episodes": 1,
    "network": {"channels": [8, 16, 16, 16], "feature_dim": 32, "head_hidden": 32},
    "cem": {"samples": 16, "elites": 4, "iterations": 2},
    "am": {"neg_candidates": 8, "neg_count": 2, "target_cem": {"samples": 16, "elites": 4, "iterations": 2}},
}


@dataclass(frozen=True)
class TrainConfig:
    algo: str = "am"  # am | am-nonneg | am-nochain | gcbc | gcivl
    data: str = ""  # training store directory (`robot-app dataset build`)
    steps: int = 100_000  # gradient updates in total
    batch_size: int = 256  # transitions per update, summed over DDP processes
    seed: int = 0  # networks, sampling, augmentation, CEM; DDP process r samples with seed + 1000 r
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    num_threads: int = 0  # torch CPU threads per process; 0 = this machine's cores / processes
    precision: str = "bf16"  # fp32 | bf16 (autocast on convs and matmuls; losses in fp32)
    channels_last: bool = True  # conv memory layout; false = plain NCHW (the speed benchmark's baseline)
    optimizer_foreach: bool = True  # Adam updates all tensors per op (same maths; torch's CPU default loops per tensor)
    data_on_device: bool = True  # on a GPU: the store is copied to GPU memory once and batches gathered there (training/device_step.py)
    cuda_graph: bool = True  # on a GPU with data_on_device, single process: each update replays one captured CUDA graph
    augment_pad: int = 4  # random shift of current, next and goal images by up to this many pixels; 0 = off
    augment_aligned: bool = False  # one shift per sample for all its images; measured worse for AM (BENCHMARKS.md)
    augment_hue: float = 0.0  # turn each sample's colours by one random hue within +-this x 180 degrees (training/augment.py); 0 = off
    log_every: int = 100  # updates between metrics.csv rows
    checkpoint_every: int = 2000  # updates between checkpoints (and one at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept; older ones deleted
    eval_every: int = 0  # updates between evaluations on the sim goal suites; 0 = off (slow on CPU)
    eval_families: tuple[str, ...] = ("reach",)  # goal families evaluated (sim_worlds.goals)
    eval_episodes: int = 10  # episodes a family per evaluation
    eval_seed: int = 0  # fixed seed of the evaluation episodes
    share_data: str = ""  # a second store (the pretraining play) that keeps share_fraction of every batch: data sharing for a continuation
    share_fraction: float = 0.5  # of each batch, from share_data when it is given (training/sampler.py MixedSampler)
    init_from: str = ""  # a run (its latest checkpoint), a .pt checkpoint or an exported cloned model to start from: goal-conditioned fine-tuning on new data
    sampler: SamplerConfig = SamplerConfig()  # hindsight and chained goals
    network: NetworkConfig = NetworkConfig()  # Q-network / BC trunk sizes
    cem: CEMSettings = CEMSettings()  # the policy's CEM: evaluation here and in the exported model card
    am: AMConfig = AMConfig()  # Actionable Models (am, am-nonneg, am-nochain)
    gcbc: GCBCConfig = GCBCConfig()  # goal-conditioned behaviour cloning
    gcivl: GCIVLConfig = GCIVLConfig()  # behaviour cloning weighted by a learned goal value (training/gcivl.py)


def resolve_config(
    yaml_path: str | os.PathLike | None = None,
    algo: str | None = None,
    overrides: list[str] = (),
    debug: bool = False,
    steps: int | None = None,
    data: str | None = None,
    base: dict | None = None,
) -> TrainConfig:
    """defaults < base (a saved config) < YAML < algo preset < --debug < --set overrides < --steps/--data."""
    values = dict(base or {})
    if yaml_path:
        values = merge(values, load_yaml(yaml_path))
    algo = algo or values.get("algo", "am")
    if algo not in PRESETS:
        raise ConfigError(f"algo {algo!r}: expected one of {list(ALGOS)}")
    values = merge(values, {"algo": algo, **PRESETS[algo]})
    if debug:
        values = merge(values, DEBUG)
    for text in overrides:
        values = merge(values, parse_override(text))
    if steps is not None:
        values["steps"] = steps
    if data is not None:
        values["data"] = str(data)
    config = from_dict(TrainConfig, values)
    check_config(config)
    return config


def check_config(c: TrainConfig) -> None:
    if c.algo not in PRESETS:
        raise ConfigError(f"algo {c.algo!r}: expected one of {list(ALGOS)}")
    if c.algo not in CLONING:
        flags = {"negatives": c.am.negatives, "chaining": c.am.chaining}
        expected = {"negatives": True, "chaining": True, **PRESETS[c.algo].get("am", {})}
        if flags != expected:
            raise ConfigError(f"algo {c.algo} means am.negatives={expected['negatives']}, am.chaining={expected['chaining']}; "
                              f"the config has {flags}: choose the ablation with --algo (am-nonneg, am-nochain)")
    for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name}={getattr(c, name)}: must be >= 1")
    if c.precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision={c.precision!r}: expected fp32 or bf16")
    if c.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device={c.device!r}: expected auto, cpu or cuda")
    check_augment_hue(c.augment_hue)
    if c.share_data and not 0.0 < c.share_fraction < 1.0:
        raise ConfigError(f"share_fraction={c.share_fraction}: the share of each batch from share_data, in (0, 1)")


def check_augment_hue(value: float) -> None:
    """augment_hue, in `train` and `finetune` alike, is a fraction of the half colour wheel."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"augment_hue={value}: a fraction of the half colour wheel, in [0, 1]")


def effective_sampler(c: TrainConfig) -> SamplerConfig:
    """GCBC, GCIVL and am-nochain never chain: chained goals were not reached by the logged action."""
    if c.algo in CLONING or not c.am.chaining:
        return replace(c.sampler, p_chain=0.0)
    return c.sampler


# ---------------------------------------------------------------- distributed


@dataclass
class Distributed:
    """This process's place in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls, use_cuda: bool) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        return cls(dist.get_rank(), world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, grads: list[torch.Tensor]) -> None:
        """One all-reduce of all gradients flattened together, then divide by the world size."""
        if self.world_size == 1:
            return
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world_size
        for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            g.copy_(synced)

    def broadcast_modules(self, modules) -> None:
        if self.world_size == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for module in modules:
                for t in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(t.data, src=0)

    def gather(self, obj: Any) -> list:
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self, finished: bool = False) -> None:
        """Leave the process group. After a finished run, every rank first waits for the others:
        a gloo rank that tears down while a peer is still busy (rank 0 writing the last
        checkpoint) aborted with "terminate called without an active exception" in about 1
        of 8 two-process runs. After an error there is no barrier: a peer may never reach it.
        """
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                if finished:
                    dist.barrier()
                dist.destroy_process_group()


def parameter_digest(modules) -> str:
    """sha256 over every parameter's bytes: equal digests mean bit-identical replicas."""
    h = hashlib.sha256()
    for module in modules:
        for p in module.parameters():
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- building blocks


def pick_device(c: TrainConfig, local_rank: int = 0) -> torch.device:
    if c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but torch sees no CUDA device")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def set_threads(c: TrainConfig, local_world_size: int = 1) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = c.num_threads or max(1, cores // local_world_size)
    torch.set_num_threads(threads)
    return threads


def build_algorithm(c: TrainConfig, device: torch.device, seed: int | None = None):
    """The algorithm object for c.algo: update(batch) -> metrics, state_dict, policy_module."""
    seed = c.seed if seed is None else seed
    common = {"network": c.network, "device": device, "seed": seed, "precision": c.precision,
              "channels_last": c.channels_last, "foreach": c.optimizer_foreach}
    if c.algo == "gcbc":
        return gcbc.GCBC(c.gcbc, **common)
    if c.algo == "gcivl":
        return gcivl.GCIVL(c.gcivl, **common)
    return am.ActionableModels(c.am, **common)


def open_store(c: TrainConfig, path: str | None = None) -> Store:
    """The training store (or `path`, the shared one), checked against the network's image size."""
    path = c.data if path is None else path
    if not path:
        raise ConfigError("no training data: pass --data DIR (a store from `robot-app dataset build`)")
    store = Store.open(path)
    if store.image_size != c.network.image_size:
        raise ConfigError(
            f"{path}: images are {store.image_size}x{store.image_size} but network.image_size={c.network.image_size}; "
            f"pass --set network.image_size={store.image_size}"
        )
    return store


def make_sampler(c: TrainConfig, store: Store, shared_store: Store | None, seed: int) -> GoalSampler | MixedSampler:
    """The run's sampler: the training store's, mixed with the shared store's (share_data) when there is one."""
    sampler = GoalSampler(store, effective_sampler(c), seed=seed, height_input=c.network.height_input)
    if shared_store is None:
        return sampler
    shared = GoalSampler(shared_store, effective_sampler(c), seed=seed + 500, height_input=c.network.height_input)
    try:
        return MixedSampler(sampler, shared, c.share_fraction)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def to_torch(batch, device: torch.device, pad: int = 0, generator: torch.Generator | None = None,
             aligned: bool = False, hue: float = 0.0, hue_keys: tuple[str, ...] = IMAGE_KEYS) -> dict[str, torch.Tensor]:
    """A sampler Batch as tensors on the device, images randomly shifted when pad > 0.

    aligned: one offset per sample for its current, next and goal image (see
    training/augment.py); the default shifts each image on its own. hue > 0: each sample's
    images are also turned by one random hue (drawn after the shifts, so runs without it
    draw exactly as before). Only the `hue_keys` images are turned (the algorithm's
    `image_inputs`): the turn is the costly part of augmentation on a CPU, and the angles are
    one draw per sample whatever the keys, so leaving out an image nobody reads changes
    nothing else.
    """
    names = IMAGE_KEYS + ("gripper", "next_gripper", "action", "success", "chained", "steps_to_goal")
    out = {name: torch.from_numpy(np.ascontiguousarray(getattr(batch, name))).to(device, non_blocking=True) for name in names}
    if aligned:
        out.update(zip(IMAGE_KEYS, random_shift_aligned([out[k] for k in IMAGE_KEYS], pad, generator), strict=True))
    else:
        out.update({k: random_shift(out[k], pad, generator) for k in IMAGE_KEYS})
    out.update(zip(hue_keys, random_hue_aligned([out[k] for k in hue_keys], hue, generator), strict=True))
    return out


def make_update(c: TrainConfig, algo, store: Store, sampler: GoalSampler, aug: torch.Generator, device: torch.device,
                batch: int, distributed: bool):
    """update() -> metrics of one training step on a fresh batch: on a GPU from the store in GPU memory
    (one CUDA graph replay a step when c.cuda_graph), otherwise sampled on the host and copied over."""
    if device.type == "cuda" and c.data_on_device and not c.share_data:  # the device feed holds one store
        feed = DeviceFeed(store, device, c.augment_pad, c.augment_aligned, c.network.height_input, c.augment_hue,
                          algo.image_inputs)
        return DeviceStep(algo, feed, sampler, aug, batch, graph=c.cuda_graph and not distributed)
    return lambda: algo.update(to_torch(sampler.sample(batch), device, c.augment_pad, aug, c.augment_aligned, c.augment_hue,
                                        algo.image_inputs))


# ---------------------------------------------------------------- checkpoints, metrics, plots


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a half-written .tmp from a killed run is ignored)."""
    return sorted(checkpoint_dir(run_dir).glob("step_*.pt"))


def find_checkpoint(run_dir: str | os.PathLike, checkpoint: str = "latest") -> Path:
    run_dir = Path(run_dir)
    if Path(checkpoint).suffix == ".pt" and Path(checkpoint).is_file():
        return Path(checkpoint)
    found = list_checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"{run_dir}: no checkpoints in {checkpoint_dir(run_dir)}")
    if checkpoint == "latest":
        return found[-1]
    name = checkpoint if checkpoint.startswith("step_") else f"step_{int(checkpoint):08d}" if checkpoint.isdigit() else checkpoint
    path = checkpoint_dir(run_dir) / (name if name.endswith(".pt") else f"{name}.pt")
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint {checkpoint!r}; have {[p.stem for p in found]}")
    return path


def save_checkpoint(run_dir: Path, step: int, payload: dict, keep: int) -> Path:
    directory = checkpoint_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


class MetricsLog:
    """metrics.csv (and TensorBoard when installed); on resume, rows past the checkpoint are dropped."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["step"]) <= resume_step:
                            self.rows.append(row)
                    except (KeyError, TypeError, ValueError):
                        continue  # a line cut short by the kill
        self.columns: list[str] = list(self.rows[0].keys()) if self.rows else []
        self._rewrite()
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional, absent by default
            self.tb = None

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            if self.columns:
                writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)
        os.replace(tmp, self.path)

    def write(self, row: dict) -> None:
        if not self.columns:
            self.columns = list(row.keys())
            self._rewrite()
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "step":
                    self.tb.add_scalar(key, float(value), int(row["step"]))


def plot_columns(csv_path: Path, png_path: Path, x: str, groups: dict[str, list[str]], title: str) -> None:
    """One panel per group of CSV columns against column x (matplotlib Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Path(csv_path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    groups = {k: [c for c in v if c in rows[0]] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 2.6 * len(groups)), sharex=True, squeeze=False)
    xs = [float(r[x]) for r in rows]
    for ax, (label, columns) in zip(axes[:, 0], groups.items(), strict=True):
        for column in columns:
            ax.plot(xs, [float(r[column]) if r[column] not in ("", None) else math.nan for r in rows], label=column)
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(png_path).with_name(Path(png_path).stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, png_path)


CURVE_GROUPS = {
    "loss": ["loss_td", "loss_neg", "loss_bc", "loss_value"],
    "Q": ["q_data", "q_neg", "target", "positives"],
    "V (steps)": ["value", "progress", "weight"],
    "speed": ["updates_per_s"],
}


# ---------------------------------------------------------------- evaluation hook


class Evaluator:
    """Success against training step on the sim goal suites (robot_app.evaluation.evaluate_suite).

    eval.csv keeps one row per (step, family); on resume rows past the checkpoint go, like metrics.
    Each evaluation's first episode per family is kept as a strip and a video (eval/step_*/), and
    the weights of the evaluation with the highest mean success over the families as
    checkpoints/best.pt (the first to reach it; best.json says which step and what it scored).
    Why keep it: offline-RL success is not monotone in updates (BENCHMARKS.md: the held-out
    grasp peaked at 6000 of 9000 fine-tuning updates, pretraining at 60000 of 180000), and the
    rolling step checkpoints would have deleted the peak by the end. Export it with
    `robot-app export RUN --checkpoint best`. On resume, a best.pt from an evaluation after the
    checkpoint resumed from is dropped and the best starts over: the resume is exact, so the
    redone evaluations set it again.
    """

    COLUMNS = ("step", "family", "success_rate", "ci95_low", "ci95_high", "n", "mean_steps", "distance_closed")

    def __init__(self, c: TrainConfig, run_dir: Path, resume_step: int | None, scaling: ActionScaling = DEFAULT_SCALING,
                 goal: np.ndarray | None = None):
        """`goal`: a task model's fixed goal image (finetune), fed instead of each episode's."""
        self.config, self.run_dir, self.scaling, self.goal = c, run_dir, scaling, goal
        self.csv = run_dir / "eval.csv"
        self.evaluation = None
        if c.eval_every > 0:
            try:
                from robot_app import evaluation
            except ImportError as exc:
                print(f"train: eval_every={c.eval_every} but the evaluation suite is unavailable ({exc}); "
                      "training continues without evaluation", file=sys.stderr)
            else:
                self.evaluation = evaluation
        self.rows: list[dict] = []
        if resume_step is not None and self.csv.is_file():
            with self.csv.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
            self._write()
        self.best_path, self.best_json = checkpoint_dir(run_dir) / "best.pt", checkpoint_dir(run_dir) / "best.json"
        self.best_step, self.best_rate, self._pending = None, -math.inf, None
        kept = json.loads(self.best_json.read_text()) if resume_step is not None and self.best_json.is_file() else None
        if kept is not None and kept["step"] <= resume_step and self.best_path.is_file():
            self.best_step, self.best_rate = int(kept["step"]), float(kept["mean_success"])
        else:
            self.best_path.unlink(missing_ok=True)
            self.best_json.unlink(missing_ok=True)

    def due(self, step: int) -> bool:
        return self.evaluation is not None and step % self.config.eval_every == 0

    def __call__(self, step: int, model: torch.nn.Module) -> dict:
        c = self.config
        was_training = model.training
        act = self.act_fn(model)
        result = self.evaluation.evaluate_suite(act, list(c.eval_families), c.eval_episodes, c.eval_seed, c.network.image_size,
                                                progress=False, record_strips=True, name=f"{c.algo}@{step}", videos=1)
        model.train(was_training)
        rollouts = self.run_dir / "eval" / f"step_{step:08d}"
        self.evaluation.save_rollouts(result, rollouts)
        rates = {family: r["success_rate"] for family, r in result["families"].items()}
        mean = sum(rates.values()) / len(rates)
        if mean > self.best_rate:
            self.best_step, self.best_rate = step, mean
            self._pending = {"step": step, "mean_success": mean, "families": rates, "episodes": c.eval_episodes,
                             "seed": c.eval_seed, "rollouts": str(rollouts.relative_to(self.run_dir))}
        for family, r in result.get("families", {}).items():
            lo, hi = r.get("ci95", (math.nan, math.nan))
            self.rows.append(dict(zip(self.COLUMNS, (step, family, r["success_rate"], lo, hi, r.get("n"), r.get("mean_steps"),
                                                     r.get("distance_closed")), strict=True)))
        self._write()
        return result

    def act_fn(self, model: torch.nn.Module):
        """What the evaluation runs: the model's CEM policy, given each episode's goal or the fixed one."""
        act = make_act_fn(model, self.config.cem, seed=self.config.eval_seed, scaling=self.scaling)
        return act if self.goal is None else functools.partial(_with_goal, act, self.goal)

    def save_best(self, payload: dict) -> Path:
        """The best evaluation's weights (a checkpoint without random states: for export, not --resume)."""
        self.best_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.best_path.with_name(".best.pt.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.best_path)
        tmp = self.best_json.with_name(".best.json.tmp")
        tmp.write_text(json.dumps(self._pending, indent=2) + "\n")
        os.replace(tmp, self.best_json)
        return self.best_path

    def _write(self) -> None:
        tmp = self.csv.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.csv)
        if self.rows and self.evaluation is not None:
            points: dict[int, dict] = {}
            for r in self.rows:
                points.setdefault(int(r["step"]), {"families": {}})["families"][r["family"]] = {
                    "success_rate": float(r["success_rate"]), "ci95": [float(r["ci95_low"]), float(r["ci95_high"])]}
            self.evaluation.plot_success_vs_step(sorted(points.items()), self.run_dir / "success_vs_step.png")


# ---------------------------------------------------------------- the loop


def _rng_state(sampler: GoalSampler, aug: torch.Generator) -> dict:
    return {"sampler": sampler.get_state(), "augment": aug.get_state(), "torch": torch.get_rng_state()}


def window_row(step: int, window: list[dict], tick: float, started: float) -> tuple[dict, float]:
    """The metrics row of a log window (means, updates/s since `tick`) and the new tick."""
    now = time.perf_counter()
    row = {"step": step, **{k: float(torch.stack([m[k] for m in window]).mean()) for k in window[0]}}
    row.update(updates_per_s=len(window) / max(now - tick, 1e-9), elapsed_s=now - started)
    return row, now


def train(c: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) training into run_dir; returns the last checkpoint's path."""
    run_dir = Path(run_dir)
    use_cuda = pick_device(c).type == "cuda"
    dist = Distributed.from_env(use_cuda)
    finished = False
    try:
        last = _train(c, run_dir, resume, progress, dist)
        finished = True
        return last
    finally:
        dist.close(finished)


def _train(c: TrainConfig, run_dir: Path, resume: bool, progress: bool, dist: Distributed) -> Path:
    device = pick_device(c, dist.local_rank)
    set_threads(c, dist.local_world_size)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes every step: let cuDNN time its conv algorithms once
    if c.batch_size % dist.world_size:
        raise ConfigError(f"batch_size={c.batch_size} does not split over {dist.world_size} processes")
    c = replace(c, data=str(Path(c.data).resolve()) if c.data else c.data,
                share_data=str(Path(c.share_data).resolve()) if c.share_data else c.share_data)
    store = open_store(c)
    shared = open_store(c, c.share_data) if c.share_data else None
    checkpoint = None
    if resume:
        checkpoint = torch.load(find_checkpoint(run_dir), map_location="cpu", weights_only=True)
        _check_resume(checkpoint, store, dist, run_dir, shared)
    elif list_checkpoints(run_dir):
        raise FileExistsError(f"{run_dir}: already holds a run's checkpoints; pass --resume to continue it or choose another --out")
    source = None
    if c.init_from and checkpoint is None:
        source, c = _init_source(c)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(c, run_dir / "config.yaml")

    rank_seed = c.seed + 1000 * dist.rank
    algo = build_algorithm(c, device)  # same seed on every process: identical initial replicas
    sampler = make_sampler(c, store, shared, rank_seed)
    if sampler.row_cdf is not None and dist.main:
        print(f"train: {100 * sampler.pre_grasp_fraction:.0f}% of transitions are at most {c.sampler.pre_grasp_steps} steps "
              f"before a grasp or release, drawn {c.sampler.pre_grasp_weight:g}x as often", file=sys.stderr)
    if isinstance(sampler, MixedSampler) and dist.main:
        rows = c.batch_size // dist.world_size
        print(f"train: {sampler.split(rows)[1]} of every {rows} transitions from "
              f"{c.share_data} ({len(sampler.shared)} transitions), the rest from {c.data}", file=sys.stderr)
    aug = torch.Generator()
    aug.manual_seed(rank_seed + 2)
    if isinstance(algo, am.ActionableModels):
        algo.generator.manual_seed(rank_seed + 1)
    algo.grad_hook = dist.average_gradients
    step = 0
    if source is not None and "optimizer" not in source["algorithm"]:  # an exported model: its weights, Adam afresh
        algo.start_from(source["algorithm"]["policy"])
    elif source is not None:  # weights and Adam's moments; step, sampler and augmentation start afresh
        rates = [group["lr"] for group in algo.optimizer.param_groups]
        algo.load_state_dict(source["algorithm"])
        for group, lr in zip(algo.optimizer.param_groups, rates, strict=True):
            group["lr"] = lr  # this run's rate (a fine-tune may want a lower one), not the source's
    if checkpoint is not None:
        algo.load_state_dict(checkpoint["algorithm"])
        rng = checkpoint["rng"][dist.rank]
        sampler.set_state(rng["sampler"])
        aug.set_state(rng["augment"])
        torch.set_rng_state(rng["torch"])
        step = int(checkpoint["step"])
    dist.broadcast_modules(algo.modules().values())

    log = MetricsLog(run_dir, step) if dist.main else None
    scaling = ActionScaling.from_dict(store.action_scaling())
    evaluator = Evaluator(c, run_dir, step if checkpoint is not None else None, scaling) if dist.main else None
    per_rank = c.batch_size // dist.world_size
    last_path = find_checkpoint(run_dir) if checkpoint is not None else None
    window: list[dict] = []
    from tqdm import tqdm

    update = make_update(c, algo, store, sampler, aug, device, per_rank, distributed=dist.world_size > 1)
    bar = tqdm(total=c.steps, initial=step, desc=f"train {c.algo}", unit="upd", disable=not (progress and dist.main), dynamic_ncols=True)
    tick, started = time.perf_counter(), time.perf_counter()
    with GracefulStop(enabled=dist.world_size == 1) as stop:
        while step < c.steps:
            window.append(update())
            step += 1
            bar.update(1)
            if step % c.log_every == 0 or step == c.steps:
                row, tick = window_row(step, window, tick, started)
                window = []
                if log is not None:
                    log.write(row)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss_td", "loss_neg", "loss_bc", "loss_value", "progress", "updates_per_s")})
            if evaluator is not None and evaluator.due(step):  # before the checkpoint, so a resume never skips one
                result = evaluator(step, algo.policy_module())
                best = evaluator.best_step == step
                if best:
                    evaluator.save_best(weights_payload(c, step, algo, store, dist.world_size, shared))
                bar.write(f"step {step}: success " + ", ".join(f"{f} {r['success_rate']}" for f, r in result["families"].items())
                          + (" (best so far: checkpoints/best.pt)" if best else ""))
            if step % c.checkpoint_every == 0 or step == c.steps or stop.requested:
                last_path = _checkpoint(c, run_dir, step, algo, sampler, aug, store, shared, dist)
            if stop.requested:
                bar.close()
                print(f"train: interrupted at step {step}; saved {last_path}; continue with --resume", file=sys.stderr)
                raise KeyboardInterrupt
    bar.close()
    return last_path


class GracefulStop:
    """The first Ctrl-C finishes the current update and checkpoints it (a clean point to resume
    from); a second one stops at once. Single-process runs only: under DDP every process would
    have to agree on the step, so there Ctrl-C stops at once and --resume uses the last checkpoint.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> GracefulStop:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)


def _init_source(c: TrainConfig) -> tuple[dict, TrainConfig]:
    """The checkpoint `init_from` names, and the config with its network.

    Continuing a pretrained goal-conditioned run on new episodes (a new object's attempts, a
    real arm's first bags) keeps what it learned and its goal input: unlike `finetune`, whose
    task model pursues one fixed image, the result still takes any goal image. The network
    shape must be the source's, so it is taken from there rather than repeated on the command
    line; the algorithm must match, since the weights are that algorithm's.

    An exported cloned model (a shipped models/*.onnx, a mean of N included) is rebuilt in torch
    by training.export.import_cloned_model: a user with a fresh checkout has the shipped
    models, not the runs that made them. Its members continue together (gcbc.members).
    """
    from training.export import import_cloned_model, names_a_model

    if names_a_model(c.init_from):
        if c.algo != "gcbc":
            raise ConfigError(f"init_from={c.init_from}: an exported model continues as a cloned policy; pass --algo gcbc")
        try:
            imported, source = import_cloned_model(c.init_from)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"init_from={c.init_from}: {exc}") from None
        gcbc_config = replace(c.gcbc, members=imported.gcbc.members, action_bins=imported.gcbc.action_bins)
        return source, replace(c, network=imported.network, gcbc=gcbc_config)
    path = find_checkpoint(c.init_from, c.init_from if c.init_from.endswith(".pt") else "latest")
    source = torch.load(path, map_location="cpu", weights_only=True)
    if source.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"init_from={c.init_from}: checkpoint format {source.get('format')}, expected {CHECKPOINT_FORMAT}")
    algo = source["config"].get("algo")
    if algo != c.algo:
        raise ConfigError(f"init_from={c.init_from}: that run trained {algo!r}, this one {c.algo!r}; pass --algo {algo}")
    network = from_dict(NetworkConfig, source["config"]["network"], where=f"{path}: config.network")
    return source, replace(c, network=network)


def _check_resume(checkpoint: dict, store: Store, dist: Distributed, run_dir: Path, shared: Store | None = None) -> None:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{run_dir}: checkpoint format {checkpoint.get('format')}, expected {CHECKPOINT_FORMAT}; "
                         f"this code cannot resume it exactly")
    if checkpoint.get("data_manifest_hash") != store.manifest_hash():
        raise ValueError(f"{run_dir}: the run was trained on data {checkpoint.get('data_manifest_hash')!r}, "
                         f"--data holds {store.manifest_hash()!r}; resume needs the same store")
    shared_hash = shared.manifest_hash() if shared is not None else ""
    if checkpoint.get("share_manifest_hash", "") != shared_hash:
        raise ValueError(f"{run_dir}: the run shared data {checkpoint.get('share_manifest_hash', '') or 'from no store'!r}, "
                         f"share_data holds {shared_hash or 'none'!r}; resume needs the same shared store")
    if checkpoint.get("world_size", 1) != dist.world_size:
        raise ValueError(f"{run_dir}: the run used {checkpoint.get('world_size', 1)} processes, this resume has "
                         f"{dist.world_size}; an exact resume needs the same number")


def weights_payload(c, step, algo, store, world_size: int, shared: Store | None = None) -> dict:
    """What a checkpoint holds to be loaded, exported or continued from (init_from); `shared`: the share_data store."""
    return {
        "format": CHECKPOINT_FORMAT,
        "algo": c.algo,
        "step": step,
        "config": to_dict(c),
        "data_manifest_hash": store.manifest_hash(),
        "share_manifest_hash": shared.manifest_hash() if shared is not None else "",
        "action_scaling": store.action_scaling(),
        "world_size": world_size,
        "algorithm": algo.state_dict(),
    }


def _checkpoint(c, run_dir, step, algo, sampler, aug, store, shared, dist) -> Path | None:
    rngs = dist.gather(_rng_state(sampler, aug))
    digests = dist.gather(parameter_digest(algo.modules().values()))
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP replicas diverged at step {step}: parameter digests {digests}")
    if not dist.main:
        return None
    payload = {**weights_payload(c, step, algo, store, dist.world_size, shared),
               "replica_digests": digests, "rng": rngs}
    path = save_checkpoint(run_dir, step, payload, c.keep_checkpoints)
    plot_columns(run_dir / "metrics.csv", run_dir / "curve.png", "step", CURVE_GROUPS, f"{c.algo} on {Path(c.data).name}")
    return path


# ---------------------------------------------------------------- using a run


@dataclass
class LoadedRun:
    algo: str  # am | am-nonneg | am-nochain | gcbc | gcivl
    config: dict  # the resolved TrainConfig as a dict plus the data's action_scaling
    model: torch.nn.Module  # forward(image u8 NHWC, goal u8 NHWC, gripper (B,1), actions (B,N,5)) -> q (B,N)
    step: int
    data_manifest_hash: str
    cem: CEMSettings
    network: NetworkConfig
    path: Path = field(default_factory=Path)  # the checkpoint file
    finetuned: bool = False  # written by `robot-app finetune`: its export carries the task goal image
    task_goal: torch.Tensor | None = None  # a fine-tuned run's task goal image (uint8 H x W x 3)


def load_run(run_dir: str | os.PathLike, checkpoint: str = "latest") -> LoadedRun:
    """A run's checkpoint as a scoring model (eval mode, CPU) with its provenance."""
    path = find_checkpoint(run_dir, checkpoint)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {ckpt.get('format')}, expected {CHECKPOINT_FORMAT}")
    c = from_dict(TrainConfig, ckpt["config"], where=f"{path}: config")
    if c.algo == "gcbc":
        model = gcbc.policy_from_state(ckpt["algorithm"], c.network, c.gcbc)
    elif c.algo == "gcivl":
        model = gcbc.policy_from_state(ckpt["algorithm"], c.network, GCBCConfig(score_sigma=c.gcivl.score_sigma))
    else:
        model = am.policy_from_state(ckpt["algorithm"], c.network)
    config = to_dict(c)
    scaling = dict(ckpt.get("action_scaling") or {})
    if "binary_gripper" not in scaling:
        scaling["binary_gripper"] = _data_gripper_is_binary(c.data, ckpt.get("data_manifest_hash"))
    config["action_scaling"] = scaling
    return LoadedRun(c.algo, config, model, int(ckpt["step"]), str(ckpt.get("data_manifest_hash", "")), c.cem, c.network, path,
                     finetuned=bool(ckpt.get("finetune")), task_goal=(ckpt.get("finetune") or {}).get("goal"))


def _data_gripper_is_binary(data: str, manifest_hash) -> bool:
    """For checkpoints from before action_scaling carried binary_gripper: ask their store, if it is still the same."""
    try:
        store = Store.open(data)
    except (OSError, ValueError):
        return False
    return store.manifest_hash() == manifest_hash and store.gripper_is_binary


def _with_goal(act, goal: np.ndarray, image: np.ndarray, _episode_goal: np.ndarray, state):
    return act(image, goal, state)


def make_act_fn(model: torch.nn.Module, cem: CEMSettings, seed: int = 0, scaling: ActionScaling = DEFAULT_SCALING):
    """act(image u8 HxWx3, goal u8 HxWx3, state) -> (action (5,), q): torch CEM over the model.

    state: a RobotState, or a bare gripper state for a model without the height input, as
    robot_app.policy.Policy.act takes it.

    The noise comes from robot_app.cem.draw_noise with a numpy Generator, as in the ONNX
    runtime, so with the same seed the evaluated policy and the exported one act alike.
    """
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    height_input = (model.config if isinstance(model, QNetwork) else model.policy.config).height_input
    model.eval()

    @torch.no_grad()
    def act(image: np.ndarray, goal: np.ndarray, state):
        img = torch.from_numpy(np.ascontiguousarray(check_image(image, what="image")))[None].to(device)
        tgt = torch.from_numpy(np.ascontiguousarray(check_image(goal, size=image.shape[0], what="goal")))[None].to(device)
        grip = torch.from_numpy(proprio_vector(state, height_input)[None]).to(device)
        if isinstance(model, QNetwork):
            features = model.encode(img, tgt)
            score = lambda a: torch.sigmoid(model.head_logits(features, grip, a))  # noqa: E731
        else:
            score = lambda a: model(img, tgt, grip, a)  # noqa: E731
        uniform, normal = draw_noise(rng, 1, cem)
        best, q = cem_maximize_torch(score, 1, cem, device, uniform=uniform, normal=normal)
        return scaling.settle(best[0].cpu().numpy()), float(q[0])

    return act
