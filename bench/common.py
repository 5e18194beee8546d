"""What the bench scripts share: the repository on sys.path, the machine's description,
medians over repeats, and the JSON report in bench/results/.

A bench script runs as `python bench/bench_NAME.py`, so this folder is on sys.path and
`from common import ...` finds this module; importing it puts the repository root there
too, for robot_app, sim_worlds and the rest.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> dict:
    """Where the numbers were measured: they are scale on a shared machine, not promises."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def medians(runs: list[dict]) -> dict:
    """Per key, the median over repeats (each run a dict of the same numeric keys)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def write_report(path: str | Path, report: dict) -> None:
    """Write the report as JSON and print its results, which is what gets quoted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report.get("results", report), indent=2))
