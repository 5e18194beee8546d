"""The training store: memory-mappable arrays plus a manifest (design section 4).

Layout of a store directory:
    images.npy      uint8   N x H x W x 3   camera frame at each control tick
    actions.npy     float32 N x 5           normalised action in force after that frame
    gripper.npy     float32 N               gripper state (0 open .. 1 closed)
    episode.npy     int32   N               episode index (0 .. E-1), steps of one episode contiguous
    timestamps.npy  float64 N               seconds (bag receive time of the frame)
    ee_position.npy float32 N x 3           end effector position (ee_pose) at the frame, metres in
                                            base_link; NaN where the bag had no ee_pose. Optional:
                                            stores built before it open without it
    manifest.json   format version, image size, counts, per-episode records, skipped bags

Step i's action leads from frame i to frame i+1 when both belong to the same episode; the
last step of an episode has no successor. A store written by `write_store` opens with
`Store.open` in O(1) memory whatever its size (np.load with mmap_mode="r").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from robot_app.spec import EE_HEIGHT_SCALE_M

STORE_FORMAT_VERSION = 1
ARRAYS = {
    "images": np.uint8,
    "actions": np.float32,
    "gripper": np.float32,
    "episode": np.int32,
    "timestamps": np.float64,
}
OPTIONAL_ARRAYS = {"ee_position": np.float32}


@dataclass
class Store:
    root: Path
    images: np.ndarray
    actions: np.ndarray
    gripper: np.ndarray
    episode: np.ndarray
    timestamps: np.ndarray
    manifest: dict
    ee_position: np.ndarray | None = None

    @classmethod
    def open(cls, root: str | os.PathLike) -> Store:
        root = Path(root)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{root}: not a dataset store (no manifest.json)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != STORE_FORMAT_VERSION:
            raise ValueError(f"{root}: store format {manifest.get('format_version')}, expected {STORE_FORMAT_VERSION}")
        arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        arrays.update({name: np.load(root / f"{name}.npy", mmap_mode="r") for name in OPTIONAL_ARRAYS if (root / f"{name}.npy").is_file()})
        n = len(arrays["images"])
        for name, arr in arrays.items():
            if len(arr) != n:
                raise ValueError(f"{root}: {name}.npy has {len(arr)} rows, images.npy has {n}")
        if manifest.get("num_steps") != n:
            raise ValueError(f"{root}: manifest.json counts {manifest.get('num_steps')} steps, the arrays hold {n}; "
                             f"the store is not the one its manifest describes, rebuild it (robot-app dataset build)")
        return cls(root=root, manifest=manifest, **arrays)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_episodes(self) -> int:
        return len(self.manifest["episodes"])

    def episode_bounds(self) -> np.ndarray:
        """(E, 2) array of [start, end) step indices, one row per episode."""
        return np.array([[e["start"], e["start"] + e["length"]] for e in self.manifest["episodes"]], dtype=np.int64)

    def episode_success(self) -> np.ndarray:
        """Per-episode task label as float (1 success, 0 failure, nan unlabelled)."""
        return np.array(
            [np.nan if e.get("success") is None else float(e["success"]) for e in self.manifest["episodes"]],
            dtype=np.float64,
        )

    def episode_arrays(self, episode: int) -> dict:
        """One episode's rows (memory-mapped views) and task label, in the dict shape write_store takes."""
        if not 0 <= episode < self.num_episodes:
            raise ValueError(f"{self.root}: no episode {episode}; it holds episodes 0..{self.num_episodes - 1}")
        start, end = (int(i) for i in self.episode_bounds()[episode])
        rows = slice(start, end)
        return {"images": self.images[rows], "actions": self.actions[rows], "gripper": self.gripper[rows],
                "timestamps": self.timestamps[rows],
                "ee_position": None if self.ee_position is None else self.ee_position[rows],
                "success": self.manifest["episodes"][episode].get("success")}

    def manifest_hash(self) -> str:
        return self.manifest.get("hash", "")

    @cached_property
    def gripper_is_binary(self) -> bool:
        """Whether every logged gripper command is open or closed (a4 exactly -1 or +1).

        Read from the actions themselves (in chunks, the array may be memory-mapped and
        large), so stores written before the question was asked answer it too.
        """
        grip, chunk = self.actions[:, 4], 1 << 16
        return len(grip) > 0 and all(
            bool(np.all(np.abs(grip[i : i + chunk]) == 1.0)) for i in range(0, len(grip), chunk)
        )

    @cached_property
    def has_ee_height(self) -> bool:
        """Whether every frame has its end effector height (what a height-input network trains on)."""
        return self.ee_position is not None and bool(np.all(np.isfinite(self.ee_position[:, 2])))

    def require_ee_height(self, needed_by: str = "the network takes the end effector height") -> None:
        """Raise ValueError, saying why it is needed and how to fix it, unless every frame has its end effector position."""
        if not self.has_ee_height:
            raise ValueError(
                f"{self.root}: {needed_by}, but this store has no ee_position "
                f"for every frame; rebuild it from bags that log ee_pose (robot-app dataset build)"
            )

    def proprio(self, rows: np.ndarray, height_input: bool) -> np.ndarray:
        """(B, P) float32 network proprio input of store rows: [gripper] or [gripper, height / 0.25 m]
        (robot_app.spec.proprio_vector, the runtime's, on one observation)."""
        gripper = np.asarray(self.gripper[rows], dtype=np.float32).reshape(-1, 1)
        if not height_input:
            return gripper
        self.require_ee_height()
        height = np.asarray(self.ee_position[rows, 2], dtype=np.float32).reshape(-1, 1) / EE_HEIGHT_SCALE_M
        return np.concatenate([gripper, height], axis=1)

    def action_scaling(self) -> dict:
        """The scaling the data was logged with (the manifest's), marked binary_gripper from the data."""
        return {**(self.manifest.get("action_scaling") or {}), "binary_gripper": self.gripper_is_binary}


def content_hash(records: list[dict], image_size: int) -> str:
    """The store's identity for provenance and exact resume: its episodes' bag contents
    (sha256; the source name where an episode came from no bag), their lengths and order,
    and the image size. Not the path a bag was given by: the same bags named relative or
    absolute, or moved, build the same store, and a 64 px and a 128 px build do not."""
    import hashlib

    keys = [(r["sha256"] or r["source"], r["length"]) for r in records]
    return hashlib.sha256(json.dumps({"image_size": image_size, "episodes": keys}).encode()).hexdigest()


def write_store(root: str | os.PathLike, episodes: list[dict], manifest_extra: dict | None = None) -> Path:
    """Write a store from in-memory episodes.

    Each episode is a dict with arrays "images" (T,H,W,3 uint8), "actions" (T,5),
    "gripper" (T,), "timestamps" (T,), optional "ee_position" (T,3) and optional "source",
    "sha256", "success", "task". ee_position.npy is written when any episode has positions
    (NaN rows for those without).
    Arrays are written to temporary names and renamed last, so a crash never leaves a
    half store that opens.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not episodes:
        raise ValueError("write_store: no episodes to write")
    lengths = [len(ep["images"]) for ep in episodes]
    n = int(sum(lengths))
    h, w = episodes[0]["images"].shape[1:3]
    shapes = {"images": (n, h, w, 3), "actions": (n, 5), "gripper": (n,), "episode": (n,), "timestamps": (n,), "ee_position": (n, 3)}
    names = dict(ARRAYS)
    if any(ep.get("ee_position") is not None for ep in episodes):
        names.update(OPTIONAL_ARRAYS)
    out = {
        name: np.lib.format.open_memmap(root / f"{name}.tmp.npy", mode="w+", dtype=dtype, shape=shapes[name])
        for name, dtype in names.items()
    }
    records = []
    start = 0
    for index, (ep, length) in enumerate(zip(episodes, lengths, strict=True)):
        sl = slice(start, start + length)
        out["images"][sl] = ep["images"]
        out["actions"][sl] = ep["actions"]
        out["gripper"][sl] = np.asarray(ep["gripper"]).reshape(length)
        out["episode"][sl] = index
        out["timestamps"][sl] = ep["timestamps"]
        if "ee_position" in out:
            ee = ep.get("ee_position")
            out["ee_position"][sl] = np.nan if ee is None else np.asarray(ee).reshape(length, 3)
        records.append(
            {
                "index": index,
                "start": start,
                "length": length,
                "source": str(ep.get("source", "")),
                "sha256": ep.get("sha256", ""),
                "success": ep.get("success"),
                "task": ep.get("task"),
            }
        )
        start += length
    for arr in out.values():
        arr.flush()
    del out
    (root / "manifest.json").unlink(missing_ok=True)  # a rebuild killed among the renames leaves no store that opens
    for name in names:
        os.replace(root / f"{name}.tmp.npy", root / f"{name}.npy")
    for name in OPTIONAL_ARRAYS.keys() - names.keys():
        (root / f"{name}.npy").unlink(missing_ok=True)  # a stale one from an earlier build of this directory
    manifest = {
        "format_version": STORE_FORMAT_VERSION,
        "image_size": int(h),
        "num_steps": n,
        "num_episodes": len(episodes),
        "episodes": records,
        "skipped": [],
    }
    manifest.update(manifest_extra or {})
    manifest["hash"] = content_hash(records, int(h))
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, root / "manifest.json")
    return root
