"""Goal-conditioned transitions from the memory-mapped store: hindsight relabeling and goal chaining.

Actionable Models (Chebotar et al. 2021) learn from unlabelled play: any frame j > t of the
same episode is a goal that the logged actions did reach, so a transition (s_t, a_t,
s_t+1) relabelled with g = frame t+1 is a success (target 1, terminal) and with a later
frame it bootstraps. Goal chaining draws g from a different episode instead; such a goal
is never a success by relabeling, so value only reaches it where the bootstrapped
Q-function finds some path, possibly through other episodes.

Hindsight goal mix (defaults): 20% at j = t+1 (the positives; with geometric offsets that
land on t+1 about 30% of hindsight goals are positives), 50% at a geometric offset with
mean 5 steps (near goals, where the discounted value is informative), 30% uniform over
the rest of the episode (far goals). With 25% chained goals that is ~22% positives a batch.

Pre-grasp oversampling (off by default): transitions at most `pre_grasp_steps` before the
gripper starts or stops holding an object (a grasp or a release, read from the measured
gripper state) are drawn `pre_grasp_weight` times as often. Most play steps are reaches
and random motion, where a hand above a cube with the goal higher up goes up; the steps
before a grasp are where it must go down instead, and a cloned policy measured along the
expert's path is split between the two there (bench/bc_along_expert.py). The keyframe
weight gcbc.switch_weight covers the close command itself; this covers the way to it.
"Holding" is robot_app.spec.is_holding: fingers stopped between closed-on-nothing and open,
thresholds measured on the sim's Panda; a real gripper's state may need its own.

Sampling uses one numpy Generator whose state is part of a checkpoint, so a resumed run
draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_app.spec import is_holding
from robot_app.store import Store


@dataclass(frozen=True)
class SamplerConfig:
    p_chain: float = 0.25  # fraction of goals from another episode (goal chaining); AM's `chaining` flag zeroes it
    p_next: float = 0.2  # hindsight goals at j = t+1: the successes with target 1
    p_geometric: float = 0.5  # hindsight goals at j = t + Geometric(geometric_p), clipped to the episode's last frame
    geometric_p: float = 0.2  # per-step stop probability of that offset (mean offset 1/p = 5 steps)
    # the remaining 1 - p_next - p_geometric of hindsight goals are uniform over (t, last]
    pre_grasp_steps: int = 0  # transitions at most this many steps before their episode's hand takes or lets go of an object...
    pre_grasp_weight: float = 1.0  # ...are drawn this many times as often as the others (1: all transitions alike)


@dataclass
class Batch:
    """One batch of relabelled transitions (numpy, straight from the store)."""

    image: np.ndarray  # (B,H,W,3) uint8 frame t
    next_image: np.ndarray  # (B,H,W,3) uint8 frame t+1
    goal: np.ndarray  # (B,H,W,3) uint8 goal frame
    gripper: np.ndarray  # (B,P) float32 proprio at t: gripper state (and height, Store.proprio)
    next_gripper: np.ndarray  # (B,P) float32 proprio at t+1
    action: np.ndarray  # (B,5) float32 logged action at t
    success: np.ndarray  # (B,) bool: goal is frame t+1 of the same episode (target 1, terminal)
    chained: np.ndarray  # (B,) bool: goal from another episode (target only bootstraps)
    t: np.ndarray  # (B,) int64 store index of frame t
    goal_index: np.ndarray  # (B,) int64 store index of the goal frame
    steps_to_goal: np.ndarray  # (B,) int64 logged steps from frame t to the goal; 0 when no logged path reaches it


def _check(config: SamplerConfig) -> None:
    for name in ("p_chain", "p_next", "p_geometric"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"sampler.{name}={value}: must be a probability in [0, 1]")
    if config.p_next + config.p_geometric > 1.0:
        raise ValueError(f"sampler.p_next + sampler.p_geometric = {config.p_next + config.p_geometric}: must be <= 1")
    if not 0.0 < config.geometric_p <= 1.0:
        raise ValueError(f"sampler.geometric_p={config.geometric_p}: must be in (0, 1]")
    if config.pre_grasp_steps < 0 or config.pre_grasp_weight <= 0:
        raise ValueError(f"sampler.pre_grasp_steps={config.pre_grasp_steps}, pre_grasp_weight={config.pre_grasp_weight}: "
                         "need steps >= 0 and a weight > 0")


def pre_grasp_rows(store: Store, t_index: np.ndarray, t_last: np.ndarray, steps: int) -> np.ndarray:
    """(len(t_index),) bool: frame t + 1 .. min(t + steps, last) of t's episode starts or stops holding an object.

    A change is frame i whose holding state differs from frame i - 1 of the same episode
    (an episode that starts with an object in the hand has no change at its first frame).
    """
    holding = is_holding(np.asarray(store.gripper, np.float32))
    change = np.zeros(len(holding), dtype=bool)
    change[1:] = holding[1:] != holding[:-1]
    change[store.episode_bounds()[:, 0]] = False
    before = np.concatenate([[0], np.cumsum(change)])  # before[i]: changes at frames < i
    return before[np.minimum(t_index + steps, t_last) + 1] - before[t_index + 1] > 0


class GoalSampler:
    """Transitions (t < last of its episode), uniform or pre-grasp weighted, with relabelled goals."""

    def __init__(self, store: Store, config: SamplerConfig, seed: int = 0, height_input: bool = False):
        _check(config)
        if height_input:
            store.require_ee_height()  # at the start, not at the first batch
        self.height_input = height_input
        self.store = store
        self.config = config
        self.rng = np.random.default_rng(seed)
        bounds = store.episode_bounds()
        lengths = bounds[:, 1] - bounds[:, 0]
        usable = lengths >= 2
        if not usable.any():
            raise ValueError(f"{store.root}: no episode has two or more steps, so there is no transition to learn from")
        if config.p_chain > 0 and store.num_episodes < 2:
            raise ValueError(
                f"{store.root}: goal chaining (sampler.p_chain={config.p_chain}) needs at least 2 episodes, "
                f"the store has {store.num_episodes}; use --algo am-nochain or --set sampler.p_chain=0"
            )
        # one row per transition: store index t, and its episode's start and last frame
        self.t_index = np.concatenate([np.arange(s, e - 1) for s, e in bounds[usable]]).astype(np.int64)
        per_ep = lengths[usable] - 1
        self.t_start = np.repeat(bounds[usable, 0], per_ep)
        self.t_last = np.repeat(bounds[usable, 1] - 1, per_ep)
        self.num_frames = len(store)
        self.pre_grasp_fraction, self.row_cdf = 0.0, None  # None: rows are drawn uniformly
        if config.pre_grasp_steps > 0 and config.pre_grasp_weight != 1.0:
            near = pre_grasp_rows(store, self.t_index, self.t_last, config.pre_grasp_steps)
            self.pre_grasp_fraction = float(near.mean())
            weight = np.where(near, config.pre_grasp_weight, 1.0)
            self.row_cdf = np.cumsum(weight) / weight.sum()

    def __len__(self) -> int:
        return len(self.t_index)

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def sample_indices(self, batch: int) -> dict[str, np.ndarray]:
        """Draw transitions and goals as store indices (no image reads): t, goal, success, chained."""
        cfg, rng = self.config, self.rng
        if self.row_cdf is None:
            row = rng.integers(0, len(self.t_index), size=batch)
        else:
            row = np.minimum(np.searchsorted(self.row_cdf, rng.random(batch), side="right"), len(self.t_index) - 1)
        t, start, last = self.t_index[row], self.t_start[row], self.t_last[row]
        # hindsight: every option drawn for every row so the RNG use never depends on the mix
        mode = rng.random(batch)
        geometric = np.minimum(t + rng.geometric(cfg.geometric_p, size=batch), last)
        uniform = rng.integers(t + 1, last + 1)
        goal = np.where(mode < cfg.p_next, t + 1, np.where(mode < cfg.p_next + cfg.p_geometric, geometric, uniform))
        # chaining: a frame uniformly from the frames of all other episodes
        chained = rng.random(batch) < cfg.p_chain
        episode_len = last + 1 - start
        other = rng.integers(0, np.maximum(self.num_frames - episode_len, 1))
        other = np.where(other >= start, other + episode_len, other)
        goal = np.where(chained, other, goal).astype(np.int64)
        success = ~chained & (goal == t + 1)
        steps = np.where(chained, 0, goal - t).astype(np.int64)
        return {"t": t.astype(np.int64), "goal": goal, "success": success, "chained": chained, "steps": steps}

    def sample(self, batch: int) -> Batch:
        idx = self.sample_indices(batch)
        return self.gather(idx)

    def gather(self, idx: dict[str, np.ndarray]) -> Batch:
        """Read the frames and actions of sampled indices from the (memory-mapped) store.

        idx: t, goal, success, chained and steps (logged steps from t to the goal, 0 = none).
        """
        s, t, nxt, goal = self.store, idx["t"], idx["t"] + 1, idx["goal"]
        return Batch(
            image=np.asarray(s.images[t]),
            next_image=np.asarray(s.images[nxt]),
            goal=np.asarray(s.images[goal]),
            gripper=s.proprio(t, self.height_input),
            next_gripper=s.proprio(nxt, self.height_input),
            action=np.asarray(s.actions[t], dtype=np.float32),
            success=idx["success"],
            chained=idx["chained"],
            t=t,
            goal_index=goal,
            steps_to_goal=idx["steps"],
        )


class MixedSampler:
    """Batches whose last `round(fraction * B)` rows come from a second store: data sharing for a continuation.

    Continuing a pretrained goal model on a few new attempts fits them within a few thousand
    updates and then begins to lose what the play data taught (BENCHMARKS.md, session 27: 75.7%
    of held-out grasps at 3000 updates, 68.3% at 6000). Keeping a share of every batch on the
    pretraining store, relabelled by the same hindsight rules, is the cloning learner's form of
    sharing the unlabelled data (CDS shares by a task Q, which a cloned policy does not have).
    Measured, it does not pay for the held-out grasp: below plain continuation at 25, 50 and 100
    attempts (session 28), so the recipe does not use it; it stays as #8's third mode.
    Each store keeps its own sampler and generator, so a resumed run draws the same batches.
    """

    def __init__(self, main: GoalSampler, shared: GoalSampler, fraction: float):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"share_fraction={fraction}: must be in (0, 1) when share_data is given")
        if main.store.image_size != shared.store.image_size:
            raise ValueError(f"{shared.store.root}: image_size {shared.store.image_size} differs from the training "
                             f"store's {main.store.image_size}; shared data must be recorded alike")
        # the manifests' logged scaling; Store.action_scaling() would also scan every action for binary_gripper
        main_scaling = main.store.manifest.get("action_scaling") or {}
        shared_scaling = shared.store.manifest.get("action_scaling") or {}
        if main_scaling != shared_scaling:
            raise ValueError(f"{shared.store.root}: action scaling {shared_scaling} differs from the training store's "
                             f"{main_scaling}; the same action would mean another motion")
        self.main, self.shared, self.fraction = main, shared, fraction

    @property
    def row_cdf(self) -> np.ndarray | None:
        return self.main.row_cdf

    @property
    def pre_grasp_fraction(self) -> float:
        return self.main.pre_grasp_fraction

    def __len__(self) -> int:
        return len(self.main) + len(self.shared)

    def get_state(self) -> dict:
        return {"main": self.main.get_state(), "shared": self.shared.get_state()}

    def set_state(self, state: dict) -> None:
        if set(state) != {"main", "shared"}:
            raise ValueError("the checkpoint was trained without shared data; resume it without share_data")
        self.main.set_state(state["main"])
        self.shared.set_state(state["shared"])

    def split(self, batch: int) -> tuple[int, int]:
        """(rows from the training store, rows from the shared store); each gets at least one."""
        shared = min(max(int(round(self.fraction * batch)), 1), batch - 1)
        return batch - shared, shared

    def sample(self, batch: int) -> Batch:
        own, shared = self.split(batch)
        a, b = self.main.sample(own), self.shared.sample(shared)
        # t and goal_index index different stores; the shared rows' are offset past the training store's
        offset = len(self.main.store)
        merged = {name: np.concatenate([getattr(a, name), getattr(b, name)]) for name in Batch.__dataclass_fields__}
        merged["t"][own:] += offset
        merged["goal_index"][own:] += offset
        return Batch(**merged)


def make_synthetic_store(
    root, episodes: int = 8, steps: int = 12, image_size: int = 64, seed: int = 0, constant_actions: bool = False,
    manifest_extra: dict | None = None,
):
    """A small store whose frames follow its actions (for tests and benchmarks, not for training robots).

    Each frame shows a bright square whose position integrates the logged (vx, vy) at 3
    pixels a step, on a background tinted per episode, so the goal frames are reachable
    and learnable in the same way as the arm's. With constant_actions each episode repeats
    one action, so the action is a function of the frames (a dataset a learner can fit).
    """
    from robot_app.store import write_store

    rng = np.random.default_rng(seed)
    size, half = image_size, max(2, image_size // 16)
    out = []
    for e in range(episodes):
        actions = np.clip(rng.normal(0.0, 0.6, size=(1 if constant_actions else steps, 5)), -1.0, 1.0)
        actions = np.broadcast_to(actions, (steps, 5)).astype(np.float32)
        pos = rng.uniform(size * 0.25, size * 0.75, size=2)
        images = np.empty((steps, size, size, 3), dtype=np.uint8)
        images[:] = rng.integers(0, 60, size=3, dtype=np.uint8)
        for t in range(steps):
            y, x = np.clip(pos.astype(int), half, size - half - 1)
            images[t, y - half : y + half, x - half : x + half] = (250, 200, 50)
            pos = np.clip(pos + 3.0 * actions[t, :2], half, size - half - 1)
        gripper = (actions[:, 4] > 0).astype(np.float32)
        out.append({"images": images, "actions": actions, "gripper": gripper, "timestamps": np.arange(steps) * 0.1,
                    "source": f"synthetic/{seed}/{e}", "sha256": f"{seed}-{e}"})
    return write_store(root, out, manifest_extra)
