"""How clearly the logged data says "close now": P(logged close | gripper open) by grasp-target height.

Every trained policy misses the grasp's close step (bench/bench_expert.py). This asks whether
the data itself makes that step learnable from what the arm knows: among the logged steps
whose measured gripper is open, the share whose command closes it, per band of grasp-target
height. The heights come from each episode bag's ee_pose topic (the store keeps no pose),
aligned one message per camera frame as `robot-app collect` writes them.

    .venv/bin/python bench/close_ambiguity.py --store data/store --out bench/results/close_ambiguity.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from robot_app.bags import BagReader  # noqa: E402
from robot_app.spec import GRIPPER_CLOSED_ABOVE, Topics  # noqa: E402
from robot_app.store import Store  # noqa: E402

BANDS_CM = (0.0, 2.6, 3.0, 4.0, 6.0, 30.0)  # 2.6 cm: just above where the grasp skill closes (2.4 cm)


def episode_heights(episode: dict) -> np.ndarray:
    """Grasp-target z (m) of each frame of one episode, from its bag's ee_pose messages."""
    with BagReader(episode["source"]) as reader:
        topic = next(t for t in reader.topics if t.lstrip("/") == Topics.EE_POSE.lstrip("/"))
        z = [msg.pose.position.z for _, _, _, msg in reader.messages([topic])]
    if len(z) < episode["length"]:
        raise ValueError(f"{episode['source']}: {len(z)} ee_pose messages for {episode['length']} frames")
    return np.asarray(z[: episode["length"]], dtype=np.float64)


def open_and_closing(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool masks: the measured gripper is open; the logged command closes it."""
    return np.asarray(store.gripper) <= GRIPPER_CLOSED_ABOVE, np.asarray(store.actions[:, 4]) > 0


def close_share_by_height(is_open: np.ndarray, closes: np.ndarray, heights: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in zip(BANDS_CM[:-1], BANDS_CM[1:], strict=True):
        band = is_open & (heights * 100 >= lo) & (heights * 100 < hi)
        rows.append({"height_cm": [lo, hi], "open_steps": int(band.sum()),
                     "p_close": round(float(closes[band].mean()), 3) if band.any() else None})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(ROOT / "data" / "store"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "close_ambiguity.json"))
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    store = Store.open(args.store)
    with ProcessPoolExecutor(args.workers) as pool:
        heights = np.concatenate(list(pool.map(episode_heights, store.manifest["episodes"], chunksize=20)))
    is_open, closes = open_and_closing(store)
    rows = close_share_by_height(is_open, closes, heights)
    result = {"benchmark": "close_ambiguity", "store": args.store, "steps": len(store),
              "switch_steps": int((is_open & closes).sum()), "bands": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        print(f"z {r['height_cm'][0]:4.1f}-{r['height_cm'][1]:4.1f} cm: {r['open_steps']:6d} open steps, P(close) {r['p_close']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
