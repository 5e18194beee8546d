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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_app.spec import ACTION_DIM
from training.am import autocast
from training.networks import NetworkConfig, StateGoalEncoder, gripper_feature, set_channels_last


@dataclass(frozen=True)
class GCBCConfig:
    lr: float = 3e-4  # Adam learning rate
    score_sigma: float = 0.25  # width of the exported closeness score, in normalised action units
    switch_weight: float = 1.0  # loss weight of the samples where the logged gripper command is a switch (see gripper_switches)


GRIPPER_CLOSED_ABOVE = 0.2  # measured gripper state (0 open .. 1 closed) above which it counts as closed; ~0.4 holding a cube


def gripper_switches(gripper: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """(B,) bool: samples whose logged gripper command differs from the measured gripper state.

    Those are the moments a gripper closes on an object or lets it go: 1 logged step in 18 of
    the play data, while copying the measured state predicts the command on 94% of steps. A
    cloned policy can therefore fit the data by copying and never switch (measured by
    `robot-app eval --expert`). Weighting these samples up is the keyframe remedy for such
    copycat policies (Wen et al. 2021, "Keyframe-Focused Visual Imitation Learning").
    """
    return (action[:, 4] > 0) != (gripper[:, 0] > GRIPPER_CLOSED_ABOVE)


class BCPolicy(nn.Module):
    """pi(s, g) in [-1, 1]^5 from the current and goal images and the gripper state."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.encoder = StateGoalEncoder(config)
        self.head = nn.Sequential(
            nn.Linear(config.feature_dim + config.proprio_dim, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, ACTION_DIM), nn.Tanh(),
        )

    def forward(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        grip = gripper_feature(gripper, self.config).reshape(-1, self.config.proprio_dim)
        return self.head(torch.cat([self.encoder(image, goal), grip], dim=1))


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


class GCBC:
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
        self.config, self.network, self.device, self.precision = config, network, device, precision
        torch.manual_seed(seed)
        self.policy = set_channels_last(BCPolicy(network), channels_last).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, foreach=foreach)
        self.grad_hook: Callable[[list[torch.Tensor]], None] | None = None

    def parameters(self) -> list[nn.Parameter]:
        return list(self.policy.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy}

    def policy_module(self) -> nn.Module:
        return BCScorer(self.policy, self.config.score_sigma)

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.precision):
            pred = self.policy(b["image"], b["goal"], b["gripper"]).float()
        if self.config.switch_weight == 1.0:  # the plain loss: bit for bit what runs before the option trained
            loss = F.mse_loss(pred, b["action"])
        else:
            per_sample = ((pred - b["action"]) ** 2).mean(dim=1)
            weight = 1.0 + (self.config.switch_weight - 1.0) * gripper_switches(b["gripper"], b["action"]).float()
            loss = (weight * per_sample).sum() / weight.sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook([p.grad for p in self.parameters()])
        self.optimizer.step()
        return {"loss_bc": loss.detach(), "positives": b["success"].float().mean()}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])


def policy_from_state(state: dict, network: NetworkConfig, config: GCBCConfig) -> nn.Module:
    policy = BCPolicy(network)
    policy.load_state_dict(state["policy"])
    return BCScorer(policy, config.score_sigma).eval()
