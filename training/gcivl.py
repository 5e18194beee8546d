"""Goal-conditioned implicit V-learning (GCIVL): behaviour cloning weighted by how much each step advances.

GCBC copies every logged action toward a hindsight goal, including the detours: over a cube,
with a goal image that shows it lifted, play data holds steps down (grasps) and steps up
(wandering that grasps later), and the regressed mean hovers (BENCHMARKS.md, session 10).
GCIVL (Park et al., OGBench 2024; the value half of IQL, Kostrikov et al. 2021) learns an
action-free value V(s, g) from the same relabelled transitions and clones each action with
the weight exp(alpha * P), P = gamma V(s', g) - V(s, g) the steps it gained: about 1 on a
shortest path, about 0 for a step that keeps its distance, -1 for a detour. With OGBench's
alpha 10 and clip 100, steps along the best path the data shows weigh 100, stalls 1 and
detours next to nothing. Unlike AM's Q it never evaluates an action the data did not take, so it cannot be
fooled by out-of-distribution actions and needs no negatives.

    reward -1 a step until the goal; V(s, g) ~ -(1 - gamma^d) / (1 - gamma) for a goal d steps away
    y = -(1 - gamma^k) / (1 - gamma)     the logged path's discounted return (it reached g in k steps; the default)
    y = max(-1 + gamma min_k Vtarget_k(s', g), that return), -1 if g is frame t+1   (`bootstrap`: TD, floored)
    value loss  = sum_k expectile_tau(y - V_k(s, g))            (tau 0.9: near the best the data shows)
    policy loss = mean_b min(exp(alpha P_b), max_weight) |pi(s_b, g_b) - a_b|^2,  P = gamma V(s', g) - V(s, g)

By default the value is a supervised distance: the 0.9-expectile of the logged returns from
(s, g), no bootstrapping. Measured on the play store, TD targets drifted optimistic within
a few thousand updates (a goal 20-49 logged steps away was worth 2.4 steps): consecutive
frames look alike, so V(s') ~ V(s) and -1 + gamma V(s') pulls every value toward "one step
away". Bootstrapping is what stitches paths across episodes, and stays an option for long
budgets; only then is the Polyak target read.

The value's heads run in float32 (P is a difference of about one step on a scale of 100,
below bf16's resolution there) and output V in units of 1 / (1 - gamma), starting
pessimistic at "never reached" (see GoalValue). Two heads share one image trunk (OGBench's
double V). Each update encodes s by the value (with gradient) and the policy, s' by the
value (for P), and with `bootstrap` s' by the target too.

The policy and its export are GCBC's (BCPolicy and BCScorer), so export, the ONNX runtime and
fine-tuning treat a GCIVL run as a GCBC run.

Measured here it does not pay at a CPU budget (session 13, BENCHMARKS.md; seed 0, GCBC's
grasp recipe, 100 grasp tasks a checkpoint): 2 grasps in 1200 tasks over every variant at
3000-12000 updates, where GCBC had 14/7% at 6000 and 18/29% at 9000; it reaches as well (17-19
of 20). The value is not accurate to a step by then (bench/gcivl_value.py): too pessimistic
for near goals and optimistic for far ones, so P follows the goal's distance, the weights
favour near goals, and the policy hovers over the object as AM does. OGBench trains it for
500k-1M updates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robot_app.spec import gripper_switches
from training.am import autocast, load_optimizer_state, make_adam, polyak
from training.gcbc import BCPolicy, BCScorer
from training.networks import NetworkConfig, StateGoalEncoder, gripper_feature, set_channels_last


@dataclass(frozen=True)
class GCIVLConfig:
    lr: float = 3e-4  # Adam learning rate of the policy and the value
    gamma: float = 0.99  # discount a control step; V of a goal d steps away ~ -(1 - gamma^d) / (1 - gamma)
    expectile: float = 0.9  # value regression's asymmetry: 0.5 is the mean over the data's paths, toward 1 the best
    tau: float = 0.005  # Polyak rate of the target value per update
    alpha: float = 10.0  # AWR inverse temperature on the steps a logged action gained
    max_weight: float = 100.0  # clip of exp(alpha * P)
    return_floor: bool = True  # targets no lower than the logged path's own discounted return
    bootstrap: bool = False  # true: TD targets through a Polyak target (stitches paths; drifts optimistic on short budgets)
    score_sigma: float = 0.25  # width of the exported closeness score (as gcbc.score_sigma)
    switch_weight: float = 1.0  # extra loss weight of gripper switches (as gcbc.switch_weight)


def _validate(c: GCIVLConfig) -> None:
    checks = {
        "lr": c.lr > 0, "gamma": 0 < c.gamma < 1, "expectile": 0 < c.expectile < 1, "tau": 0 < c.tau <= 1,
        "alpha": c.alpha >= 0, "max_weight": c.max_weight >= 1, "score_sigma": c.score_sigma > 0,
        "switch_weight": c.switch_weight > 0,
    }
    bad = [f"gcivl.{name}={getattr(c, name)}" for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{', '.join(bad)}: out of range (lr, score_sigma, switch_weight > 0; gamma, expectile in (0, 1); "
                         "tau in (0, 1]; alpha >= 0; max_weight >= 1)")


class GoalValue(nn.Module):
    """V_k(s, g), k = 1, 2: one image trunk, two float32 heads -> (B, 2) in steps (<= 0 once trained).

    The heads output V / scale (scale = 1 / (1 - gamma), the value of a goal never reached), so
    the network works in [-1, 0]. Adam moves a weight by about lr an update whatever the
    gradient's size: a head that had to output -100 or -20 itself takes thousands of updates
    to get there, and measured on a toy of two states it still gave both the same value after
    600 updates. GCIVL starts it at "never reached", -1 / (1 - gamma): bootstrapping from 0,
    every goal first looks one step away (measured: mean V -1.2 steps after 200 updates, for
    goals 17 logged steps away on average).
    """

    def __init__(self, config: NetworkConfig, heads: int = 2, scale: float = 1.0, initial_value: float = 0.0):
        super().__init__()
        self.config, self.scale = config, float(scale)
        self.encoder = StateGoalEncoder(config)
        self.head = nn.Sequential(
            nn.Linear(config.feature_dim + config.proprio_dim, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, heads),
        )
        nn.init.constant_(self.head[-1].bias, initial_value / self.scale)

    def forward(self, image: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        features = self.encoder(image, goal).float()
        grip = gripper_feature(gripper, self.config).reshape(-1, self.config.proprio_dim).float()
        with torch.autocast(features.device.type, enabled=False):
            return self.scale * self.head(torch.cat([features, grip], dim=1))


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric squared error: errors where the target is above the prediction weigh `expectile`."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff**2


class GCIVL:
    """BCPolicy + GoalValue (+ target), one Adam; `update(batch)` returns detached metrics."""

    image_inputs = ("image", "next_image", "goal")  # what update() reads: the value's advantage needs the next frame

    def __init__(
        self,
        config: GCIVLConfig,
        network: NetworkConfig,
        device: torch.device,
        seed: int = 0,
        precision: str = "bf16",
        channels_last: bool = True,
        foreach: bool = True,
    ):
        _validate(config)
        self.config, self.network, self.device, self.precision = config, network, device, precision
        torch.manual_seed(seed)
        self.policy = set_channels_last(BCPolicy(network), channels_last).to(device)
        never = -1.0 / (1.0 - config.gamma)
        self.value = set_channels_last(GoalValue(network, scale=-never, initial_value=never), channels_last).to(device)
        self.target = copy.deepcopy(self.value).requires_grad_(False)
        self.optimizer = make_adam(self.parameters(), config.lr, foreach, device)
        self.grad_hook: Callable[[list[torch.Tensor]], None] | None = None

    def parameters(self) -> list[nn.Parameter]:
        return [*self.policy.parameters(), *self.value.parameters()]

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "value": self.value, "target": self.target}

    def policy_module(self) -> nn.Module:
        return BCScorer(self.policy, self.config.score_sigma)

    def value_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) what V(s, g) regresses, in steps.

        Bootstrapped: -1 on reaching the goal, else -1 + gamma min_k Vtarget_k(s', g), floored by
        the logged return. Without `bootstrap`: the logged return itself, a supervised distance
        with no optimistic drift (a goal with no logged path, a chained one, is "never": -1 / (1 - gamma)).
        """
        cfg = self.config
        steps = b["steps_to_goal"].float()
        logged = -(1.0 - cfg.gamma**steps) / (1.0 - cfg.gamma)
        if not cfg.bootstrap:
            return torch.where(steps > 0, logged, -1.0 / (1.0 - cfg.gamma))
        with torch.no_grad(), autocast(self.device, self.precision):
            next_value = self.target(b["next_image"], b["goal"], b["next_gripper"]).min(dim=1).values
        y = -1.0 + cfg.gamma * torch.where(b["success"], 0.0, next_value)
        return torch.where(steps > 0, torch.maximum(y, logged), y) if cfg.return_floor else y

    def progress(self, b: dict[str, torch.Tensor], value: torch.Tensor) -> torch.Tensor:
        """(B,) P = gamma V(s', g) - V(s, g), both from the online value (OGBench's actor); V(g, g) = 0.

        value: V(s, g) of this batch, (B, heads). Measuring V(s') with the lagging target net
        instead saves a forward pass but makes P the lag: measured, it read +2 to +5 on every
        band of goal distance after 9000 updates.
        """
        with torch.no_grad(), autocast(self.device, self.precision):
            next_value = self.value(b["next_image"], b["goal"], b["next_gripper"]).mean(dim=1)
        return self.config.gamma * torch.where(b["success"], 0.0, next_value) - value.detach().mean(dim=1)

    def awr_weight(self, progress: torch.Tensor, b: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        weight = torch.exp(cfg.alpha * progress).clamp(max=cfg.max_weight)
        if cfg.switch_weight != 1.0:
            weight = weight * (1.0 + (cfg.switch_weight - 1.0) * gripper_switches(b["gripper"], b["action"]).float())
        return weight

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        target = self.value_target(b)
        with autocast(self.device, self.precision):
            v = self.value(b["image"], b["goal"], b["gripper"])
            raw = self.policy.raw(b["image"], b["goal"], b["gripper"])
        value_loss = expectile_loss(target[:, None] - v, cfg.expectile).sum(dim=1).mean()
        progress = self.progress(b, v)
        weight = self.awr_weight(progress, b)
        policy_loss = (weight * self.policy.per_sample_loss(raw, b["action"])).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (value_loss + policy_loss).backward()
        if self.grad_hook is not None:
            self.grad_hook([p.grad for p in self.parameters()])
        self.optimizer.step()
        if cfg.bootstrap:  # only TD targets read the target net
            polyak(self.target, self.value, cfg.tau)
        return {"loss_value": value_loss.detach(), "loss_bc": policy_loss.detach(), "value": v.detach().mean(),
                "progress": progress.mean(), "weight": weight.mean(), "positives": b["success"].float().mean()}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.target.load_state_dict(state["target"])
        load_optimizer_state(self.optimizer, state["optimizer"])
