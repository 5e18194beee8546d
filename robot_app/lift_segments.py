"""Cut a play store's episodes at their first lift: a store for teaching the grasp.

Why: a cloned policy continued on the play data's lifting segments alone (every hindsight goal
drawn from them lies on the way to a lifted object) grasps cubes it is shown lifted far more
often than it did after pretraining on all of the play data (BENCHMARKS.md, session 31). "Lift"
needs no labels: the measured gripper says the fingers hold something and the logged grasp point
says it is 12-20 cm up (robot_app.goal_proposal.held_lift_rows), both in every play episode of
the simulator's or a real arm's (`/ee_pose`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .goal_proposal import held_lift_rows
from .store import Store, write_store

FRAMES_AFTER_LIFT = 3  # frames kept from the first held, lifted one on: the goal's own look


def lift_segments(store: Store, after: int = FRAMES_AFTER_LIFT) -> list[dict]:
    """Each episode that lifts something, from its start to `after` frames from its first lift on
    (in write_store's episode shape); the episodes that never lift are left out."""
    store.require_ee_height("a lift is where the gripper holds an object 12-20 cm up (ee_pose)")
    rows = held_lift_rows(store.gripper, store.ee_position)
    bounds = store.episode_bounds()
    episode_of = np.searchsorted(bounds[:, 1], rows, side="right")
    segments = []
    for episode in np.unique(episode_of):
        start, end = (int(i) for i in bounds[episode])
        length = min(int(rows[episode_of == episode].min()) + after, end) - start
        arrays = store.episode_arrays(int(episode))
        segments.append({k: v[:length] if isinstance(v, np.ndarray) else v for k, v in arrays.items()})
    return segments


def write_lift_store(source: str | Path, out: str | Path) -> tuple[int, int, int]:
    """Write the lifting segments of store `source` as store `out`; returns (segments, episodes, steps)."""
    store = Store.open(source)
    segments = lift_segments(store)
    if not segments:
        raise ValueError(f"{source}: no episode holds an object 12-20 cm up, so there is nothing to cut")
    write_store(out, segments, {"source": f"{source}: episodes cut at their first lift (robot-app dataset lifts)"})
    return len(segments), store.num_episodes, sum(len(s["images"]) for s in segments)
