"""Where goal images come from: a folder, one file, a dataset store, the sim's goal
suites, the shipped task models, or the camera itself.

Each gatherer returns a GalleryLoad: the usable entries and, for everything refused, one
line saying which item and why. Nothing here imports Qt, so the gatherers run in a worker
thread (a dataset or a sim suite can take seconds) and are tested without a window.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gui.images import GoalImageError, check_goal_shape, list_image_files, load_image_file

MAX_ITEMS = 200  # a gallery is for choosing; more than this would only slow the window down


@dataclass
class GoalEntry:
    """One choosable goal. `model` is set for a task: choosing it may switch the policy."""

    name: str
    image: np.ndarray  # H x W x 3 uint8 RGB, any near-square size
    source: str  # "folder", "file", "dataset", "suite", "task", "camera"
    detail: str = ""  # tooltip: where exactly it came from
    model: Path | None = None  # the task's ONNX model
    task: str | None = None


@dataclass
class GalleryLoad:
    entries: list[GoalEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def extend(self, other: GalleryLoad) -> None:
        self.entries.extend(other.entries)
        self.problems.extend(other.problems)


def _capped(items: list, what: str, load: GalleryLoad) -> list:
    if len(items) > MAX_ITEMS:
        load.problems.append(f"{what}: showing the first {MAX_ITEMS} of {len(items)}")
        return items[:MAX_ITEMS]
    return items


def from_file(path: str | os.PathLike, source: str = "file") -> GalleryLoad:
    load = GalleryLoad()
    path = Path(path)
    try:
        image = load_image_file(path)
        check_goal_shape(image, path.name)
    except (GoalImageError, OSError) as exc:
        load.problems.append(
            f"refused {exc}" if isinstance(exc, GoalImageError) else f"refused {path.name}: {exc}"
        )
        return load
    load.entries.append(GoalEntry(name=path.stem, image=image, source=source, detail=str(path)))
    return load


def from_folder(folder: str | os.PathLike) -> GalleryLoad:
    """Every image file directly in the folder; unreadable ones are refused by name."""
    load = GalleryLoad()
    folder = Path(folder)
    if not folder.is_dir():
        load.problems.append(f"goal folder {folder}: not a directory")
        return load
    files = list_image_files(folder)
    if not files:
        load.problems.append(f"goal folder {folder}: no image files ({', '.join(('png', 'jpg', 'bmp'))} ...)")
    for path in _capped(files, f"goal folder {folder}", load):
        load.extend(from_file(path, source="folder"))
    return load


def from_dataset(root: str | os.PathLike) -> GalleryLoad:
    """The final frame of each logged episode of a training store: states the data reached."""
    from robot_app.store import Store

    load = GalleryLoad()
    try:
        store = Store.open(root)
    except (OSError, ValueError, KeyError) as exc:
        load.problems.append(f"dataset {root}: {exc}")
        return load
    bounds = _capped(list(store.episode_bounds()), f"dataset {root}", load)
    success = store.episode_success()
    for index, (_, end) in enumerate(bounds):
        record = store.manifest["episodes"][index]
        label = "" if np.isnan(success[index]) else (" success" if success[index] else " failure")
        task = f" {record['task']}" if record.get("task") else ""
        load.entries.append(
            GoalEntry(
                name=f"episode {index}{task}{label}",
                image=np.array(store.images[end - 1]),
                source="dataset",
                detail=f"{root}: last frame of episode {index} (step {end - 1}), from {record.get('source') or '?'}",
            )
        )
    return load


def from_suites(image_size: int, per_family: int = 4, seed: int = 0) -> GalleryLoad:
    """Goal images rendered by the sim's evaluation suites (needs pybullet)."""
    load = GalleryLoad()
    try:
        from sim_worlds.goals import FAMILIES, make_suite
    except ImportError as exc:
        load.problems.append(f"sim goal suites unavailable: {exc}")
        return load
    for family in FAMILIES:
        try:
            tasks = make_suite(family, per_family, seed, image_size)
        except Exception as exc:  # a broken family must not hide the others
            load.problems.append(f"sim goal suite {family!r}: {type(exc).__name__}: {exc}")
            continue
        for index, task in enumerate(tasks):
            load.entries.append(
                GoalEntry(
                    name=f"{family} {index}",
                    image=np.asarray(task.goal_image, dtype=np.uint8),
                    source="suite",
                    detail=f"sim goal suite {family}, seed {seed}, task {index}",
                )
            )
    return load


def read_cards(models_dir: str | os.PathLike):
    """(card path, card, None) for each readable models_dir/*.json object, (card path, None, problem)
    for each unreadable one, in name order."""
    for card_path in sorted(Path(models_dir).glob("*.json")):
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            yield card_path, None, f"model card {card_path.name}: unreadable ({exc})"
            continue
        if isinstance(card, dict):  # anything else is not a model card: skipped
            yield card_path, card, None


def from_models(models_dir: str | os.PathLike) -> GalleryLoad:
    """Tasks: model cards (models/NAME.json) with a "task" field and a goal image beside them.

    The goal image is the card's "goal_image" (relative to the card) or NAME_goal.png.
    Cards without a "task" field are general goal-reaching models, not tasks: skipped.
    """
    load = GalleryLoad()
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        load.problems.append(f"models folder {models_dir}: not a directory")
        return load
    for card_path, card, problem in read_cards(models_dir):
        if problem:
            load.problems.append(problem)
            continue
        if not card.get("task"):
            continue
        goal_path = card_path.parent / card.get("goal_image", f"{card_path.stem}_goal.png")
        model_path = card_path.with_suffix(".onnx")
        if not goal_path.is_file():
            load.problems.append(f"task {card['task']!r} ({card_path.name}): no goal image {goal_path.name}")
            continue
        if not model_path.is_file():
            load.problems.append(f"task {card['task']!r} ({card_path.name}): no model {model_path.name}")
            continue
        found = from_file(goal_path, source="task")
        load.problems.extend(found.problems)
        for entry in found.entries:
            entry.name, entry.task, entry.model = f"task: {card['task']}", str(card["task"]), model_path
            entry.detail = (f"{model_path.name}: finds the object and proposes its goal from the camera when started "
                            f"({goal_path.name} is one example)" if card.get("goal_proposer")
                            else f"{model_path.name} with goal image {goal_path.name}")
            load.entries.append(entry)
    return load


def untasked_models(models_dir: str | os.PathLike):
    """(card path, card, .onnx path) of each readable card in models_dir without a "task" field and
    with its graph beside it: the goal-conditioned models (the GUI's model list, the Teach tab's starts)."""
    for card_path, card, problem in read_cards(models_dir) if Path(models_dir).is_dir() else []:
        model_path = card_path.with_suffix(".onnx")
        if not problem and not card.get("task") and model_path.is_file():
            yield card_path, card, model_path


def goal_models(models_dir: str | os.PathLike) -> list[tuple[str, Path, str]]:
    """Goal-reaching models in a models folder: (name, .onnx path, what its card says).

    Cards without a "task" field beside their graph, e.g. the default AM model and the GCBC
    grasp model: the GUI offers them for the policy to load, since which model suits a goal
    depends on the goal (BENCHMARKS.md: one reaches best, the other grasps). Unreadable
    cards and cards without a graph are left out; the task gallery reports those.
    """
    found = []
    for card_path, card, model_path in untasked_models(models_dir):
        families = ((card.get("evaluation") or {}).get("families")) or {}
        rates = ", ".join(f"{f} {round(100 * r['success_rate'])}%" for f, r in families.items()
                          if isinstance(r, dict) and isinstance(r.get("success_rate"), int | float))
        found.append((card_path.stem, model_path, f"{card.get('algo', '?')}" + (f": {rates}" if rates else "")))
    return found
