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

Modes (same data, steps and hyperparameters; only the start and the batches differ):
  scratch     random initialisation
  pretrained  both Q-networks and their targets from the goal-conditioned run
  cds         pretrained, plus conservative data sharing (Yu et al. 2021, "Conservative
              Data Sharing for Multi-Task Offline RL") from the large unlabelled store:
              each update draws candidate transitions from it and shares those whose
              conservative task Q is at least the `share_percentile`-th percentile of the
              task batch's Q; shared transitions take reward 0 and are never terminal.

Why the 90th percentile by default: the play data never contain the held-out object, so
most of it is irrelevant to the task, and reward-0 sharing of an irrelevant transition is
harmless only as long as it does not pull the Q of the task's good states down. CDS's
point is to share only where the shared data do not widen the distribution shift: a
transition the conservative Q already rates like the best tenth of the task's own data
(approach, close, lift) is one whose reward-0 backup adds coverage without contradicting
the labels. Lower percentiles share more and behave more like sharing everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from robot_app.store import Store
from training.am import AMConfig, ActionableModels
from training.sampler import GoalSampler, SamplerConfig

MODES = ("scratch", "pretrained", "cds")


@dataclass(frozen=True)
class FinetuneConfig:
    mode: str = "pretrained"  # scratch | pretrained | cds (see module docstring)
    task: str = "grasp-heldout"  # task name written into the model card
    steps: int = 3000  # gradient updates
    batch_size: int = 64  # labelled task transitions per update
    share_batch_size: int = 64  # unlabelled candidate transitions per update (cds only)
    share_percentile: float = 90.0  # share a candidate whose task Q >= this percentile of the task batch's Q
    augment_pad: int = 4  # random-shift augmentation of current, next and goal images (0 = off)
    precision: str = "bf16"  # bf16 autocast for convs and matmuls (fp32 to turn off)
    seed: int = 0  # torch, numpy and sampler seed
    log_every: int = 50  # updates between metrics rows
    checkpoint_every: int = 500  # updates between checkpoints
    am: AMConfig = field(default_factory=AMConfig)  # the update's hyperparameters, as in pretraining (chaining unused)


def check_config(config: FinetuneConfig) -> None:
    """Refuse settings that cannot run, naming the key."""
    if config.mode not in MODES:
        raise ValueError(f"finetune.mode={config.mode!r}: expected one of {', '.join(MODES)}")
    if not 0.0 <= config.share_percentile <= 100.0:
        raise ValueError(f"finetune.share_percentile={config.share_percentile}: must be in [0, 100]")
    for name in ("steps", "batch_size", "share_batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"finetune.{name}={getattr(config, name)}: must be a positive integer")


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

    @property
    def t(self) -> np.ndarray:
        return self.index.t_index

    def __len__(self) -> int:
        return len(self.reward)


def task_transitions(store: Store, seed: int = 0) -> TaskTransitions:
    """Rewards from episode labels: terminal at each episode's end, 1 there only if it succeeded."""
    success = episode_labels(store)
    if not success.any():
        raise ValueError(f"{store.root}: no episode is labelled a success, so the task has no reward to learn from")
    index = GoalSampler(store, SamplerConfig(p_chain=0.0), seed=seed)
    terminal = index.t_index == index.t_last - 1
    succeeded = success[np.asarray(store.episode[index.t_index])]
    reward = (terminal & succeeded).astype(np.float32)
    return TaskTransitions(index=index, reward=reward, terminal=terminal)


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
