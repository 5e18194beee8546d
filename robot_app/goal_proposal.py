"""Propose a goal picture for a task from the scene: where is the object, and which logged
grasp held an object there?

A goal-conditioned model grasps the held-out object in ~83% of tasks when shown a picture of
*any* cube held where that object lies (BENCHMARKS.md, "Session 21"), so a task model can
keep the goal input: find the object (training/localiser.py), then show the play-data frame
whose held object was lifted nearest that spot. The bank needs no labels: "holding" comes
from the measured gripper (robot_app.spec.is_holding) and "where" from the logged grasp
point, both in every play episode.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import PinholeCamera
from .spec import is_holding

LOCALISER_INPUT, LOCALISER_OUTPUT = "image", "pixel"  # the localiser graph's contract (training/localiser.py)
# 0: keep every held, lifted frame (5466 from the 1000-episode play store, 3.8 MB). Thinning to
# one per 1 cm cell (1282, 0.9 MB) cost the shipped goal model 15 of 100 tasks with the same
# localiser (62 against 77; the oracle position 76 against 82): BENCHMARKS.md, session 22.
BANK_CELL_M = 0.0
# What `robot-app task-goals` writes in a new card: act toward the 5 pictures held nearest the
# found object, none more than 1 cm beyond the nearest. With the play-data bank, for nine goal
# models fine-tuned from the pretraining (25, 50, 100 attempts x 3 seeds), it gained +8 points
# on the suite seed K was chosen on and +1.4 on a fresh one (pooled 65.2% against 60.2% at 50
# attempts). Fresh goal models and labelled-attempt banks moved within noise. A mean-of-N goal
# model, which already averages, lost (the shipped one: 206 against 219 of 300), so those keep
# the nearest alone (BENCHMARKS.md, "Session 23").
GOALS_PER_RUN, GOAL_SPREAD_M = 5, 0.01
LIFT_LOW_M, LIFT_HIGH_M = 0.12, 0.20  # the heights a grasp goal holds its object at (sim_worlds.goals)


def held_lift_rows(gripper: np.ndarray, ee_position: np.ndarray, low: float = LIFT_LOW_M,
                   high: float = LIFT_HIGH_M) -> np.ndarray:
    """Rows where the fingers hold an object and the grasp point is lifted between low and high."""
    z = np.asarray(ee_position)[:, 2]
    return np.flatnonzero(is_holding(np.asarray(gripper)) & (z >= low) & (z <= high))


def default_goals_per_run(algo: str) -> int:
    """Goal pictures a task model over this goal model acts toward: 1 for a mean of several
    cloned policies (card algo "...-meanN"), else GOALS_PER_RUN."""
    return 1 if re.search(r"-mean\d+$", algo) else GOALS_PER_RUN


@dataclass
class GoalBank:
    """Frames of a held, lifted object, each keyed by the table xy it was held over."""

    images: np.ndarray  # (K, H, W, 3) uint8
    positions: np.ndarray  # (K, 2) float32, grasp point xy in the robot's base frame

    @classmethod
    def from_store(cls, store, cell_m: float = BANK_CELL_M) -> GoalBank:
        """Every held, lifted frame, or with cell_m > 0 one per `cell_m` table cell (the one held
        nearest the cell's centre): a smaller bank for a large play store, at a measured cost."""
        store.require_ee_height("the goal bank keys each picture by where the gripper held it (ee_pose)")
        rows = held_lift_rows(store.gripper, store.ee_position)
        if rows.size == 0:
            raise ValueError(f"{store.root}: no frame holds a lifted object, so it offers no grasp goal pictures")
        xy = np.asarray(store.ee_position[rows][:, :2], dtype=np.float64)
        if cell_m > 0:
            cell = np.floor(xy / cell_m)
            off_centre = np.linalg.norm(xy - (cell + 0.5) * cell_m, axis=1)
            order = np.lexsort((off_centre, cell[:, 1], cell[:, 0]))
            first = np.ones(len(order), dtype=bool)
            first[1:] = np.any(np.diff(cell[order], axis=0) != 0, axis=1)
            rows = np.sort(rows[order[first]])
        return cls(np.asarray(store.images[rows]), np.asarray(store.ee_position[rows][:, :2], dtype=np.float32))

    def nearest(self, xy, count: int = 1, spread_m: float = 0.0) -> np.ndarray:
        """Indices of up to `count` pictures held nearest xy, nearest first, keeping only those
        within `spread_m` of the nearest one's distance (so a sparse bank never adds far ones)."""
        distance = np.linalg.norm(self.positions - np.asarray(xy, dtype=np.float32)[:2], axis=1)
        order = np.argsort(distance, kind="stable")[:max(int(count), 1)]
        return order[distance[order] <= distance[order[0]] + spread_m]

    def save(self, path: str | os.PathLike) -> None:
        """Compressed .npz, written to a temporary name and moved into place."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, images=self.images, positions=self.positions)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, image_size: int) -> GoalBank:
        try:
            with np.load(path, allow_pickle=False) as f:
                images, positions = f["images"], f["positions"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: not a goal bank (.npz with images and positions): {exc}") from exc
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
            raise ValueError(f"{path}: bank images are {images.dtype} {images.shape}, expected uint8 (K, {image_size}, {image_size}, 3)")
        if positions.shape != (len(images), 2) or len(images) == 0:
            raise ValueError(f"{path}: {len(images)} bank images but positions of shape {positions.shape}")
        return cls(images, positions.astype(np.float32))


def _check_digests(spec: dict, folder: Path) -> None:
    """The localiser and bank files are the ones the card was written with (its "sha256"), as
    the graph is checked against the card's onnx_sha256: a replaced bank would otherwise feed
    the model other goal pictures without a word. Cards written before the digests skip this."""
    from .policy import sha256_file

    for key, digest in (spec.get("sha256") or {}).items():
        path = folder / str(spec.get(key, ""))
        if not path.is_file():
            raise ValueError(f"goal_proposer: its {key} {path} is missing")
        found = sha256_file(path)
        if found != digest:
            raise ValueError(f"{path}: sha256 {found[:12]}... does not match its card ({str(digest)[:12]}...); "
                             f"the {key} was modified or replaced")


@dataclass
class Proposal:
    goals: np.ndarray  # (K, H, W, 3) uint8: the bank pictures the goal-conditioned model acts toward
    pixel: np.ndarray  # (2,) where the localiser found the object (column, row)
    position: np.ndarray  # (2,) that pixel on the table plane, base frame xy (m)
    bank_indices: np.ndarray  # (K,) nearest first
    bank_distance_m: float  # how far the nearest picture's grasp lies from the found object

    @property
    def goal(self) -> np.ndarray:
        """The nearest picture: the one shown to people (GUI, picture strips)."""
        return self.goals[0]

    @property
    def bank_index(self) -> int:
        return int(self.bank_indices[0])


class GoalProposer:
    """A task's goal picture for a scene: localise the object (ONNX), look up the bank.

    Card field `goal_proposer` (robot_app.policy.ModelCard): {"localiser": ONNX file,
    "bank": .npz file, both beside the card; "camera": PinholeCamera.to_dict();
    "grasp_height_m": the plane the found pixel is put on; optional "goals_per_run" K and
    "goal_spread_m": act toward the K pictures held nearest the object, within that much of
    the nearest (default 1: the nearest alone, as cards written before these fields had it)}.

    Several pictures, because one picture is one arm pose and one cube: acting toward the
    mean of K neighbours' actions averages out what is peculiar to each picture (measured in
    BENCHMARKS.md, "Session 23").
    """

    def __init__(self, session, camera: PinholeCamera, grasp_height_m: float, bank: GoalBank,
                 goals_per_run: int = 1, goal_spread_m: float = GOAL_SPREAD_M):
        self.session, self.camera, self.grasp_height_m, self.bank = session, camera, float(grasp_height_m), bank
        self.goals_per_run, self.goal_spread_m = int(goals_per_run), float(goal_spread_m)

    @classmethod
    def load(cls, spec: dict, folder: Path, image_size: int, threads: int = 1) -> GoalProposer:
        import onnxruntime as ort

        for key in ("localiser", "bank", "camera", "grasp_height_m"):
            if key not in spec:
                raise ValueError(f"goal_proposer: missing {key!r} (has {sorted(spec)})")
        _check_digests(spec, folder)
        try:
            camera = PinholeCamera.from_dict(spec["camera"])
            camera.check()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"goal_proposer: camera {spec['camera']!r} is not eye/target/up/fov_deg/size ({exc!r})") from None
        if camera.size != image_size:
            raise ValueError(f"goal_proposer: its camera is {camera.size} px, the model takes {image_size}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        localiser = folder / spec["localiser"]
        try:
            session = ort.InferenceSession(str(localiser), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a missing or broken file
            raise ValueError(f"{localiser}: cannot load the localiser graph: {exc}") from exc
        names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        if names != ([LOCALISER_INPUT], [LOCALISER_OUTPUT]):
            raise ValueError(f"{localiser}: graph inputs/outputs are {names}, expected ([{LOCALISER_INPUT!r}], [{LOCALISER_OUTPUT!r}])")
        goals_per_run, spread = spec.get("goals_per_run", 1), spec.get("goal_spread_m", GOAL_SPREAD_M)
        if not isinstance(goals_per_run, int) or goals_per_run < 1 or not isinstance(spread, int | float) or spread < 0:
            raise ValueError(f"goal_proposer: goals_per_run {goals_per_run!r} must be a positive integer and "
                             f"goal_spread_m {spread!r} a distance >= 0")
        return cls(session, camera, spec["grasp_height_m"], GoalBank.load(folder / spec["bank"], image_size),
                   goals_per_run, spread)

    def propose(self, image: np.ndarray) -> Proposal:
        """The goal picture for the scene in `image` (H, W, 3) uint8."""
        pixel = self.session.run(None, {LOCALISER_INPUT: np.ascontiguousarray(image, dtype=np.uint8)[None]})[0][0]
        position = self.camera.to_plane(pixel, self.grasp_height_m)[:2]
        ks = self.bank.nearest(position, self.goals_per_run, self.goal_spread_m)
        return Proposal(self.bank.images[ks], pixel, position, ks, float(np.linalg.norm(self.bank.positions[ks[0]] - position)))
