"""Actionable Models: offline goal-conditioned conservative Q-learning (Chebotar et al. 2021).

Q(s, a, g) in (0, 1) is the discounted probability of reaching goal image g. The update:

    y = 1                                              if g is frame t+1 (success, terminal)
    y = gamma * min_k Qtarget_k(s', a*, g)             otherwise, a* = CEM argmax of Qtarget_1
    loss = BCE(Q_1(s, a, g), y) + BCE(Q_2(s, a, g), y)           (clipped double Q)
         + w * mean_K [BCE(Q_1(s, a_neg, g), 0) + BCE(Q_2(s, a_neg, g), 0)]   (artificial negatives)

Artificial negatives are the conservative term: for each (s, g), `neg_candidates`
candidate actions, those within `neg_min_distance` of the logged action rejected (they would
reach about the same place), `neg_count` kept, half drawn by softmax of the current Q
(exp(Q / temperature): the wrong actions the network currently likes most) and half
uniformly. Without them, actions never seen in the data keep whatever value the network
extrapolates, and CEM finds them.

Candidates come from two pools. Uniform actions alone are too easy: scripted play actions
have a shape of their own (saturated axes, a still wrist), so the network learns "looks like
a logged action -> high Q" and ignores the goal. On our sim data after 3000 updates Q gave
0.74 to the logged action, 0.73 to the same motion reversed and 0.01 to uniform actions, and
the CEM policy drove the arm the same way whatever the goal. A fraction
`neg_data_fraction` of the candidates are therefore other transitions' logged actions (the
data's action marginal): data-like actions that do not lead to this goal, which only the
goal can tell apart from the right one.

gamma = 0.9 a control step (10 Hz): Q of a goal d steps away is ~0.9^d, so goals 1-30
steps away (2 cm steps, the reach of one play episode) stay distinguishable in float, and
value spreads over a 60-step episode in a few hundred target updates.

Return floor (`return_floor`, off by default for goal reaching, on for fine-tuning). The
logged actions from s_t reached g after k steps, so the optimal Q of the logged action is at
least gamma^(k-1): the data's own discounted return is a lower bound on Q*, and
y = max(y, gamma^(k-1)) is still a valid target (the Monte Carlo lower bound of Cal-QL,
Nakamoto et al. 2023, and of "Q-learning with lower bounds" before it). What it buys is
speed: bootstrapping through Polyak targets (tau 0.005) moves value back about one step
per few hundred updates, so on a CPU budget of a few thousand updates the start of a
50-step success never hears of it; the floor puts it there on the first update. Chained
goals have no logged path (k = 0) and keep the plain bootstrap, so a chained goal still
never gets target 1 from relabeling. It lifts only the logged action; the artificial
negatives still pull every other action down.

Chaining (goals from other episodes) is the sampler's job; `chaining=False` zeroes its
p_chain (the `am-nochain` preset), `negatives=False` drops the conservative term
(`am-nonneg`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robot_app.cem import CEMSettings
from robot_app.spec import ACTION_DIM
from training.cem import cem_maximize_torch
from training.networks import NetworkConfig, QNetwork, set_channels_last


@dataclass(frozen=True)
class AMConfig:
    gamma: float = 0.9  # discount per control step (see module docstring)
    lr: float = 3e-4  # Adam learning rate for both Q-networks
    tau: float = 0.005  # Polyak rate of the target networks per update
    chaining: bool = True  # goals from other episodes (sampler.p_chain); false = `am-nochain`
    negatives: bool = True  # artificial negatives (conservative term); false = `am-nonneg`
    neg_candidates: int = 16  # M candidate actions per (s, g)
    neg_data_fraction: float = 0.5  # share of the candidates taken from other transitions' logged actions
    neg_count: int = 4  # K negatives kept per (s, g): K//2 by softmax of Q, the rest uniform
    neg_min_distance: float = 0.5  # candidates closer than this (L2, normalised action) to the logged one are rejected
    neg_temperature: float = 0.1  # softmax temperature over Q in (0, 1) for picking negatives
    neg_weight: float = 1.0  # weight of the negatives' loss (averaged over the K negatives)
    neg_keep_gripper: bool = False  # candidates keep the logged gripper command (see negative_candidates)
    target_cem: CEMSettings = CEMSettings(samples=64, elites=6, iterations=2)  # max over a' in targets (QT-Opt's)
    return_floor: bool = False  # y >= gamma^(k-1) when the logged actions reached g in k steps (see docstring)


def autocast(device: torch.device, precision: str):
    """bf16 autocast for convs and matmuls when asked; losses and targets stay float32."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision={precision!r}: expected 'fp32' or 'bf16'")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def make_adam(params, lr: float, foreach: bool, device: torch.device) -> torch.optim.Adam:
    """Adam over all tensors at once when `foreach` (the optimised setting): on a GPU as one fused
    kernel, on the CPU as foreach ops; otherwise torch's per-tensor loop (the plain baseline)."""
    if foreach and device.type == "cuda":
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr, foreach=foreach)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Moments and step counts from a checkpoint; how the step runs stays this machine's.

    A saved Adam carries its flags (fused, capturable: a GPU run's) and torch would restore
    them too, so a GPU checkpoint resumed on a CPU would ask for a CUDA-only step. The flags
    are put back to what this optimizer was built with, and the step counts where they
    belong: beside the parameters for a fused or capturable step, on the host otherwise.
    """
    flags = [{k: g[k] for k in ("fused", "foreach", "capturable") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, flags, strict=True):
        group.update(own)
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            entry = optimizer.state.get(p, {})
            if torch.is_tensor(entry.get("step")):
                entry["step"] = entry["step"].to(p.device if on_device else "cpu", torch.float32)


def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def _validate(config: AMConfig) -> None:
    if not 0.0 < config.gamma < 1.0:
        raise ValueError(f"am.gamma={config.gamma}: must be in (0, 1)")
    if config.negatives and not 1 <= config.neg_count <= config.neg_candidates:
        raise ValueError(f"am.neg_count={config.neg_count}: must be in [1, am.neg_candidates={config.neg_candidates}]")
    if not 0.0 <= config.neg_data_fraction <= 1.0:
        raise ValueError(f"am.neg_data_fraction={config.neg_data_fraction}: must be in [0, 1]")
    if config.neg_temperature <= 0:
        raise ValueError(f"am.neg_temperature={config.neg_temperature}: must be > 0")


class ActionableModels:
    """Two Q-networks, two Polyak targets, one Adam; `update(batch)` returns detached metrics."""

    image_inputs = ("image", "next_image", "goal")  # what update() reads: the target encodes the next frame

    def __init__(
        self,
        config: AMConfig,
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
        self.q1 = set_channels_last(QNetwork(network), channels_last).to(device)
        self.q2 = set_channels_last(QNetwork(network), channels_last).to(device)
        self.t1, self.t2 = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for target in (self.t1, self.t2):
            target.requires_grad_(False)
        self.optimizer = make_adam(self.parameters(), config.lr, foreach, device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed + 1)
        self.grad_hook: Callable[[list[torch.Tensor]], None] | None = None  # DDP: all-reduce gradients here

    def parameters(self) -> list[nn.Parameter]:
        return [*self.q1.parameters(), *self.q2.parameters()]

    def modules(self) -> dict[str, nn.Module]:
        return {"q1": self.q1, "q2": self.q2, "t1": self.t1, "t2": self.t2}

    def policy_module(self) -> nn.Module:
        """The Q-network a policy maximises (ONNX contract): Q_1."""
        return self.q1

    @torch.no_grad()
    def td_target(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = 1 on success, else gamma * min_k Qtarget_k(s', a*, g); each state encoded once per target net."""
        f1 = self.t1.encode(b["next_image"], b["goal"])
        f2 = self.t2.encode(b["next_image"], b["goal"])
        grip = b["next_gripper"]
        best, _ = cem_maximize_torch(
            lambda a: self.t1.head_logits(f1, grip, a), len(grip), self.config.target_cem, self.device, self.generator
        )
        q1 = torch.sigmoid(self.t1.head_logits(f1, grip, best[:, None]).float())[:, 0]
        q2 = torch.sigmoid(self.t2.head_logits(f2, grip, best[:, None]).float())[:, 0]
        bootstrap = self.config.gamma * torch.minimum(q1, q2)
        y = torch.where(b["success"], torch.ones_like(bootstrap), bootstrap)
        return torch.maximum(y, self.return_floor(b)) if self.config.return_floor else y

    def return_floor(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """gamma^(k-1) where the logged actions reached the goal in k steps, 0 where they never did (k = 0)."""
        k = b["steps_to_goal"].float()
        return torch.where(k > 0, self.config.gamma ** (k - 1.0), torch.zeros_like(k))

    @torch.no_grad()
    def pick_negatives(self, features: torch.Tensor, gripper: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B,K,5) actions away from the logged ones: K//2 by softmax of Q_1 / temperature, the rest uniform."""
        cfg = self.config
        batch, k = action.shape[0], cfg.neg_count
        cand = self.negative_candidates(action)
        dist = torch.linalg.vector_norm(cand - action[:, None, :], dim=-1)
        kth_farthest = dist.topk(k, dim=1).values[:, -1:]
        valid = (dist >= cfg.neg_min_distance) | (dist >= kth_farthest)  # always at least K to choose from
        q = torch.sigmoid(self.q1.head_logits(features, gripper, cand).float())
        weights = torch.where(valid, torch.exp((q - 1.0) / cfg.neg_temperature).clamp_min(1e-30), 0.0)
        k_soft = k // 2
        chosen = torch.multinomial(weights, k_soft, generator=self.generator) if k_soft else cand.new_zeros((batch, 0), dtype=torch.long)
        rest = valid.float().scatter(1, chosen, 0.0)
        uniform = torch.multinomial(rest, k - k_soft, generator=self.generator)
        idx = torch.cat([chosen, uniform], dim=1)
        return torch.gather(cand, 1, idx[:, :, None].expand(-1, -1, ACTION_DIM))

    @torch.no_grad()
    def negative_candidates(self, action: torch.Tensor) -> torch.Tensor:
        """(B,M,5): uniform actions, and logged actions of other rows of the batch (the data marginal).

        With `neg_keep_gripper` every candidate takes the logged gripper command, so the
        conservative term is about where to move and never about when to close or open.
        Gripper switches are rare in the data (1 logged step in 18), so negatives that flip the
        gripper push a switch's Q down at nearly every state and teach "keep the gripper as it
        is": measured with `robot-app eval --expert`, AM made 0 of 140 of the expert's switches
        on time, AM without negatives 25 (random actions 40).
        """
        batch, m = action.shape[0], self.config.neg_candidates
        from_data = int(round(m * self.config.neg_data_fraction)) if batch > 1 else 0
        uniform = torch.rand((batch, m - from_data, ACTION_DIM), generator=self.generator, device=self.device) * 2.0 - 1.0
        rows = torch.randint(0, batch, (batch, from_data), generator=self.generator, device=self.device)
        candidates = torch.cat([uniform, action[rows]], dim=1)
        if self.config.neg_keep_gripper:
            candidates[:, :, 4] = action[:, None, 4]
        return candidates

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        with autocast(self.device, self.precision):
            y = self.td_target(b)
            f1, f2 = self.q1.encode(b["image"], b["goal"]), self.q2.encode(b["image"], b["goal"])
            data = b["action"][:, None, :]
            logit1 = self.q1.head_logits(f1, b["gripper"], data)[:, 0].float()
            logit2 = self.q2.head_logits(f2, b["gripper"], data)[:, 0].float()
            loss_td = F.binary_cross_entropy_with_logits(logit1, y) + F.binary_cross_entropy_with_logits(logit2, y)
            metrics = {"loss_td": loss_td.detach() / 2, "q_data": torch.sigmoid(logit1.detach()).mean()}
            loss = loss_td
            if cfg.negatives:
                neg = self.pick_negatives(f1.detach(), b["gripper"], b["action"])
                n1 = self.q1.head_logits(f1, b["gripper"], neg).float()
                n2 = self.q2.head_logits(f2, b["gripper"], neg).float()
                zeros = torch.zeros_like(n1)
                loss_neg = F.binary_cross_entropy_with_logits(n1, zeros) + F.binary_cross_entropy_with_logits(n2, zeros)
                loss = loss + cfg.neg_weight * loss_neg
                metrics.update(loss_neg=loss_neg.detach() / 2, q_neg=torch.sigmoid(n1.detach()).mean())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_hook is not None:
            self.grad_hook([p.grad for p in self.parameters()])
        self.optimizer.step()
        polyak(self.t1, self.q1, cfg.tau)
        polyak(self.t2, self.q2, cfg.tau)
        metrics.update(target=y.mean(), positives=b["success"].float().mean(), chained=b["chained"].float().mean())
        return metrics

    def state_dict(self) -> dict:
        state = {name: m.state_dict() for name, m in self.modules().items()}
        state.update(optimizer=self.optimizer.state_dict(), generator=self.generator.get_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state[name])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.generator.set_state(state["generator"])


def policy_from_state(state: dict, network: NetworkConfig) -> nn.Module:
    """Q_1 from a checkpoint's algorithm state, for evaluation and export."""
    q = QNetwork(network)
    q.load_state_dict(state["q1"])
    return q.eval()
