"""Pictures for the docs: camera frames of play episodes, and each goal family's start and goal.

    python -m sim_worlds.pictures [--out docs/img] [--image-size 64]

Writes play_frames.png (rows: episodes, columns: frames through each episode, labelled with
the scripted skills), goal_families.png (per family: the start image and the goal image)
and close_decision.png (the grasp expert's frames around the step it closes the gripper:
the decision every trained policy gets wrong, seen as the policy sees it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim_worlds.collectors import collect_episode
from sim_worlds.goals import FAMILIES, make_suite
from sim_worlds.panda_world import PandaWorld

ROOT = Path(__file__).resolve().parents[1]


def play_frames(out: Path, image_size: int, seeds=(0, 2, 5, 7, 8, 15), columns: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    world = PandaWorld(image_size=image_size)
    fig, axes = plt.subplots(len(seeds), columns, figsize=(columns * 1.3, len(seeds) * 1.45))
    try:
        for row, seed in enumerate(seeds):
            episode = collect_episode(world, seed)
            picks = np.linspace(0, len(episode.observations) - 1, columns).round().astype(int)
            for col, t in enumerate(picks):
                ax = axes[row, col]
                ax.imshow(episode.observations[t].image, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(f"t={t}", fontsize=8)
            axes[row, 0].set_ylabel(" + ".join(episode.behaviours[:2]), fontsize=6)
    finally:
        world.close()
    return _save(fig, out / "play_frames.png", f"Scripted play episodes ({image_size}x{image_size} camera frames)", fontsize=10)


def goal_families(out: Path, image_size: int, seed: int = 0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim_worlds.goals import world_for

    fig, axes = plt.subplots(2, len(FAMILIES), figsize=(len(FAMILIES) * 1.6, 3.6))
    for col, family in enumerate(FAMILIES):
        task = make_suite(family, 1, seed, image_size)[0]
        world = world_for(family, image_size)
        try:
            start = world.set_state(task.start_state).image
        finally:
            world.close()
        for row, (image, label) in enumerate(((start, "start"), (task.goal_image, "goal"))):
            ax = axes[row, col]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(family, fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    return _save(fig, out / "goal_families.png", "Goal families: start state and goal image", fontsize=10)


def close_decision(out: Path, image_size: int, seed: int = 0, tasks: int = 4, before: int = 3) -> Path:
    """The frames a policy must close the gripper on, against the frames it must not.

    Rows are grasp tasks; columns run from `before` steps ahead of the expert's close step
    to one after it, then the goal. Each frame is labelled with the grasp target's height
    and the measured gripper state: the close step and the descent step before it differ
    by about a centimetre and a few pixels, which is what a 64x64 policy has to go on.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim_worlds.experts import solve
    from sim_worlds.goals import world_for

    offsets = list(range(-before, 2))
    fig, axes = plt.subplots(tasks, len(offsets) + 1, figsize=((len(offsets) + 1) * 1.45, tasks * 1.6), squeeze=False)
    world = world_for("grasp", image_size)
    try:
        for row, task in enumerate(make_suite("grasp", tasks, seed, image_size=image_size)):
            trace = solve(world, task)
            close = trace.phases.index("close")
            for col, offset in enumerate(offsets):
                obs = trace.observations[close + offset]
                command = "close" if trace.actions[close + offset][4] > 0 else "open"
                label = "close step" if offset == 0 else f"{offset:+d}"
                _frame(axes[row, col], obs.image, f"{label}: {command}\nz {obs.ee_position[2] * 100:.1f} cm, grip {obs.gripper:.2f}")
            _frame(axes[row, -1], task.goal_image, "goal")
    finally:
        world.close()
    return _save(fig, out / "close_decision.png", "Grasp expert around its close step (label: command, grasp-target height, measured gripper)", fontsize=9)


def _save(fig, path: Path, title: str, fontsize: int = 10) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _frame(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--image-size", type=int, default=64, choices=(64, 128))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in (play_frames(out, args.image_size), goal_families(out, args.image_size), close_decision(out, args.image_size)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
