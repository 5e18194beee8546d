"""Which goal picture lets a goal-conditioned model do a task it is not shown the outcome of?

Issue 8's open lever. The goal-conditioned fine-tune (models/grasp_heldout_goal.onnx) grasps
the held-out object in ~85% of tasks given each task's own goal picture, and ~1% given the
task model's one fixed picture: the picture tells it where to go. A task model that kept the
goal input would need to *propose* a picture per scene. This measures, on the same tasks and
the same CEM noise, what each kind of proposed picture is worth:

  own             the suite's goal image (what a person shows in the GUI): the ceiling
  fixed           `finetune`'s one task image from the labelled data (training/finetune.py)
  retrieved-whole the final frame of the labelled success whose first frame is nearest
                  (pixel L2) to the scene: no simulator knowledge
  retrieved-change  the same, comparing only the pixels that success changed
  oracle-*        ORACLE conditions, simulator state used: the goal picture of another task
                  (other suite seed) whose object lies nearest to where this task's held-out
                  object lies. `heldout-K` from K held-out tasks, `cube-K` from K tasks that
                  grasp a *cube*, `shift` also shifts the picture by the projected pixel offset.

The oracle rows say what a perfect object localiser would buy; `--localiser` trains the
plain learned one the labelled data allow (a small CNN regressing the gripper's table xy at
the first close command from the frames before it, as training/finetune.py's labels give it)
and reports its error on the suite's start frames.

    python bench/task_goal_proposal.py --policy models/grasp_heldout_goal.onnx --episodes 100 --seed 0
    python bench/task_goal_proposal.py --localiser --data data/task_50
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from common import RESULTS, machine, write_report

CONDITIONS = ("own", "fixed", "retrieved-whole", "retrieved-change", "oracle-heldout-25", "oracle-heldout-300",
              "oracle-cube-300", "oracle-shift-25")
BANK_SEED = 99  # suite seed the oracle banks are drawn from (never an evaluation seed here)
CHANGED = 30  # summed |RGB difference| above which a pixel counts as changed by an episode


def success_frames(store):
    """(first frames, final frames) of the labelled successes, float32 and uint8."""
    from training.finetune import episode_labels

    bounds = store.episode_bounds()
    episodes = np.flatnonzero(episode_labels(store))
    first = np.stack([np.asarray(store.images[bounds[e, 0]]) for e in episodes]).astype(np.float32)
    final = np.stack([np.asarray(store.images[bounds[e, 1] - 1]) for e in episodes])
    return first, final


def project(point, size: int) -> np.ndarray:
    """(column, row) of a world point in the simulator camera's image."""
    from sim_worlds.panda_world import CAMERA_EYE, CAMERA_FOV_DEG, CAMERA_TARGET, CAMERA_UP

    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (CAMERA_EYE, CAMERA_TARGET, CAMERA_UP))
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    d = np.asarray(point, dtype=np.float64) - eye
    focal = (size / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
    depth = d @ forward
    return np.array([size / 2 + focal * (d @ right) / depth, size / 2 - focal * (d @ true_up) / depth])


def shifted(image: np.ndarray, columns: float, rows: float) -> np.ndarray:
    """The image moved by whole pixels, edges repeated."""
    h, w = image.shape[:2]
    r = np.clip(np.arange(h) - int(round(rows)), 0, h - 1)
    c = np.clip(np.arange(w) - int(round(columns)), 0, w - 1)
    return image[r][:, c]


def object_position(task, name: str) -> np.ndarray:
    return np.asarray(task.start_state["objects"][name]["position"], dtype=np.float64)


class Proposer:
    """goal(task, start image) -> the picture one condition feeds the policy for a whole episode."""

    def __init__(self, condition: str, data: str, size: int):
        from robot_app.store import Store
        from sim_worlds import goals
        from sim_worlds.panda_world import HELDOUT_OBJECT
        from training.finetune import task_goal_image

        self.condition, self.size, self.target = condition, size, HELDOUT_OBJECT
        store = Store.open(data)
        if condition == "fixed":
            self.fixed = task_goal_image(store)[0]
        elif condition.startswith("retrieved"):
            self.first, self.final = success_frames(store)
            self.changed = (np.abs(self.final.astype(np.float32) - self.first).sum(-1) > CHANGED).astype(np.float32)
        elif condition.startswith("oracle"):
            kind, count = condition.split("-")[1], int(condition.split("-")[2])
            family = "grasp" if kind == "cube" else "grasp-heldout"
            self.bank = goals.make_suite(family, count, BANK_SEED, image_size=size)
            self.bank_position = np.stack([object_position(t, next(iter(t.targets))) for t in self.bank])

    def goal(self, task, start_image: np.ndarray) -> np.ndarray:
        if self.condition == "own":
            return task.goal_image
        if self.condition == "fixed":
            return self.fixed
        if self.condition.startswith("retrieved"):
            d2 = ((start_image.astype(np.float32)[None] - self.first) ** 2).sum(-1)
            if self.condition == "retrieved-change":
                score = (d2 * self.changed).sum((1, 2)) / np.maximum(self.changed.sum((1, 2)), 1)
            else:
                score = d2.mean((1, 2))
            return self.final[int(np.argmin(score))]
        here = object_position(task, self.target)
        k = int(np.argmin(np.linalg.norm(self.bank_position[:, :2] - here[:2], axis=1)))
        picture = self.bank[k].goal_image
        if self.condition.startswith("oracle-shift"):
            picture = shifted(picture, *(project(here, self.size) - project(self.bank_position[k], self.size)))
        return picture


def evaluate(policy, proposer: Proposer, tasks, world, seed: int) -> dict:
    from robot_app.evaluation import episode_seed, family_summary
    from sim_worlds import goals

    successes, steps = [], []
    for task in tasks:
        start = world.set_state(task.start_state).image
        picture = proposer.goal(task, start)
        policy.reseed(episode_seed(seed, task.family, task.index))
        result = goals.run_goal_episode(world, task, lambda image, _goal, state, p=picture: policy.act(image, p, state)[0])
        successes.append(result.success)
        steps.append(result.steps)
    return family_summary(successes, steps)


def run_conditions(args) -> dict:
    from robot_app.policy import Policy
    from sim_worlds import goals

    policy = Policy.load(args.policy)
    tasks = goals.make_suite("grasp-heldout", args.episodes, args.seed, image_size=policy.image_size)
    world = goals.world_for("grasp-heldout", policy.image_size)
    results = {}
    try:
        for condition in args.conditions:
            t0 = time.perf_counter()
            results[condition] = evaluate(policy, Proposer(condition, args.data, policy.image_size), tasks, world, args.seed)
            s = results[condition]
            print(f"{condition:20s} {s['successes']}/{s['n']} = {s['success_rate']:.1%}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        world.close()
    return results


def close_labels(store) -> tuple[np.ndarray, np.ndarray]:
    """(frame rows, table xy) for every frame before an episode's first close command, labelled
    with where the gripper was at that close: the object it went for, as far as the data say."""
    from training.finetune import first_close_rows

    ee = np.asarray(store.ee_position)
    rows, labels = [], []
    for (start, end), close in zip(store.episode_bounds(), first_close_rows(store), strict=True):
        if close < end:  # episodes that never close say nothing about where an object is
            rows += range(start, close)
            labels += [ee[close, :2]] * int(close - start)
    return np.asarray(rows), np.asarray(labels, dtype=np.float32).reshape(-1, 2)


def localiser_error(args) -> dict:
    """Median table-plane error (m) of the learned localiser on the suite's start frames."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from robot_app.store import Store
    from sim_worlds import goals
    from sim_worlds.panda_world import HELDOUT_OBJECT

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    store = Store.open(args.data)
    rows, labels = close_labels(store)
    mean, std = labels.mean(0), labels.std(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(64 * (store.image_size // 8) ** 2, 256), nn.ReLU(), nn.Linear(256, 2))
    rng = np.random.default_rng(0)

    def batch(x, shift: int):
        x = torch.as_tensor(x).permute(0, 3, 1, 2).float() / 255
        if shift:  # a small shift only: a pixel is ~1 cm here, and the label does not move with it
            x = F.pad(x, (shift,) * 4, mode="replicate")
            i, j = rng.integers(0, 2 * shift + 1, 2)
            x = x[:, :, i:i + store.image_size, j:j + store.image_size]
        return x

    def fit(source, rows, labels, steps: int) -> None:
        images = np.asarray(source.images)
        optimiser = torch.optim.Adam(net.parameters(), 3e-4)
        for _ in range(steps):
            k = rng.integers(0, len(rows), 64)
            loss = F.mse_loss(net(batch(images[rows[k]], 1)), torch.as_tensor((labels[k] - mean) / std))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

    if args.localiser_play:  # where the play data's grasps close: any cube, thousands of labels
        play = Store.open(args.localiser_play)
        fit(play, *close_labels(play), args.localiser_steps)
    fit(store, rows, labels, args.localiser_steps)
    tasks = goals.make_suite("grasp-heldout", args.episodes, args.seed, image_size=store.image_size)
    world = goals.world_for("grasp-heldout", store.image_size)
    try:
        starts = np.stack([world.set_state(t.start_state).image for t in tasks])
    finally:
        world.close()
    truth = np.stack([object_position(t, HELDOUT_OBJECT)[:2] for t in tasks])
    with torch.no_grad():
        guess = net(batch(starts, 0)).numpy() * std + mean
    error = np.linalg.norm(guess - truth, axis=1)
    return {"data": args.data, "play_pretraining": args.localiser_play, "labelled_episodes": store.num_episodes,
            "frames": len(rows), "steps": args.localiser_steps,
            "median_error_m": round(float(np.median(error)), 4), "p90_error_m": round(float(np.percentile(error, 90)), 4),
            "median_error_of_the_mean_guess_m": round(float(np.median(np.linalg.norm(mean - truth, axis=1))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="models/grasp_heldout_goal.onnx")
    parser.add_argument("--data", default="data/task_50", help="the labelled task store (successes, fixed image)")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--localiser", action="store_true", help="train and measure the learned localiser instead")
    parser.add_argument("--localiser-steps", type=int, default=3000)
    parser.add_argument("--localiser-play", default="", help="first fit the localiser to this unlabelled play store's grasps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.localiser:
        results = localiser_error(args)
        play = "_play" if args.localiser_play else ""
        name = f"localiser{play}_{args.data.rstrip('/').split('/')[-1]}_s{args.seed}.json"
    else:
        results = run_conditions(args)
        name = f"task_goal_proposal_s{args.seed}.json"
    report = {"machine": machine(), "args": vars(args), "results": results}
    write_report(args.json or RESULTS / "task_goal_proposal" / name, report)


if __name__ == "__main__":
    main()
