"""Fine-tuning a goal-conditioned Q-function on a new task from a few labelled episodes (design section 8).

Actionable Models (Chebotar et al. 2021, section 5.3) adapt a goal-conditioned Q to a task
with a reward: here the task is grasping an object that pretraining never saw, and the
data are ~50 scripted attempts, each labelled success or failure at its end.

Task Q. Reward 1 on the last transition of a successful episode, 0 everywhere else, and
the last transition of every episode is terminal (target = its reward). Every other
transition bootstraps, y = gamma * min_k Qtarget_k(s', a*, g). The update is AM's own
(clipped double Q, CEM max, artificial negatives as the conservative term): the task
changes only where targets come from, so `TaskQ` overrides `td_target` and nothing else.

The goal input. The network keeps its goal image input, fed one fixed image for the task:
the final frame of a successful task episode, namely the one closest (per pixel) to the
median of all successful final frames, a real frame that looks like a typical success.
A pretrained Q(s, a, g) then starts out meaning "probability of reaching a state like
this", which is already close to the task's value; and the exported model keeps the exact
ONNX contract (image, goal, gripper, actions -> q), so the runtime and the policy node run
it unchanged: the goal image travels beside the model (models/NAME_goal.png, named in the
card as "goal_image", with "task").

Discount and return floor. The task's only reward is at the end of a 50-step episode, so
the pretrained 0.9 a step would leave 0.9^49 ~ 0.006 of it at the start, where the arm must
choose which object to go for: fine-tuning discounts 0.97 a step (0.22 at the start). And
y >= gamma^(k-1) on a transition k logged steps before a success (AM's `return_floor`):
measured on 50 episodes, without it (at 0.9) the task Q of the logged actions fell from 0.43 to 0.02-0.05
over 3000 updates, since Polyak-averaged targets carry the end reward back only about one
step per few hundred updates; with it, it held at ~0.32, near the data's discounted return.

Modes (same data, steps and hyperparameters; only the start and the batches differ):
  scratch     random initialisation
  pretrained  both Q-networks and their targets from the goal-conditioned AM run; from a
              GCBC run (no Q-function), every Q-network's image trunk from the cloned
              policy's (the same StateGoalEncoder), the action head fresh
  cds         pretrained, plus conservative data sharing (Yu et al. 2021, "Conservative
              Data Sharing for Multi-Task Offline RL") from the large unlabelled store:
              each update draws candidate transitions from it and shares those whose
              conservative task Q is at least the `share_percentile`-th percentile of the
              task batch's Q; shared transitions take reward 0 and are never terminal.
  bc          filtered behaviour cloning from a GCBC run's whole policy: regress the
              actions of the successful episodes, the goal input fed the task's goal
              image. No Q-function; the export is a cloned policy (its card's q is not a
              success probability). Why it is here: measured at 50 episodes it is the
              mode that grasps the held-out object most (BENCHMARKS.md, session 10):
              the pretrained policy already brings the hand over an unseen object, and
              the successes only have to teach the last centimetres. --from may also be
              an exported cloned policy (models/gcbc_grasp.onnx, training.export.
              import_cloned_model); an ensemble (gcbc.members) fine-tunes every member.
              `clone_failed_approaches` also clones the failed attempts up to their
              first close command (see TaskTransitions.before_close).
  bc-scratch  bc's baseline: the same cloning, network shape and ensemble size, from a
              random initialisation (what pretraining is measured against).
  bc and bc-scratch with --share-data PLAY_STORE co-train: each update also clones
              `share_batch_size` play transitions toward their own hindsight goals, drawn
              as the pretrained run drew them. Why: fitted to a few dozen attempts alone,
              the policy forgets what pretraining taught it (at 25 episodes the fine-tuned
              hand stops moving toward the object, BENCHMARKS.md session 16); keeping the
              pretraining loss in the batch is the usual remedy (RT-1's and Octo's
              co-training, replay against forgetting). Measured, it does not help at
              25 or 50 episodes (session 18: 8/300 and 48/300 against 4/300 and 52/300).

Why the 90th percentile by default: the play data never contain the held-out object, so
most of it is irrelevant to the task, and reward-0 sharing of an irrelevant transition is
harmless only as long as it does not pull the Q of the task's good states down. CDS's
point is to share only where the shared data do not widen the distribution shift: a
transition the conservative Q already rates like the best tenth of the task's own data
(approach, close, lift) is one whose reward-0 backup adds coverage without contradicting
the labels. Lower percentiles share more and behave more like sharing everything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from robot_app.spec import ActionScaling
from robot_app.store import Store
from training import runner
from training.am import ActionableModels, autocast
from training.config import ConfigError, from_dict, load_yaml, merge, parse_override, save_yaml, to_dict
from training.gcbc import GCBC, GCBCConfig, acting_weights
from training.runner import CLONING, TrainConfig, window_row
from training.sampler import GoalSampler, SamplerConfig, pre_grasp_rows

MODES = ("scratch", "pretrained", "cds", "bc", "bc-scratch")
BC_MODES = ("bc", "bc-scratch")  # filtered behaviour cloning: no Q-function


@dataclass(frozen=True)
class FinetuneConfig:
    mode: str = "pretrained"  # scratch | pretrained | cds | bc | bc-scratch (see module docstring)
    task: str = "grasp-heldout"  # task name written into the model card
    pretrained: str = ""  # goal-conditioned run or exported cloned model (--from); the scratch modes take only its network and hyperparameters
    data: str = ""  # labelled task store (`robot-app dataset build` of `collect --task ...` bags)
    share_data: str = ""  # unlabelled store: cds shares from it; the bc modes co-train on it (module docstring)
    steps: int = 0  # gradient updates; 0 = the mode's default (DEFAULT_STEPS, see default_steps)
    batch_size: int = 64  # labelled task transitions per update
    share_batch_size: int = 64  # unlabelled transitions per update: cds's candidates, or the bc modes' co-training samples
    share_percentile: float = 90.0  # share a candidate whose task Q >= this percentile of the task batch's Q
    lr: float = 0.0  # Adam learning rate; 0 = the pretrained run's am.lr (gcbc.lr for mode bc)
    gamma: float = 0.97  # discount per step (see module docstring); 0 = the pretrained run's am.gamma
    return_floor: bool = True  # y >= gamma^(k-1) on a success k logged steps away (training/am.py; why: module docstring)
    neg_keep_gripper: bool = False  # artificial negatives keep the logged gripper command (training/am.py)
    clone_failed_approaches: bool = False  # bc modes: also clone failed attempts up to their first close (TaskTransitions)
    augment_hue: float = 0.0  # hue turn of each sample (TrainConfig.augment_hue); off whatever the --from run did: see run_train_config
    ema_decay: float = 0.0  # bc modes: act with a moving average of the weights (gcbc.WeightAverage); not inherited from --from
    # bc modes: transitions at most pre_grasp_steps before a success's grasp are cloned
    # pre_grasp_weight times as often (TaskBatches.success_batch; 1 = all alike). Measured
    # at 3: 118/600 against 136/600 without (session 18), so off by default.
    pre_grasp_steps: int = 10
    pre_grasp_weight: float = 1.0
    seed: int = 0  # initialisation (scratch), sampling, augmentation, CEM
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 = this machine's cores
    log_every: int = 50  # updates between metrics.csv rows
    checkpoint_every: int = 500  # updates between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    # Evaluation in the sim while fine-tuning: the task model, fed its task goal image as at
    # run time, on `eval_episodes` tasks of the goal family named `task` every `eval_every`
    # updates (0 = off). Keeps eval.csv, success_vs_step.png and checkpoints/best.pt, as train does.
    eval_every: int = 0
    eval_episodes: int = 20
    eval_seed: int = 0


DEFAULT_STEPS = {"scratch": 2000, "pretrained": 2000, "cds": 2000, "bc": 9000, "bc-scratch": 9000}


def default_steps(config: FinetuneConfig) -> FinetuneConfig:
    """The config with `steps` 0 replaced by its mode's default.

    Why the cloning modes train 4.5x longer: at 3000 updates (the recipe through session 18)
    fresh policies cloned from 50 attempts were still far apart, 8 to 30 held-out grasps in
    100. Measured in session 19 (BENCHMARKS.md), the same ten fresh models grasp 25.1% at 9000
    updates against 19.8% at 3000, the weak seeds catching up most; 12000-15000 add nothing.
    On one CPU thread 9000 updates take about 6 minutes.
    """
    return config if config.steps else replace(config, steps=DEFAULT_STEPS[config.mode])


# --debug: seconds instead of minutes, every code path still taken.
DEBUG = {"steps": 12, "batch_size": 8, "share_batch_size": 8, "log_every": 4, "checkpoint_every": 6, "num_threads": 1}


def check_config(config: FinetuneConfig) -> None:
    """Refuse settings that cannot run, naming the key."""
    if config.mode not in MODES:
        raise ConfigError(f"mode={config.mode!r}: expected one of {', '.join(MODES)}")
    if not 0.0 <= config.share_percentile <= 100.0:
        raise ConfigError(f"share_percentile={config.share_percentile}: must be in [0, 100]")
    if config.steps < 0:
        raise ConfigError(f"steps={config.steps}: must be a positive integer (or 0 for the mode's default)")
    for name in ("batch_size", "share_batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name}={getattr(config, name)}: must be a positive integer")
    if config.lr < 0:
        raise ConfigError(f"lr={config.lr}: must be >= 0 (0 = the pretrained run's)")
    if not 0.0 <= config.gamma < 1.0:
        raise ConfigError(f"gamma={config.gamma}: must be in (0, 1), or 0 for the pretrained run's")
    if not config.data:
        raise ConfigError("no task data: pass --data DIR (a labelled store from `robot-app dataset build`)")
    if not config.mode.endswith("scratch") and not config.pretrained:
        raise ConfigError(f"mode={config.mode} starts from a goal-conditioned run: pass --from RUN (or a cloned model .onnx)")
    if config.mode == "cds" and not config.share_data:
        raise ConfigError("mode=cds shares unlabelled data: pass --share-data DIR (the pretraining store)")
    runner.check_augment_hue(config.augment_hue)
    if config.pre_grasp_steps < 0 or config.pre_grasp_weight <= 0:
        raise ConfigError(f"pre_grasp_steps={config.pre_grasp_steps}, pre_grasp_weight={config.pre_grasp_weight}: "
                          "steps must be >= 0 and the weight > 0")
    cloning_only = {"clone_failed_approaches": config.clone_failed_approaches, "ema_decay": config.ema_decay,
                    "pre_grasp_weight": config.pre_grasp_weight != 1.0}
    for name, used in cloning_only.items():
        if used and config.mode not in BC_MODES:
            raise ConfigError(f"{name} is for the cloning modes ({', '.join(BC_MODES)}), not {config.mode}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise ConfigError(f"ema_decay={config.ema_decay}: must be in [0, 1) (0 = off)")
    if config.eval_every < 0 or config.eval_episodes < 1:
        raise ConfigError(f"eval_every={config.eval_every}, eval_episodes={config.eval_episodes}: "
                          "eval_every must be >= 0 (0 = off) and eval_episodes >= 1")
    if config.eval_every:
        from sim_worlds.goals import FAMILIES

        if config.task not in FAMILIES:
            raise ConfigError(f"eval_every evaluates the sim goal family named by task, and task={config.task!r} is none of "
                              f"{', '.join(FAMILIES)}; set eval_every=0 (evaluate a real task on the robot)")
    if config.share_data and config.mode not in ("cds", *BC_MODES):
        raise ConfigError(f"--share-data is used by --mode cds and the cloning modes ({', '.join(BC_MODES)}), not {config.mode}")


def resolve_config(
    yaml_path: str | os.PathLike | None = None, overrides: Sequence[str] = (), debug: bool = False, **values
) -> FinetuneConfig:
    """defaults < YAML < --debug < --set overrides < explicit command-line values (None = not given)."""
    merged = load_yaml(yaml_path) if yaml_path else {}
    if debug:
        merged = merge(merged, DEBUG)
    for text in overrides:
        merged = merge(merged, parse_override(text))
    merged.update({k: v for k, v in values.items() if v is not None})
    config = from_dict(FinetuneConfig, merged, where="finetune config")
    check_config(config)
    return default_steps(config)


# ---------------------------------------------------------------------------- task data


def episode_labels(store: Store) -> np.ndarray:
    """Per-episode success as bool; an unlabelled episode is an error naming the store and episodes."""
    labels = store.episode_success()
    missing = np.flatnonzero(np.isnan(labels))
    if missing.size:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if missing.size > 10 else "")
        raise ValueError(
            f"{store.root}: {missing.size} of {len(labels)} episode(s) have no success label (episodes {shown}); "
            "a task dataset needs one per episode (robot-app collect --task grasp-heldout, then dataset build)"
        )
    return labels == 1.0


@dataclass
class TaskTransitions:
    """Every transition of a labelled store with its task reward; rows match `index.t_index`."""

    index: GoalSampler  # the store's transition table (t < last frame of its episode) and its gather
    reward: np.ndarray  # (T,) float32: 1 only on the last transition of a successful episode
    terminal: np.ndarray  # (T,) bool: the last transition of each episode
    steps_to_success: np.ndarray  # (T,) int64: logged steps to the rewarded end of a successful episode; 0 in a failed one
    # (T,) bool: before the episode's first close command. Why: a scripted attempt fails
    # by its noise at the grasp (aim, closing height), which is zero-mean, so a failed
    # attempt's approach aims at the object as well as a success's does on average; its
    # close and lift are what the successes alone should teach. Measured (50 episodes,
    # 3 seeds x 100, BENCHMARKS.md session 14): bc-scratch 62/300 with them against 41/300
    # without; bc from the shipped ensemble 21/300 either way.
    before_close: np.ndarray

    @property
    def t(self) -> np.ndarray:
        return self.index.t_index

    def __len__(self) -> int:
        return len(self.reward)


def task_transitions(store: Store, seed: int = 0, height_input: bool = False) -> TaskTransitions:
    """Rewards from episode labels: terminal at each episode's end, 1 there only if it succeeded."""
    success = episode_labels(store)
    if not success.any():
        raise ValueError(f"{store.root}: no episode is labelled a success, so the task has no reward to learn from")
    index = GoalSampler(store, SamplerConfig(p_chain=0.0), seed=seed, height_input=height_input)
    terminal = index.t_index == index.t_last - 1
    succeeded = success[np.asarray(store.episode[index.t_index])]
    reward = (terminal & succeeded).astype(np.float32)
    steps = np.where(succeeded, index.t_last - index.t_index, 0).astype(np.int64)
    return TaskTransitions(index=index, reward=reward, terminal=terminal, steps_to_success=steps,
                           before_close=before_first_close(store, index.t_index))


def first_close_rows(store: Store) -> np.ndarray:
    """(episodes,) the store row of each episode's first close command (a4 > 0); its end row if it never closes."""
    closing = np.asarray(store.actions[:, 4]) > 0
    return np.array([start + (np.argmax(closing[start:end]) if closing[start:end].any() else end - start)
                     for start, end in store.episode_bounds()])


def before_first_close(store: Store, t: np.ndarray) -> np.ndarray:
    """(len(t),) bool: whether frame t comes before the first close command (a4 > 0) of its episode."""
    return t < first_close_rows(store)[np.asarray(store.episode[t])]


def task_goal_image(store: Store) -> tuple[np.ndarray, int]:
    """(goal image, episode index): the successful final frame nearest the median successful final frame.

    A real frame (not a blurred average) so the pretrained network sees an image like the
    goals it was trained on; the median makes the choice robust to one odd success, and
    the choice is deterministic for a given store.
    """
    success = episode_labels(store)
    episodes = np.flatnonzero(success)
    if episodes.size == 0:
        raise ValueError(f"{store.root}: no successful episode to take the task's goal image from")
    bounds = store.episode_bounds()
    finals = np.stack([np.asarray(store.images[bounds[e, 1] - 1]) for e in episodes]).astype(np.float32)
    median = np.median(finals, axis=0)
    distance = np.sqrt(((finals - median) ** 2).reshape(len(finals), -1).sum(axis=1))
    best = int(np.argmin(distance))  # argmin takes the first of ties: deterministic
    return finals[best].astype(np.uint8), int(episodes[best])


# ---------------------------------------------------------------------------- data sharing


def share_mask(q_unlabelled: torch.Tensor, q_task: torch.Tensor, percentile: float) -> torch.Tensor:
    """CDS's rule: share a candidate when its task Q is at least the percentile of the task data's Q.

    q_unlabelled (N,), q_task (M,) -> bool (N,). The percentile interpolates linearly
    (numpy's default), so percentile 0 shares everything at or above the task's lowest Q.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"share_percentile={percentile}: must be in [0, 100]")
    q_task = torch.as_tensor(q_task, dtype=torch.float32)
    q_unlabelled = torch.as_tensor(q_unlabelled, dtype=torch.float32)
    if q_task.numel() == 0:
        raise ValueError("share_mask: no task Q-values to take the percentile of")
    threshold = torch.quantile(q_task.flatten(), percentile / 100.0)
    return q_unlabelled >= threshold


class TaskQ(ActionableModels):
    """AM's update with task rewards: a terminal transition that did not succeed has target 0."""

    @torch.no_grad()
    def td_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        y = super().td_target(b)
        return torch.where(b["terminal"] & ~b["success"], torch.zeros_like(y), y)

    @torch.no_grad()
    def data_q(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Conservative task Q of the logged actions, (B,): Q_1, the network the policy maximises."""
        features = self.q1.encode(b["image"], b["goal"])
        return torch.sigmoid(self.q1.head_logits(features, b["gripper"], b["action"][:, None, :]).float())[:, 0]


# ---------------------------------------------------------------------------- batches


class TaskBatches:
    """Task transitions with label rewards and the task goal, plus CDS candidates when sharing."""

    def __init__(self, task: TaskTransitions, goal: np.ndarray, shared: GoalSampler | None, seed: int,
                 shared_hue: float = 0.0):
        self.task, self.goal, self.shared = task, goal, shared
        self.shared_hue = shared_hue  # hue turns of co-training's play samples
        self.rng = np.random.default_rng(seed)
        self._draw_p: dict[tuple, np.ndarray] = {}  # success_batch's weighted draw, per (failed_approaches, steps, weight)

    def _gather(self, index: GoalSampler, t: np.ndarray, success: np.ndarray, terminal: np.ndarray, steps: np.ndarray):
        none = np.zeros(len(t), dtype=bool)
        batch = index.gather({"t": t, "goal": t, "success": success, "chained": none, "steps": steps})
        batch.goal = np.broadcast_to(self.goal, batch.image.shape)
        return batch, terminal

    def task_batch(self, size: int):
        return self.task_rows(self.rng.integers(0, len(self.task), size=size))

    def success_batch(self, size: int, failed_approaches: bool = False, pre_grasp: tuple[int, float] = (0, 1.0)):
        """Transitions of the successful episodes (filtered behaviour cloning's data), and with
        `failed_approaches` those of the failed ones before their first close. pre_grasp =
        (steps, weight): the transitions at most `steps` before a grasp are drawn `weight`
        times as often (pretraining's sampler.pre_grasp_*, where the last centimetres are)."""
        rows = self.cloned_rows(failed_approaches)
        steps, weight = pre_grasp
        if steps == 0 or weight == 1.0:  # the uniform draw, exactly as before the option existed
            return self.task_rows(self.rng.choice(rows, size=size))
        key = (failed_approaches, steps, weight)
        if key not in self._draw_p:  # the same for every update of a run: computed once
            near = pre_grasp_rows(self.task.index.store, self.task.t[rows], self.task.index.t_last[rows], steps)
            p = np.where(near, weight, 1.0)
            self._draw_p[key] = p / p.sum()
        return self.task_rows(self.rng.choice(rows, size=size, p=self._draw_p[key]))

    def cloned_rows(self, failed_approaches: bool = False) -> np.ndarray:
        task = self.task
        keep = task.steps_to_success > 0  # every transition of a successful episode
        return np.flatnonzero(keep | (task.before_close & failed_approaches))

    def task_rows(self, rows: np.ndarray):
        """The task transitions at `rows` (indices into self.task) with their rewards and the task goal."""
        task = self.task
        return self._gather(task.index, task.t[rows], task.reward[rows] == 1.0, task.terminal[rows], task.steps_to_success[rows])

    def share_candidates(self, size: int):
        """Unlabelled transitions with the task goal: reward 0, never terminal."""
        rows = self.rng.integers(0, len(self.shared), size=size)
        none = np.zeros(size, dtype=bool)
        return self._gather(self.shared, self.shared.t_index[rows], none, none, np.zeros(size, dtype=np.int64))


def _to_torch(batch_terminal, device, run: TrainConfig, aug: torch.Generator | None, algo) -> dict[str, torch.Tensor]:
    """A task batch as tensors with its terminal flags, shifted (and hue-turned, the images `algo`
    reads) as the run's TrainConfig says."""
    batch, terminal = batch_terminal
    out = runner.to_torch(batch, device, run.augment_pad, aug, run.augment_aligned, run.augment_hue, algo.image_inputs)
    out["terminal"] = torch.from_numpy(np.ascontiguousarray(terminal)).to(device)
    return out


def _concat(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: torch.cat([a[k], b[k][mask]]) for k in a}


# ---------------------------------------------------------------------------- the run


def base_train_config(config: FinetuneConfig, debug: bool = False) -> tuple[TrainConfig, dict | None]:
    """The goal-conditioned run's TrainConfig (and its checkpoint), or the defaults for a scratch mode without --from.

    --from is a run directory, or an exported cloned policy (a .onnx/.json path or a name
    in models/), rebuilt in torch by training.export.import_cloned_model.
    """
    if not config.pretrained:
        return runner.resolve_config(algo="gcbc" if config.mode in BC_MODES else "am", debug=debug), None
    from training.export import import_cloned_model, names_a_model

    if names_a_model(config.pretrained):
        return import_cloned_model(config.pretrained)
    path = runner.find_checkpoint(config.pretrained)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != runner.CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {checkpoint.get('format')}, expected {runner.CHECKPOINT_FORMAT}")
    base = from_dict(TrainConfig, checkpoint["config"], where=f"{path}: config")
    return base, checkpoint


def run_train_config(config: FinetuneConfig, base: TrainConfig) -> TrainConfig:
    """What the fine-tuned run records as its TrainConfig: the base's network and AM (or GCBC) settings on the task data.

    Hue turns are not inherited. They teach a goal-conditioned trunk objects of every colour,
    but a task model should fetch its one object by the colour it has: turned, the held-out
    object looks like the other cubes, and 50 episodes do not teach matching colours against
    the goal (measured: bc-scratch with turns grasped 1/100, without 9/100, one seed; BENCHMARKS.md).
    Co-training's play samples (bc modes with --share-data) are pretraining's own loss, so
    they keep its turns (TaskBatches.shared_hue).
    """
    run = replace(base, data=config.data, steps=config.steps, batch_size=config.batch_size, seed=config.seed,
                  device=config.device, num_threads=config.num_threads, log_every=config.log_every,
                  checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
                  eval_every=config.eval_every, eval_episodes=config.eval_episodes,
                  eval_families=(config.task,) if config.eval_every else base.eval_families,  # a real task names no sim family
                  eval_seed=config.eval_seed, augment_hue=config.augment_hue,
                  share_data="")  # the base run's shared store is not this run's; --share-data here is FinetuneConfig's
    if config.mode in BC_MODES:
        if base.algo not in CLONING:
            raise ConfigError(f"mode={config.mode} clones a GCBC (or GCIVL) run's policy; {config.pretrained} is an {base.algo!r} "
                              "run (train one with robot-app train --algo gcbc, or pick another mode)")
        cloning = base.gcbc if base.algo == "gcbc" else GCBCConfig(
            lr=base.gcivl.lr, score_sigma=base.gcivl.score_sigma, switch_weight=base.gcivl.switch_weight)
        cloning = replace(cloning, ema_decay=config.ema_decay)
        return replace(run, algo="gcbc", gcbc=replace(cloning, lr=config.lr) if config.lr > 0 else cloning)
    am = replace(base.am, lr=config.lr) if config.lr > 0 else base.am
    am = replace(am, gamma=config.gamma) if config.gamma > 0 else am
    am = replace(am, return_floor=config.return_floor, neg_keep_gripper=config.neg_keep_gripper)
    algo = "am" if base.algo in CLONING else base.algo  # the task Q is AM's, whatever trunk it started from
    return replace(run, algo=algo, am=am)


def build(config: FinetuneConfig, run: TrainConfig, checkpoint: dict | None, device: torch.device) -> TaskQ:
    """A TaskQ: random (scratch) or initialised from the pretrained run, with a fresh Adam.

    The optimiser starts fresh: pretraining's Adam moments describe another loss. A GCBC run
    gives the trunk only. Why start from one: measured on the held-out object (BENCHMARKS.md,
    session 9), the far-goal GCBC with the height input brings the hand over an object it
    never saw in 19 of 20 tasks zero-shot, where the AM run never gets low over any object
    and the fine-tuned models over the held-out one in 0-2 of 20: finding the object is what
    its trunk has learned. Measured, it did not rescue the task Q (0/100 at 50 episodes).
    """
    algo = TaskQ(run.am, network=run.network, device=device, seed=config.seed, precision=run.precision,
                 channels_last=run.channels_last)
    if config.mode != "scratch":
        state = checkpoint["algorithm"]
        if "policy" in state:  # a cloned-policy run (GCBC, GCIVL); of an ensemble, its first member
            weights = acting_weights(state)
            first = "members.0.encoder." if any(k.startswith("members.") for k in weights) else "encoder."
            trunk = {k.removeprefix(first): v for k, v in weights.items() if k.startswith(first)}
            for module in algo.modules().values():
                module.encoder.load_state_dict(trunk)
        else:
            for name, module in algo.modules().items():
                module.load_state_dict(state[name])
    return algo


def build_bc(config: FinetuneConfig, run: TrainConfig, checkpoint: dict | None, device: torch.device) -> GCBC:
    """Mode bc: the GCBC (or GCIVL) run's whole policy, with a fresh Adam (pretraining's moments describe another loss).

    Mode bc-scratch: the same policy (and ensemble size) freshly initialised.
    """
    algo = GCBC(run.gcbc, run.network, device, seed=config.seed, precision=run.precision, channels_last=run.channels_last)
    if config.mode == "bc":
        algo.start_from(acting_weights(checkpoint["algorithm"]))
    return algo


def _open(path: str, network_size: int, what: str) -> Store:
    store = Store.open(path)
    if store.image_size != network_size:
        raise ValueError(f"{path}: {what} images are {store.image_size}x{store.image_size}, the network takes {network_size}")
    return store


def finetune(config: FinetuneConfig, run_dir: str | os.PathLike, progress: bool = True, debug: bool = False) -> Path:
    """Fine-tune into run_dir (a run that load_run and export_run read); returns the last checkpoint."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    if runner.list_checkpoints(run_dir):
        raise FileExistsError(f"{run_dir}: already holds a run's checkpoints; choose another --out")
    config = default_steps(config)
    base, checkpoint = base_train_config(config, debug)
    train_config = run_train_config(config, base)
    device = runner.pick_device(train_config)
    runner.set_threads(train_config)
    store = _open(config.data, base.network.image_size, "task data")
    height = base.network.height_input
    task = task_transitions(store, seed=config.seed, height_input=height)
    goal, goal_episode = task_goal_image(store)
    shared = None
    if config.share_data:  # cds: candidates under the task goal; bc: hindsight goals, as the pretraining drew them
        share_store = _open(config.share_data, base.network.image_size, "shared data")
        sampling = SamplerConfig(p_chain=0.0) if config.mode == "cds" else runner.effective_sampler(train_config)
        shared = GoalSampler(share_store, sampling, seed=config.seed, height_input=height)
    if config.mode in BC_MODES:
        algo, step_fn = build_bc(config, train_config, checkpoint, device), update_bc
    else:
        algo, step_fn = build(config, train_config, checkpoint, device), update
        algo.generator.manual_seed(config.seed + 1)
    # co-training keeps the pretraining's hue turns (run_train_config)
    batches = TaskBatches(task, goal, shared, seed=config.seed, shared_hue=base.augment_hue)
    aug = torch.Generator()
    aug.manual_seed(config.seed + 2)

    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(config, run_dir / "finetune.yaml")
    save_yaml(train_config, run_dir / "config.yaml")
    _write_png(run_dir / "goal.png", goal)
    log = runner.MetricsLog(run_dir, None)
    evaluator = runner.Evaluator(train_config, run_dir, None, ActionScaling.from_dict(store.action_scaling()), goal=goal)
    info = {"task": config.task, "mode": config.mode, "goal_episode": goal_episode, "goal": torch.from_numpy(goal.copy()),
            "config": to_dict(config), "pretrained": _where(config.pretrained)}
    bar = tqdm(total=config.steps, desc=f"finetune {config.mode}", unit="upd", disable=not progress, dynamic_ncols=True)
    window, tick, started, last = [], time.perf_counter(), time.perf_counter(), None
    for step in range(1, config.steps + 1):
        window.append(step_fn(algo, batches, config, device, train_config, aug))
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            row, tick = window_row(step, window, tick, started)
            window = []
            log.write(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss_td", "loss_bc", "q_data", "shared")})
        if evaluator.due(step):
            result = evaluator(step, algo.policy_module())
            best = evaluator.best_step == step
            if best:
                evaluator.save_best(_payload(step, algo, train_config, store, info))
            bar.write(f"step {step}: {config.task} success {result['families'][config.task]['success_rate']}"
                      + (" (best so far: checkpoints/best.pt)" if best else ""))
        if step % config.checkpoint_every == 0 or step == config.steps:
            last = _checkpoint(run_dir, step, algo, train_config, store, info)
    bar.close()
    return last


def _where(pretrained: str) -> str:
    """What the run started from, as an absolute path where it is one (a bare model name stays a name)."""
    return str(Path(pretrained).resolve()) if pretrained and Path(pretrained).exists() else pretrained


def update(algo: TaskQ, batches: TaskBatches, config: FinetuneConfig, device, run: TrainConfig,
           aug: torch.Generator) -> dict[str, torch.Tensor]:
    """One AM update on a task batch, extended in cds mode by the candidates that pass share_mask."""
    b = _to_torch(batches.task_batch(config.batch_size), device, run, aug, algo)
    shared = torch.zeros(())
    if batches.shared is not None:
        candidates = _to_torch(batches.share_candidates(config.share_batch_size), device, run, aug, algo)
        with autocast(device, algo.precision):
            mask = share_mask(algo.data_q(candidates), algo.data_q(b), config.share_percentile)
        b = _concat(b, candidates, mask)
        shared = mask.float().mean()
    metrics = algo.update(b)
    metrics.update(shared=shared, rewarded=b["success"].float().mean(), terminal=b["terminal"].float().mean())
    return metrics


def update_bc(algo: GCBC, batches: TaskBatches, config: FinetuneConfig, device, run: TrainConfig,
              aug: torch.Generator) -> dict[str, torch.Tensor]:
    """One behaviour-cloning update on transitions of the successful task episodes, plus with
    --share-data as many play transitions toward their own hindsight goals (co-training)."""
    batch = batches.success_batch(config.batch_size, config.clone_failed_approaches,
                                  (config.pre_grasp_steps, config.pre_grasp_weight))
    b = _to_torch(batch, device, run, aug, algo)
    if batches.shared is None:
        return algo.update(b)
    play = runner.to_torch(batches.shared.sample(config.share_batch_size), device, run.augment_pad, aug,
                           run.augment_aligned, batches.shared_hue, algo.image_inputs)
    metrics = algo.update({k: torch.cat([b[k], play[k]]) for k in algo.batch_keys})
    metrics["shared"] = torch.tensor(config.share_batch_size / (config.batch_size + config.share_batch_size))
    return metrics


def _payload(step: int, algo: TaskQ | GCBC, train_config: TrainConfig, store: Store, info: dict) -> dict:
    """The runner's checkpoint format (load_run, export_run read it) plus a "finetune" record."""
    return {**runner.weights_payload(train_config, step, algo, store, 1), "finetune": info}


def _checkpoint(run_dir: Path, step: int, algo: TaskQ | GCBC, train_config: TrainConfig, store: Store, info: dict) -> Path:
    path = runner.save_checkpoint(run_dir, step, _payload(step, algo, train_config, store, info), train_config.keep_checkpoints)
    groups = {**runner.CURVE_GROUPS, "task": ["shared", "rewarded", "terminal"]}
    runner.plot_columns(run_dir / "metrics.csv", run_dir / "curve.png", "step", groups, f"finetune {info['mode']} on {Path(store.root).name}")
    return path


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[:, :, ::-1])):
        raise OSError(f"{path}: could not write the goal image")
    os.replace(tmp, path)


def read_png(path: str | os.PathLike) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1])


# ---------------------------------------------------------------------------- export


def export_finetuned(run_dir: str | os.PathLike, out_path: str | os.PathLike, checkpoint: str = "latest",
                     loaded=None, source: str = "") -> tuple[Path, Path, Path]:
    """Export a fine-tuned run like any run, plus its goal image (NAME_goal.png) named in the card.

    `loaded`: the model to export instead of the run's own (training.export.mean_of_runs of
    several fine-tuned runs with this run's goal image), with its `source`.
    Returns (onnx path, card path, goal image path).
    """
    from robot_app.policy import ModelCard, sha256_file
    from training.export import export_loaded_run, export_run

    path = runner.find_checkpoint(run_dir, checkpoint)
    info = torch.load(path, map_location="cpu", weights_only=True).get("finetune")
    if not info:
        raise ValueError(f"{path}: not a fine-tuned run (no finetune record); export it with `robot-app export`")
    if loaded is None:
        onnx_path, card_path = export_run(run_dir, out_path, checkpoint=path.stem)
    else:
        onnx_path, card_path = export_loaded_run(loaded, out_path, source=source)
    goal_path = onnx_path.with_name(f"{onnx_path.stem}_goal.png")
    _write_png(goal_path, info["goal"].numpy())
    card = ModelCard.read(card_path)
    card = replace(card, algo=f"{card.algo}-finetune-{info['mode']}", task=info["task"], goal_image=goal_path.name,
                   goal_image_sha256=sha256_file(goal_path))
    card.write(card_path)
    return onnx_path, card_path, goal_path
