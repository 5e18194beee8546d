"""`robot-app bench`: run the benchmark scripts in bench/ (each writes JSON into bench/results/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all). Known: {', '.join(available()) or 'none'}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def run(args) -> int:
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        print(f"robot-app bench: unknown benchmark(s) {unknown}; known: {names}", file=sys.stderr)
        return 2
    failed = []
    for name in args.names or names:
        script = BENCH_DIR / f"bench_{name}.py"
        print(f"== bench {name}: {script}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=BENCH_DIR.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"robot-app bench: failed: {failed}", file=sys.stderr)
        return 1
    print("results in bench/results/*.json; BENCHMARKS.md holds the table")
    return 0
