"""The goal-suite evaluation (design section 7), torch-free so training and `robot-app eval` share it.

A policy is judged per goal family by its success rate with a Wilson 95% interval (honest
at the small N a CPU can afford, and never outside [0, 1] like the normal approximation),
the number of episodes and the mean number of steps (over all episodes; a failure counts
its full step budget).

`policy` is anything that acts: an object with `act(image, goal, gripper)` returning an
action or (action, q) -- robot_app.policy.Policy -- or such a callable. If it has
`reseed(seed)`, it is reseeded before each episode from (seed, family, index), so an
episode's result does not depend on which episodes ran before it.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

from robot_app.spec import ACTION_DIM, IMAGE_SIZE, needs_heldout_world

STRIP_FRAMES = 6  # frames between start and final in a family's picture strip


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# Student's t, two-sided 95%, by degrees of freedom (standard tables); above 30, 1.96.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042}


def seed_interval(rates: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean success rate over independently trained models and its 95% t interval.

    Why beside wilson_interval: a Wilson interval over the pooled episodes of three trained
    models counts only the evaluation's coin flips, as if the three were one policy. When
    training seeds differ as much as they do here (fresh policies on 50 labelled attempts
    grasp 8 to 30 of 100), the training draw is the larger part of the uncertainty, and only
    an interval over the models shows it. Needs at least two models.
    """
    if len(rates) < 2:
        raise ValueError(f"seed_interval: needs at least two trained models, got {len(rates)}")
    n = len(rates)
    mean = sum(rates) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (n - 1))
    half = _T95.get(n - 1, 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def family_summary(successes: list[bool], steps: list[int], distances: list[tuple[float, float]] | None = None) -> dict:
    """One family's line of the results: success_rate, ci95, n, mean_steps.

    distances: (start, final) of GoalTask.distance per episode, in metres. Then the line also
    has the mean start and final distance and `distance_closed`, the mean fraction of the
    start distance removed (1 = at the goal, 0 = not moved, negative = moved away): how
    close failures come, which the success rate alone cannot say.
    """
    n = len(successes)
    k = int(sum(bool(s) for s in successes))
    lo, hi = wilson_interval(k, n)
    summary = {
        "success_rate": k / n if n else 0.0,
        "ci95": [round(lo, 4), round(hi, 4)],
        "n": n,
        "successes": k,
        "mean_steps": float(np.mean(steps)) if steps else 0.0,
    }
    if distances:
        start, final = np.asarray(distances, dtype=np.float64).T
        summary["mean_start_distance_m"] = round(float(start.mean()), 4)
        summary["mean_final_distance_m"] = round(float(final.mean()), 4)
        summary["distance_closed"] = round(float(np.mean(1.0 - final / np.maximum(start, 1e-6))), 4)
    return summary


def episode_seed(seed: int, family: str, index: int) -> int:
    """Policy noise seed of one episode: fixed by (seed, family, index), not by run order."""
    return int(np.random.SeedSequence([seed, zlib.crc32(family.encode()), index]).generate_state(1)[0])


class TaskActFn:
    """act_fn(image, goal, state) -> action (5,) for sim_worlds.goals.run_goal_episode.

    A goal-conditioned policy pursues the suite's goal; a task model its own: a fixed goal
    image (card "goal_image") or the pictures its goal proposer picks from each episode's first frame
    (card "goal_proposer"). Call new_episode(seed) before each episode: the next frame seen
    is taken as the first, and the policy's noise restarts from the seed.
    """

    def __init__(self, policy):
        self._act = getattr(policy, "act", policy)
        if not callable(self._act):
            raise TypeError(f"policy: expected an object with act() or a callable, got {type(policy).__name__}")
        self._reseed = getattr(policy, "reseed", None)
        self._fixed_goal = getattr(policy, "task_goal", None)
        self._proposer = getattr(policy, "goal_proposer", None)
        self._episode_goals: np.ndarray | None = None

    def new_episode(self, seed: int | None = None) -> None:
        self._episode_goals = None
        if seed is not None and self._reseed is not None:
            self._reseed(seed)

    def goal_for(self, image: np.ndarray, suite_goal: np.ndarray) -> np.ndarray:
        """What to act toward: the proposed pictures (K, H, W, 3), the fixed goal, or the suite's."""
        if self._proposer is not None:
            if self._episode_goals is None:
                self._episode_goals = self._proposer.propose(image).goals
            return self._episode_goals
        return self.goal_pursued(suite_goal)

    def goal_pursued(self, suite_goal: np.ndarray) -> np.ndarray:
        """The goal picture of the episode just run (for its strip): the nearest proposed, fixed, or the suite's."""
        if self._proposer is not None and self._episode_goals is not None:
            return self._episode_goals[0]
        return suite_goal if self._fixed_goal is None else self._fixed_goal

    def __call__(self, image, goal, state) -> np.ndarray:
        out = self._act(image, self.goal_for(image, goal), state)
        return np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.float32)


def as_act_fn(policy) -> TaskActFn:
    """The act_fn form of a policy (an object with act(), or a callable)."""
    return TaskActFn(policy)


class RandomPolicy:
    """Uniform random actions in [-1, 1]^5: the chance level a learned policy must clear.

    `robot-app eval --policy random` runs it, so every success rate in a table can be read
    against what flailing achieves on the same tasks and seeds. Reseeded per episode like
    the learned policies' CEM noise, so its results repeat exactly.
    """

    onnx_path = "random"

    def __init__(self, seed: int = 0, image_size: int = IMAGE_SIZE):
        self.image_size = image_size
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, image: np.ndarray, goal: np.ndarray, gripper: float) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, ACTION_DIM).astype(np.float32)


def _world_for(goals, family: str, image_size: int):
    """The world a family's tasks run in (sim_worlds picks the objects it needs)."""
    if hasattr(goals, "world_for"):
        return goals.world_for(family, image_size)
    from sim_worlds.panda_world import PandaWorld

    return PandaWorld(image_size=image_size, heldout=needs_heldout_world(family))


def _strip(task, result, goal: np.ndarray | None = None) -> dict:
    """The picture strip of one episode; `goal` the picture the policy pursued (default the suite's)."""
    frames = list(result.frames or [])
    picks = np.linspace(1, len(frames) - 2, num=min(STRIP_FRAMES, max(len(frames) - 2, 0)), dtype=int) if len(frames) > 2 else []
    return {
        "start": frames[0] if frames else None,
        "goal": task.goal_image if goal is None else goal,
        "frames": [(int(i), frames[i]) for i in picks],
        "final": result.final_image,
        "success": bool(result.success),
        "steps": int(result.steps),
    }


def _rollout(index: int, result, goal: np.ndarray) -> dict:
    """One episode frame by frame (save_videos): every observed frame, start first, and the goal pursued."""
    return {"index": index, "frames": list(result.frames), "goal": goal, "success": bool(result.success),
            "steps": int(result.steps)}


def evaluate_suite(
    policy,
    families: list[str],
    episodes: int,
    seed: int,
    image_size: int = 64,
    progress: bool = True,
    record_strips: bool = False,
    max_steps: int | None = None,
    name: str | None = None,
    videos: int = 0,
) -> dict:
    """Run `episodes` goal episodes per family; results in the JSON shape of issue 4 item 7.

    With record_strips, results["strips"][family] holds the first episode's pictures
    (numpy arrays, for save_strips); with videos=N, results["videos"][family] the first N
    episodes' frames (save_videos). write_json leaves both out.
    """
    from tqdm import tqdm

    from sim_worlds import goals

    unknown = [f for f in families if f not in goals.FAMILIES]
    if unknown:
        raise ValueError(f"unknown goal famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {list(goals.FAMILIES)}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    act_fn = as_act_fn(policy)
    results: dict = {"families": {}, "policy": name or _describe(policy), "seed": seed, "episodes": episodes, "image_size": image_size}
    strips: dict = {}
    rollouts: dict = {family: [] for family in families} if videos > 0 else {}
    bar = tqdm(total=episodes * len(families), desc="eval", unit="ep", disable=not progress, leave=False)
    try:
        for family in families:
            tasks = goals.make_suite(family, episodes, seed, image_size=image_size)
            world = _world_for(goals, family, image_size)
            successes, steps, distances = [], [], []
            try:
                for task in tasks:
                    act_fn.new_episode(episode_seed(seed, family, task.index))
                    strip = record_strips and not strips.get(family)
                    video = len(rollouts.get(family, ())) < videos
                    result = goals.run_goal_episode(world, task, act_fn, max_steps=max_steps, record_frames=strip or video)
                    successes.append(bool(result.success))
                    steps.append(int(result.steps))
                    distances.append((result.start_distance, result.final_distance))
                    pursued = act_fn.goal_pursued(task.goal_image) if strip or video else None
                    if strip:
                        strips[family] = _strip(task, result, pursued)
                    if video:
                        rollouts[family].append(_rollout(task.index, result, pursued))
                    bar.update(1)
                    bar.set_postfix_str(f"{family} {sum(successes)}/{len(successes)}")
            finally:
                world.close()
            results["families"][family] = family_summary(successes, steps, distances)
    finally:
        bar.close()
    if record_strips:
        results["strips"] = strips
    if videos > 0:
        results["videos"] = rollouts
    return results


def _describe(policy) -> str:
    path = getattr(policy, "onnx_path", None)
    return str(path) if path is not None else getattr(policy, "__name__", type(policy).__name__)


def json_ready(results: dict) -> dict:
    """The results without the picture arrays."""
    return {k: v for k, v in results.items() if k not in ("strips", "videos")}


def write_json(results: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_ready(results), indent=2) + "\n")  # families in suite order
    os.replace(tmp, path)
    return path


TABLE_HEADER = ("family", "success", "95% CI", "n", "mean steps", "distance start -> final (cm)", "closed")


def table_rows(results: dict) -> list[tuple[str, ...]]:
    """Per family, the cells of TABLE_HEADER: what the markdown table and the HTML report show."""
    rows = []
    for family, r in results["families"].items():
        lo, hi = r["ci95"]
        if "distance_closed" in r:
            dist = (f"{100 * r['mean_start_distance_m']:.1f} -> {100 * r['mean_final_distance_m']:.1f}",
                    f"{round(100 * r['distance_closed'])}%")
        else:
            dist = ("-", "-")
        rows.append((family, f"{r['success_rate']:.2f}", f"[{lo:.2f}, {hi:.2f}]", str(r["n"]), f"{r['mean_steps']:.1f}", *dist))
    return rows


def markdown_table(results: dict) -> str:
    """A table per family: success rate, 95% interval, N, mean steps, distance to the goal."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|---|" + "---:|" * (len(TABLE_HEADER) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"


def save_strips(results: dict, out_dir: str | os.PathLike) -> list[Path]:
    """DIR/strip_<family>.png: start, goal, some frames, final of each family's first episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for family, s in results.get("strips", {}).items():
        panels = [("start", s["start"]), ("goal", s["goal"])]
        panels += [(f"t={t}", img) for t, img in s["frames"]]
        panels.append((f"final ({'success' if s['success'] else 'fail'}, {s['steps']} steps)", s["final"]))
        panels = [(title, img) for title, img in panels if img is not None]
        fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 1.9), squeeze=False)
        for ax, (title, img) in zip(axes[0], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
        fig.suptitle(family, fontsize=9)
        fig.tight_layout()
        path = out_dir / f"strip_{family}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def save_videos(results: dict, out_dir: str | os.PathLike) -> list[Path]:
    """DIR/rollout_<family>_<task>_<success|fail>.webm: each recorded episode frame by frame
    beside the goal it pursued (robot_app.video); the outcome in the name, to find the failures."""
    from robot_app.video import write_rollout_video

    written = []
    for family, episodes in results.get("videos", {}).items():
        for e in episodes:
            verdict = "success" if e["success"] else "fail"
            path = Path(out_dir) / f"rollout_{family}_{e['index']:03d}_{verdict}.webm"
            written.append(write_rollout_video(path, e["frames"], e["goal"], outcome=f"{verdict}, {e['steps']} steps"))
    return written


def write_html_report(results: dict, out_dir: str | os.PathLike, title: str = "") -> Path:
    """DIR/report.html: the table, then per family its strip and rollout videos (the files
    save_rollouts wrote in DIR), and the success curve when there is one; one page to open
    or share instead of a folder of files. Plain HTML, no scripts."""
    import html

    out_dir = Path(out_dir)
    esc = html.escape
    header = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADER) + "</tr>"
    rows = ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in table_rows(results)]
    parts = [f"<h1>{esc(title or 'Evaluation of ' + str(results.get('policy', '')))}</h1>",
             f"<p>seed {results.get('seed')}, {results.get('episodes')} episodes per family</p>",
             "<table>", header, *rows, "</table>"]
    if (out_dir / "success_vs_step.png").is_file():
        parts.append('<h2>success against training step</h2><img src="success_vs_step.png" alt="success against step">')
    for family in results["families"]:
        parts.append(f"<h2>{esc(family)}</h2>")
        if (out_dir / f"strip_{family}.png").is_file():
            parts.append(f'<img src="strip_{esc(family)}.png" alt="{esc(family)} strip">')
        for video in sorted(out_dir.glob(f"rollout_{family}_*.webm")):
            parts.append(f'<figure><video src="{esc(video.name)}" controls loop muted width="528"></video>'
                         f"<figcaption>{esc(video.stem)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}figure{display:inline-block;margin:.5em}"
             "img{image-rendering:pixelated;max-width:100%}")
    page = f"<!doctype html><meta charset=utf-8><title>{esc(title or 'evaluation')}</title><style>{style}</style>\n"
    path = out_dir / "report.html"
    path.write_text(page + "\n".join(parts) + "\n")
    return path


def save_rollouts(results: dict, out_dir: str | os.PathLike) -> list[Path]:
    """The recorded episodes as picture strips and videos (save_strips, save_videos)."""
    return save_strips(results, out_dir) + save_videos(results, out_dir)


def plot_success_vs_step(points: list[tuple[int, dict]], path: str | os.PathLike) -> Path:
    """Success rate (with its 95% interval) per family against training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(points, key=lambda p: p[0])
    families = list(dict.fromkeys(f for _, r in points for f in r["families"]))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for family in families:
        rows = [(step, r["families"][family]) for step, r in points if family in r["families"]]
        steps = [s for s, _ in rows]
        rates = np.array([f["success_rate"] for _, f in rows])
        lo = np.array([f["ci95"][0] for _, f in rows])
        hi = np.array([f["ci95"][1] for _, f in rows])
        ax.plot(steps, rates, marker="o", label=family)
        ax.fill_between(steps, lo, hi, alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
