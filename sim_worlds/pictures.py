"""Pictures for the docs: camera frames of play episodes, and each goal family's start and goal.

    python -m sim_worlds.pictures [--out docs/img] [--image-size 64]

Writes play_frames.png (rows: episodes, columns: frames through each episode, labelled with
the scripted skills) and goal_families.png (per family: the start image and the goal image).
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
    fig.suptitle(f"Scripted play episodes ({image_size}x{image_size} camera frames)", fontsize=10)
    fig.tight_layout()
    path = out / "play_frames.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    fig.suptitle("Goal families: start state and goal image", fontsize=10)
    fig.tight_layout()
    path = out / "goal_families.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--image-size", type=int, default=64, choices=(64, 128))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in (play_frames(out, args.image_size), goal_families(out, args.image_size)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
