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
                  `oracle-play`: the true object position looked up in the play-data bank.
  localised-play  no simulator knowledge: the heatmap localiser (training/localiser.py),
                  fitted to the labelled attempts, finds the object; the play store's frame
                  of a held, lifted cube nearest that spot is the picture
                  (robot_app/goal_proposal.py). What a task model keeping the goal input does.

The oracle rows say what a perfect object localiser would buy; `--localiser` trains the
learned one and reports its table-plane error on the suite's start frames. (Session 21's
plain CNN regressing table xy missed by a median 4.2 cm at 50 attempts, commit 4f2cda1.)

    python bench/task_goal_proposal.py --policy models/grasp_heldout_goal.onnx --episodes 100 --seed 0
    python bench/task_goal_proposal.py --localiser --data data/task_50
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from common import RESULTS, machine, write_report

CONDITIONS = ("own", "fixed", "retrieved-whole", "retrieved-change", "oracle-heldout-25", "oracle-heldout-300",
              "oracle-cube-300", "oracle-shift-25", "oracle-play", "localised-play")
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


def heldout_starts(episodes: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(start frames (N, H, W, 3), the held-out object's true table xy (N, 2)) of a grasp-heldout suite."""
    from sim_worlds import goals
    from sim_worlds.panda_world import HELDOUT_OBJECT

    tasks = goals.make_suite("grasp-heldout", episodes, seed, image_size=size)
    world = goals.world_for("grasp-heldout", size)
    try:
        starts = np.stack([world.set_state(t.start_state).image for t in tasks])
    finally:
        world.close()
    return starts, np.stack([object_position(t, HELDOUT_OBJECT)[:2] for t in tasks])


def object_position(task, name: str) -> np.ndarray:
    return np.asarray(task.start_state["objects"][name]["position"], dtype=np.float64)


class Proposer:
    """goal(task, start image) -> the picture one condition feeds the policy for a whole episode."""

    def __init__(self, condition: str, args, size: int):
        from robot_app.store import Store
        from sim_worlds import goals
        from sim_worlds.panda_world import HELDOUT_OBJECT
        from training.finetune import task_goal_image

        self.condition, self.size, self.target = condition, size, HELDOUT_OBJECT
        store = Store.open(args.data)
        if condition == "fixed":
            self.fixed = task_goal_image(store)[0]
        elif condition.startswith("retrieved"):
            self.first, self.final = success_frames(store)
            self.changed = (np.abs(self.final.astype(np.float32) - self.first).sum(-1) > CHANGED).astype(np.float32)
        elif condition.endswith("-play"):
            from robot_app.goal_proposal import GoalBank

            self.bank = GoalBank.from_store(Store.open(args.play), args.bank_cell)
            self.locate = trained_localiser(args, size) if condition == "localised-play" else None
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
        if self.condition.endswith("-play"):
            xy = here[:2] if self.locate is None else self.locate(start_image[None])[0]
            return self.bank.images[self.bank.nearest(xy)[0]]
        k = int(np.argmin(np.linalg.norm(self.bank_position[:, :2] - here[:2], axis=1)))
        picture = self.bank[k].goal_image
        if self.condition.startswith("oracle-shift"):
            from sim_worlds.panda_world import sim_camera
            from training.localiser import shift_images

            camera = sim_camera(self.size)
            offset = np.round(camera.project(here) - camera.project(self.bank_position[k]))
            picture = shift_images(picture[None], offset[None])[0]
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
            results[condition] = evaluate(policy, Proposer(condition, args, policy.image_size), tasks, world, args.seed)
            s = results[condition]
            print(f"{condition:20s} {s['successes']}/{s['n']} = {s['success_rate']:.1%}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        world.close()
    return results


def trained_localiser(args, size: int):
    """image -> table xy: the heatmap localiser fitted to the labelled store (training/localiser.py)."""
    from robot_app.store import Store
    from sim_worlds.panda_world import sim_camera
    from training.localiser import LocaliserConfig, fit_localiser, localise

    store = Store.open(args.data)
    if store.image_size != size:
        raise ValueError(f"{args.data}: {store.image_size} px frames, the policy takes {size}")
    camera = sim_camera(size)
    fields = {f.name: f.type for f in dataclasses.fields(LocaliserConfig)}
    overrides = {}
    for item in args.localiser_set:
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--localiser-set {item!r}: LocaliserConfig has no {key!r} (has {sorted(fields)})")
        overrides[key] = value.lower() in ("1", "true", "yes") if fields[key] in (bool, "bool") else type(getattr(LocaliserConfig, key))(value)
    config = LocaliserConfig(**{"steps": args.localiser_steps, "seed": args.seed, "num_threads": args.threads, **overrides})
    play = Store.open(args.play) if config.paste_fraction > 0 else None
    net, height = fit_localiser(store, camera, config, play=play)
    return lambda images: camera.to_plane(localise(net, images), height)[..., :2]


def localiser_error(args) -> dict:
    """Table-plane error (m) of the learned localiser on the suite's start frames."""
    from robot_app.store import Store
    from training.finetune import first_close_rows

    store = Store.open(args.data)
    t0 = time.perf_counter()
    locate = trained_localiser(args, store.image_size)
    seconds = time.perf_counter() - t0
    starts, truth = heldout_starts(args.episodes, args.seed, store.image_size)
    error = np.linalg.norm(locate(starts) - truth, axis=1)

    closes = [c for c, (_, end) in zip(first_close_rows(store), store.episode_bounds(), strict=True) if c < end]
    mean_guess = np.asarray(store.ee_position)[closes, :2].mean(0)
    return {"data": args.data, "labelled_episodes": store.num_episodes, "steps": args.localiser_steps,
            "train_seconds": round(seconds, 1), "median_error_m": round(float(np.median(error)), 4),
            "p90_error_m": round(float(np.percentile(error, 90)), 4),
            "within_2cm": round(float((error < 0.02).mean()), 3),
            "median_error_of_the_mean_guess_m": round(float(np.median(np.linalg.norm(mean_guess - truth, axis=1))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="models/grasp_heldout_goal.onnx")
    parser.add_argument("--data", default="data/task_50", help="the labelled task store (successes, fixed image)")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--localiser", action="store_true", help="train and measure the learned localiser instead")
    parser.add_argument("--localiser-steps", type=int, default=600)
    parser.add_argument("--localiser-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="LocaliserConfig fields for the localiser, e.g. mirror=false sigma_px=1")
    parser.add_argument("--play", default="data/store_pose", help="the unlabelled play store the *-play banks come from")
    parser.add_argument("--bank-cell", type=float, default=0.0, help="one bank picture per this many metres of table (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.localiser:
        results = localiser_error(args)
        tag = "".join(f"_{item.replace('=', '-')}" for item in args.localiser_set)
        name = f"localiser_heatmap_{args.data.rstrip('/').split('/')[-1]}{tag}_s{args.seed}.json"
    else:
        results = run_conditions(args)
        name = f"task_goal_proposal_s{args.seed}.json"
    report = {"machine": machine(), "args": vars(args), "results": results}
    write_report(args.json or RESULTS / "task_goal_proposal" / name, report)


if __name__ == "__main__":
    main()
