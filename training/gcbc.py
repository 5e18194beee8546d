"""Goal-conditioned behaviour cloning (GCBC): the baseline that copies logged actions.

Same data and the same hindsight goals as Actionable Models (never chained goals: a goal
from another episode was not reached by the logged action, so copying it would teach
nothing), same conv trunk; the head regresses the logged action (tanh, mean squared
error). There is no value, no bootstrapping and no negatives, which is what the
comparison measures.

For deployment GCBC exports a *scorer* with the Q-network's contract,
score(s, a, g) = exp(-|a - pi(s, g)|^2 / (2 sigma^2)) in (0, 1], so the same ONNX runtime
and CEM pick (approximately) pi(s, g), and a stop threshold on "Q" means "close to the
cloned action" rather than a success probability.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_app.spec import ACTION_DIM, gripper_switches
from training.am import autocast, load_optimizer_state, make_adam
from training.networks import NetworkConfig, StateGoalEncoder, gripper_feature, set_channels_last


@dataclass(frozen=True)
class GCBCConfig:
    lr: float = 3e-4  # Adam learning rate
    score_sigma: float = 0.25  # width of the exported closeness score, in normalised action units
    switch_weight: float = 1.0  # loss weight of the samples where the logged gripper command is a switch (see gripper_switches)
    action_bins: int = 0  # 0: regress the action (tanh, MSE); K >= 3: classify each action dimension into K bins (see BCPolicy)
    members: int = 1  # independently initialised policies trained on the same batches, acting with their mean action (MeanPolicy)
    ema_decay: float = 0.0  # > 0: act with an exponential moving average of the weights at this decay (WeightAverage); 0 = off


class BCPolicy(nn.Module):
    """pi(s, g) in [-1, 1]^5 from the current and goal images and the proprio state.

    With action_bins = K the head classifies each action dimension into K evenly spaced
    values over [-1, 1] and acts with the most likely one. Play data is multimodal: from one
    state the logged hand goes down, sideways or up, and the scripted commands pile up at
    +-1 and 0 (measured on the play store: a third of vx, vy, vz at the ends). A regressed
    mean of such a mixture is an action nobody took, often a hover; the per-dimension
    mode is one the data holds (the discretised heads of RT-1, the logistic mixtures of
    Play-LMP for the same reason).

    Measured here it does not pay (session 10, 21 bins, 2 seeds, 100 grasp tasks):
    grasp 1% and 0% at 12000 updates against 41% and 7% regressed, reach alike. Along the
    expert's descent its classes split about a third each between down, hold and up
    (bench/bc_along_expert.py), so the mode often goes up where the regressed mean still
    goes down at half speed. The option stays for data whose modes are cleaner.
    """

    def __init__(self, config: NetworkConfig, action_bins: int = 0):
        super().__init__()
        if action_bins != 0 and action_bins < 3:
            raise ValueError(f"gcbc.action_bins={action_bins}: 0 (regression) or at least 3")
        self.config, self.action_bins = config, int(action_bins)
        self.encoder = StateGoalEncoder(config)
        outputs = ACTION_DIM * max(self.action_bins, 1)
        self.head = nn.Sequential(
            nn.Linear(config.feature_dim + config.proprio_dim, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, outputs), *([] if self.action_bins else [nn.Tanh()]),
        )
        if self.action_bins:
            k = self.action_bins - 1  # integer numerators: the ends are exactly -1 and 1 and the middle bin exactly 0
            self.register_buffer("bin_values", (2.0 * torch.arange(k + 1) - k) / k, persistent=False)

    def raw(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        """The head's output: the action (B, 5), or with bins the logits (B, 5, K)."""
        grip = gripper_feature(gripper, self.config).reshape(-1, self.config.proprio_dim)
        out = self.head(torch.cat([self.encoder(image, goal), grip], dim=1))
        return out.reshape(-1, ACTION_DIM, self.action_bins) if self.action_bins else out

    def forward(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        return self.action_of(self.raw(image, goal, gripper))

    def action_of(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, 5) action from the head's output: itself, or with bins the most likely bin's value."""
        return self.bin_values[raw.argmax(dim=-1)] if self.action_bins else raw

    def per_sample_loss(self, raw: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B,) loss against the logged action: squared error, or cross-entropy of its nearest bin, averaged over dimensions."""
        if not self.action_bins:
            return ((raw.float() - action) ** 2).mean(dim=1)
        target = torch.round((action.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.action_bins - 1)).long()
        return F.cross_entropy(raw.float().transpose(1, 2), target, reduction="none").mean(dim=1)

    def loss(self, raw: torch.Tensor, action: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if weight is None and not self.action_bins:  # the plain loss: bit for bit what ran before bins and weights
            return F.mse_loss(raw.float(), action)
        per_sample = self.per_sample_loss(raw, action)
        return per_sample.mean() if weight is None else (weight * per_sample).sum() / weight.sum()


class BCScorer(nn.Module):
    """The Q contract for a BC policy: forward(image, goal, gripper (B,P) proprio, actions (B,N,5)) -> (B,N) in (0, 1]."""

    def __init__(self, policy: BCPolicy, sigma: float):
        super().__init__()
        self.policy = policy
        self.sigma = float(sigma)

    def forward(self, image, goal, gripper, actions) -> torch.Tensor:
        mu = self.policy(image, goal, gripper)
        sq = ((actions - mu[:, None, :]) ** 2).sum(dim=-1)
        return torch.exp(-sq / (2.0 * self.sigma**2))


class MeanPolicy(nn.Module):
    """The mean action of several cloned policies with the same inputs (an ensemble).

    Seeds of the pre-grasp recipe each grasp 35-37% of 300 tasks and fail on different ones;
    their mean action grasped 45% of the same 300 (BENCHMARKS.md, session 13). It exports
    like one policy (inside a BCScorer), at the cost of one forward pass per member.

    It trains like one policy too (`gcbc.members`): `raw` stacks the members' outputs and
    `loss` averages their own losses, so each member gets the gradient it would get alone
    on the same batch, scaled by 1/M, which Adam does not see; they differ only by their
    initialisation.

    The mean is no better than its best member when the members disagree in quality:
    fine-tuned on the held-out grasp (BENCHMARKS.md, session 14) the three pretrained
    members grasp 34, 6 and 11 of 300 tasks alone and 21 of 300 as their mean.
    """

    def __init__(self, policies: list[BCPolicy]):
        super().__init__()
        if not policies:
            raise ValueError("an ensemble needs at least one policy")
        if len({(p.config.image_size, p.config.height_input, p.config.gripper_input) for p in policies}) != 1:
            raise ValueError("the policies take different inputs (image size, height or gripper input); they cannot be averaged")
        self.members = nn.ModuleList(policies)
        self.config = policies[0].config

    def forward(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        return torch.stack([p(image, goal, gripper) for p in self.members]).mean(dim=0)

    def raw(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        """Every member's head output, stacked: (M, B, 5), or with bins (M, B, 5, K)."""
        return torch.stack([p.raw(image, goal, gripper) for p in self.members])

    def action_of(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.stack([p.action_of(r) for p, r in zip(self.members, raw, strict=True)]).mean(dim=0)

    def loss(self, raw: torch.Tensor, action: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([p.loss(r, action, weight) for p, r in zip(self.members, raw, strict=True)]).mean()


def make_policy(network: NetworkConfig, config: GCBCConfig) -> BCPolicy | MeanPolicy:
    """One BCPolicy, or an ensemble of `config.members` of them (each with its own initialisation)."""
    if config.members < 1:
        raise ValueError(f"gcbc.members={config.members}: must be a positive integer")
    if config.members == 1:
        return BCPolicy(network, config.action_bins)
    return MeanPolicy([BCPolicy(network, config.action_bins) for _ in range(config.members)])


class GCBC:
    image_inputs = ("image", "goal")  # what update() reads: cloning never looks at the next frame
    batch_keys = ("image", "goal", "gripper", "action", "success")  # everything update() reads

    def __init__(
        self,
        config: GCBCConfig,
        network: NetworkConfig,
        device: torch.device,
        seed: int = 0,
        precision: str = "bf16",
        channels_last: bool = True,
        foreach: bool = True,
    ):
        if config.score_sigma <= 0:
            raise ValueError(f"gcbc.score_sigma={config.score_sigma}: must be > 0")
        if config.switch_weight <= 0:
            raise ValueError(f"gcbc.switch_weight={config.switch_weight}: must be > 0")
        if not 0.0 <= config.ema_decay < 1.0:
            raise ValueError(f"gcbc.ema_decay={config.ema_decay}: must be in [0, 1) (0 = off)")
        self.config, self.network, self.device, self.precision = config, network, device, precision
        torch.manual_seed(seed)
        self.policy = set_channels_last(make_policy(network, config), channels_last).to(device)
        self.optimizer = make_adam(self.policy.parameters(), config.lr, foreach, device)
        self.average = WeightAverage(self.policy, config.ema_decay) if config.ema_decay > 0 else None
        self.grad_hook: Callable[[list[torch.Tensor]], None] | None = None

    def parameters(self) -> list[nn.Parameter]:
        return list(self.policy.parameters())

    def modules(self) -> dict[str, nn.Module]:
        """What DDP broadcasts at the start and compares at the end: the policy, and its weight average."""
        return {"policy": self.policy} if self.average is None else {"policy": self.policy, "average": self.average.module}

    def start_from(self, weights: dict) -> None:
        """Load a pretrained policy's weights (a fine-tune's start); the weight average starts there too."""
        self.policy.load_state_dict(weights)
        if self.average is not None:
            self.average = WeightAverage(self.policy, self.config.ema_decay)

    def acting_policy(self) -> nn.Module:
        """The policy a rollout or an export runs: the weight average where there is one."""
        return self.policy if self.average is None else self.average.module

    def policy_module(self) -> nn.Module:
        return BCScorer(self.acting_policy(), self.config.score_sigma)

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.precision):
            raw = self.policy.raw(b["image"], b["goal"], b["gripper"])
        weight = None
        if self.config.switch_weight != 1.0:
            weight = 1.0 + (self.config.switch_weight - 1.0) * gripper_switches(b["gripper"], b["action"]).float()
        loss = self.policy.loss(raw, b["action"], weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook([p.grad for p in self.parameters()])
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.policy)
        return {"loss_bc": loss.detach(), "positives": b["success"].float().mean()}

    def state_dict(self) -> dict:
        state = {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """A resume, or a new run's start (`init_from`). A checkpoint that kept no average (a
        pretraining run) starts this run's average at its weights, as `start_from` does."""
        self.policy.load_state_dict(state["policy"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        if self.average is not None:
            if "average" in state:
                self.average.load_state_dict(state["average"])
            else:
                self.average = WeightAverage(self.policy, self.config.ema_decay)


class WeightAverage:
    """An exponential moving average of a policy's weights, the policy that acts (Polyak-Ruppert averaging).

    Why: fine-tuned on 50 labelled attempts, cloned policies differ a lot between seeds, and
    the mean action of three grasps 1.3x to 1.6x as often as each alone (BENCHMARKS.md,
    session 17). Averaging one run's weights over its last few hundred updates is the cheap
    cousin of that ensemble: it smooths the noise of small-batch updates at no run-time cost,
    as diffusion policies and robomimic's diffusion runs do (decay 0.999 or so there).
    Measured, it does not pay here (session 18, decay 0.999, 3 seeds x 100 tasks): fresh
    fine-tunes 52/300 against 39/300 without, pretrained ones 52/300 against 52/300, both
    inside the spread between trained models. Off by default.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so the start
    (random or pretrained weights) does not linger in the average of a short run. All of it
    is tensor arithmetic on the policy's device, so a CUDA graph captures it with the update.
    """

    def __init__(self, policy: nn.Module, decay: float):
        self.decay = float(decay)
        self.module = copy.deepcopy(policy).requires_grad_(False)
        self.updates = torch.zeros((), device=next(policy.parameters()).device)

    def update(self, policy: nn.Module) -> None:
        with torch.no_grad():
            keep = torch.clamp((1.0 + self.updates) / (10.0 + self.updates), max=self.decay)
            averaged, current = list(self.module.parameters()), [p.detach() for p in policy.parameters()]
            torch._foreach_mul_(averaged, keep)
            torch._foreach_add_(averaged, torch._foreach_mul(current, 1.0 - keep))
            self.updates += 1.0

    def state_dict(self) -> dict:
        return {"weights": self.module.state_dict(), "updates": self.updates.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"])
        self.updates.copy_(state["updates"])


def acting_weights(state: dict) -> dict:
    """A GCBC checkpoint's policy weights to act with (or start a fine-tune from): the average where there is one."""
    return state["average"]["weights"] if "average" in state else state["policy"]


def policy_from_state(state: dict, network: NetworkConfig, config: GCBCConfig) -> nn.Module:
    policy = make_policy(network, config)
    policy.load_state_dict(acting_weights(state))
    return BCScorer(policy, config.score_sigma).eval()
