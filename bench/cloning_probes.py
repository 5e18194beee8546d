"""Probes of what would make the cloned held-out grasp more precise: action chunks, the first frame as goal (not product modes)

Session 17 found where the fine-tuned task models lose the held-out grasp: the hand passes
right over the object at 12-15 cm, keeps moving while it descends, and closes 3.5-5 cm
beside it (BENCHMARKS.md). A policy that decides every step afresh from one 64x64 frame
drifts like that; ACT (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with
Low-Cost Hardware") fixed the same drift on 50 scripted demonstrations by predicting the
next k actions at once and executing, at each step, the weighted mean of every chunk
that covers it (temporal ensembling, w_i = exp(-m i), i = 0 the oldest prediction).

This probe trains exactly that on the fine-tuning data, with the product's cloning recipe
(the successes plus the failed attempts before their first close, the task goal image,
random shifts, the pretrained run's switch weight, Adam at its rate) and the product's
policy (a BCPolicy whose last layer predicts k x 5), and runs it in torch through the same
`grasp-heldout` suite. `--chunk 1` is plain cloning in the same code: the side-by-side
baseline. From a GCBC run (`--from`), each of the k outputs starts as the pretrained
action head.

`--goal first-frame`: the goal input is the episode's first camera frame instead of the
task's fixed goal image. Why: the camera looks at the table from the front and above, and
from about step 10 of an attempt the fingers cover the small held-out object, just when
the last centimetres are decided. A fixed task goal tells the policy nothing about this
episode; the first frame shows where the object stood before the hand came, in the same
two-image input the pretrained trunk already has (no new weights). At run time the goal
is the first frame the policy saw after its episode started.

`--proprio xyz`: the proprio input also takes the hand's x and y (centred, / 0.25 m) beside
the gripper and height. Why: the camera must otherwise tell where the hand is from pixels,
and the fingers cover the object when near it; with the hand's position given, only the
object has to be found in the image. Fresh policies only (the pretrained proprio layer is
two columns narrower). The probe runs its own `grasp-heldout` loop so that the policy can
read the world's hand position, as a policy node reads `ee_pose`.

`--mirror`: half the samples flipped left-right with vy and wz negated. The camera sits on
the robot's plane of symmetry, so a flipped frame is the mirrored scene's frame (the tray
and the arm's meshes aside): twice the scenes from the same attempts.

Measured (BENCHMARKS.md, sessions 18-19; 50 labelled episodes, 3 seeds x 100 tasks): none
helps. A fresh policy grasps 45/300 with chunks of 8, 54/300 with the first frame, 64/300
with the hand's x and y and 48/300 mirrored, against 65/300 for one action, the task goal,
the product's proprio and no mirroring (the same rows and shifts).

    .venv/bin/python bench/cloning_probes.py --data data/task_50 --from runs/pre_hue_s0 --chunk 8 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_app.spec import ACTION_DIM, ActionScaling, proprio_vector  # noqa: E402
from robot_app.store import Store  # noqa: E402


@dataclass(frozen=True)
class ChunkConfig:
    chunk: int = 8  # actions predicted per step (1: plain cloning)
    ensemble_m: float = 0.01  # temporal-ensembling weight exp(-m i), i = 0 the oldest chunk (ACT's default)
    steps: int = 3000
    batch_size: int = 64
    failed_approaches: bool = True  # also clone failed attempts before their first close (the product's setting)
    goal: str = "task"  # "task": the task's goal image; "first-frame": the episode's first frame (module docstring)
    proprio: str = "height"  # "height": the product's (gripper, height); "xyz": also the hand's x and y (module docstring)
    mirror: bool = False  # mirror half the samples left-right, with vy and wz negated (module docstring)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="labelled task store (dataset build of collect --task grasp-heldout)")
    p.add_argument("--from", dest="pretrained", default="", help="GCBC run to start from; empty: a fresh policy of that shape")
    p.add_argument("--shape", default="", help="with no --from: a GCBC run whose network and recipe a fresh policy takes")
    p.add_argument("--chunk", type=int, default=ChunkConfig.chunk)
    p.add_argument("--ensemble-m", type=float, default=ChunkConfig.ensemble_m)
    p.add_argument("--goal", choices=("task", "first-frame"), default=ChunkConfig.goal)
    p.add_argument("--proprio", choices=("height", "xyz"), default=ChunkConfig.proprio)
    p.add_argument("--mirror", action="store_true", help="mirror half the samples left-right (vy and wz negated)")
    p.add_argument("--steps", type=int, default=ChunkConfig.steps)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON results file")
    return p.parse_args(argv)


def chunk_targets(store: Store, t: np.ndarray, cloned_frame: np.ndarray, t_last: np.ndarray, k: int):
    """(B, k, 5) logged actions t .. t+k-1 and (B, k) validity: inside the episode and on a cloned frame."""
    steps = t[:, None] + np.arange(k)[None, :]
    valid = steps < t_last[:, None]
    steps = np.where(valid, steps, t[:, None])
    valid &= cloned_frame[steps]
    return np.asarray(store.actions)[steps], valid


XY_CENTRE_M = np.array([0.525, 0.0])  # the middle of the workspace's x and y (sim_worlds.panda_world.WORKSPACE_*)


def hand_xy_feature(ee_position: np.ndarray) -> np.ndarray:
    """(B, 3) metres -> (B, 2) float32: the hand's x and y, centred and scaled like the height (/ 0.25 m)."""
    from robot_app.spec import EE_HEIGHT_SCALE_M

    return ((np.asarray(ee_position)[:, :2] - XY_CENTRE_M) / EE_HEIGHT_SCALE_M).astype(np.float32)


MIRRORED_ACTION = np.array([1.0, -1.0, 1.0, -1.0, 1.0], dtype=np.float32)  # y -> -y: vy and the yaw rate change sign


def mirror_half(batch, targets: np.ndarray, rng: np.random.Generator) -> None:
    """Mirror a random half of the batch in place: images flipped left-right, vy and wz negated.

    The camera sits on the robot's x-z plane of symmetry (eye and target at y = 0, the base at
    the origin), so a frame flipped left-right is the frame of the mirrored scene (y -> -y),
    in which the mirrored action (vy, wz negated) does what the logged one did. Only the tray
    (at y = +0.15) and the arm's meshes break the symmetry. targets: (B, k, 5) actions.
    """
    flip = rng.random(len(targets)) < 0.5
    for name in ("image", "next_image", "goal"):
        images = getattr(batch, name)
        images = np.array(images)  # the goal may be a broadcast view
        images[flip] = images[flip, :, ::-1]
        setattr(batch, name, images)
    targets[flip] = targets[flip] * MIRRORED_ACTION


def xyz_network(network):
    """The same network whose proprio input also takes the hand's x and y (two more columns)."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class XYZNetworkConfig(type(network)):
        @property
        def proprio_dim(self) -> int:
            return super().proprio_dim + 2

    if not network.height_input:
        raise ValueError("--proprio xyz extends the (gripper, height) input: use a --shape/--from run with height_input")
    return XYZNetworkConfig(**network.to_dict())


def chunk_policy(network, k: int, weights: dict | None):
    """A BCPolicy whose last layer predicts k actions; from `weights`, every one starts as the pretrained action head."""
    import torch

    from training.gcbc import BCPolicy

    policy = BCPolicy(network)
    if weights is not None:
        policy.load_state_dict(weights)
    last = policy.head[-2]
    wide = torch.nn.Linear(last.in_features, ACTION_DIM * k)
    if weights is not None:
        with torch.no_grad():
            wide.weight.copy_(last.weight.repeat(k, 1))
            wide.bias.copy_(last.bias.repeat(k))
    policy.head[-2] = wide
    return policy


def train(store: Store, base, checkpoint: dict | None, cfg: ChunkConfig, seed: int):
    import torch

    from robot_app.spec import gripper_switches
    from training import runner
    from training.finetune import (
        TaskBatches,
        before_first_close,
        episode_labels,
        task_goal_image,
        task_transitions,
    )
    from training.gcbc import acting_weights

    torch.manual_seed(seed)
    task = task_transitions(store, seed=seed, height_input=base.network.height_input)
    goal, _ = task_goal_image(store)
    batches = TaskBatches(task, goal, None, seed=seed)
    rows = batches.cloned_rows(cfg.failed_approaches)
    frames = np.arange(len(store.actions))
    success = episode_labels(store)[np.asarray(store.episode)]
    cloned_frame = success | (before_first_close(store, frames) & cfg.failed_approaches)
    network = xyz_network(base.network) if cfg.proprio == "xyz" else base.network
    policy = chunk_policy(network, cfg.chunk, acting_weights(checkpoint["algorithm"]) if checkpoint else None)
    optimizer = torch.optim.Adam(policy.parameters(), lr=base.gcbc.lr)
    rng, shift = np.random.default_rng(seed), torch.Generator().manual_seed(seed + 2)
    mirror_rng = np.random.default_rng(seed + 3)  # its own stream: the rows and shifts are drawn as without --mirror
    first_frame = store.episode_bounds()[np.asarray(store.episode), 0]
    for _ in range(cfg.steps):
        r = rows[rng.integers(0, len(rows), cfg.batch_size)]
        batch, _ = batches.task_rows(r)
        if cfg.goal == "first-frame":
            batch.goal = np.asarray(store.images)[first_frame[task.t[r]]]
        if cfg.proprio == "xyz":
            batch.gripper = np.concatenate([batch.gripper, hand_xy_feature(store.ee_position[task.t[r]])], axis=1)
        target, valid = chunk_targets(store, task.t[r], cloned_frame, task.index.t_last[r], cfg.chunk)
        if cfg.mirror:
            mirror_half(batch, target, mirror_rng)
        b = runner.to_torch(batch, torch.device("cpu"), base.augment_pad, shift)
        target, valid = torch.from_numpy(target), torch.from_numpy(valid).float()
        weight = 1.0 + (base.gcbc.switch_weight - 1.0) * gripper_switches(b["gripper"], b["action"]).float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=base.precision == "bf16"):
            raw = policy.raw(b["image"], b["goal"], b["gripper"])
        error = ((raw.float().reshape(-1, cfg.chunk, ACTION_DIM) - target) ** 2).mean(dim=2)
        mask = valid * weight[:, None]
        loss = (error * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return policy.eval(), goal, float(loss.detach())


class TemporalEnsemble:
    """A chunk policy as an act function: each step, the weighted mean of every chunk's prediction for this step.

    `reseed` (called by `evaluate` at each episode's start) forgets the previous episode's chunks.
    """

    def __init__(self, policy, goal: np.ndarray | None, k: int, m: float, scaling: ActionScaling, world=None):
        """goal None: the first frame of each episode is its goal (ChunkConfig.goal "first-frame").
        world: with the xyz proprio, the world whose hand position the policy reads."""
        import torch

        self.policy, self.k, self.m, self.scaling, self.world = policy, k, m, scaling, world
        self.task_goal = None if goal is None else torch.from_numpy(goal[None].copy())
        self.goal = self.task_goal
        self.chunks: list[np.ndarray] = []  # newest last; chunk j (from the end) predicts this step at its index j

    def reseed(self, _seed: int) -> None:
        self.chunks, self.goal = [], self.task_goal

    def __call__(self, image, _suite_goal, state) -> np.ndarray:
        import torch

        proprio = proprio_vector(state, self.policy.config.height_input)[None]
        if self.world is not None:
            proprio = np.concatenate([proprio, hand_xy_feature(self.world.observe().ee_position[None])], axis=1)
        grip = torch.from_numpy(proprio)
        if self.goal is None:
            self.goal = torch.from_numpy(image[None].copy())
        with torch.no_grad():
            chunk = self.policy(torch.from_numpy(image[None].copy()), self.goal, grip)[0].numpy().reshape(self.k, ACTION_DIM)
        self.chunks = [*self.chunks, chunk][-self.k:]
        ages = range(len(self.chunks) - 1, -1, -1)  # how many steps ago each chunk was made
        predictions = np.stack([c[age] for c, age in zip(self.chunks, ages, strict=True)])  # oldest first
        weights = np.exp(-self.m * np.arange(len(predictions)))
        return self.scaling.settle((weights[:, None] * predictions).sum(axis=0) / weights.sum())


def evaluate(policy, goal, cfg: ChunkConfig, scaling: ActionScaling, episodes: int, seed: int) -> dict:
    """evaluate_suite's grasp-heldout line, run here so that an xyz policy can read the world's hand position."""
    from robot_app.evaluation import episode_seed, family_summary
    from sim_worlds import goals

    family, tasks = "grasp-heldout", goals.make_suite("grasp-heldout", episodes, seed)
    world = goals.world_for(family)
    act = TemporalEnsemble(policy, goal, cfg.chunk, cfg.ensemble_m, scaling, world if cfg.proprio == "xyz" else None)
    successes, steps, distances = [], [], []
    try:
        for task in tasks:
            act.reseed(episode_seed(seed, family, task.index))
            result = goals.run_goal_episode(world, task, act)
            successes.append(bool(result.success))
            steps.append(int(result.steps))
            distances.append((result.start_distance, result.final_distance))
    finally:
        world.close()
    return family_summary(successes, steps, distances)


def main(argv=None) -> int:
    import torch

    from robot_app.evaluation import wilson_interval
    from training.finetune import FinetuneConfig, base_train_config

    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    cfg = ChunkConfig(chunk=args.chunk, ensemble_m=args.ensemble_m, steps=args.steps, goal=args.goal, proprio=args.proprio,
                      mirror=args.mirror)
    if args.proprio == "xyz" and args.pretrained:
        raise SystemExit("--proprio xyz needs a fresh policy (--shape): the pretrained proprio layer is two columns narrower")
    if args.mirror and args.proprio == "xyz":
        raise SystemExit("--mirror with --proprio xyz would also have to mirror the hand's y; not supported")
    base, checkpoint = base_train_config(FinetuneConfig(pretrained=args.pretrained or args.shape, data="-"))
    checkpoint = checkpoint if args.pretrained else None
    store = Store.open(args.data)
    scaling = ActionScaling(binary_gripper=store.gripper_is_binary)
    out = Path(args.out)
    report = {"benchmark": "cloning_probes", "config": {**vars(args), "chunk_config": vars(cfg)}, "runs": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        policy, goal, loss = train(store, base, checkpoint, cfg, seed)
        train_s = time.perf_counter() - started
        family = evaluate(policy, goal if cfg.goal == "task" else None, cfg, scaling, args.episodes, seed)
        report["runs"].append({"seed": seed, **family, "final_loss": round(loss, 4), "train_s": round(train_s, 1)})
        k, n = sum(r["successes"] for r in report["runs"]), sum(r["n"] for r in report["runs"])
        report["pooled"] = {"successes": k, "n": n, "ci95": wilson_interval(k, n)}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"chunk {cfg.chunk}, goal {cfg.goal}, proprio {cfg.proprio}, mirror {cfg.mirror}, seed {seed}: {family['successes']}/{family['n']} (train {train_s:.0f} s, loss {loss:.4f})",
              flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
