"""Task models judged on suite seeds they were not picked on (bench/fresh_suites_probe.sh).

A cell's best length is picked on suite seed 0, whose score is then biased upward by the pick.
This prints each cell on suite seed 0 (the picking tasks), on suite seeds 1 and 2 (fresh tasks,
the unbiased number) and the ratio of the two sides per attempts, from files named
LABEL-atSTEP_nATTEMPTS_sSEED.json (suite 0, where the probes wrote them) and
fresh_suites/LABEL-atSTEP_nATTEMPTS_sSEED_suiteK.json.

    .venv/bin/python bench/fresh_suites_table.py bench/results/finetune_s30/fresh_suites \
        --suite0 "bench/results/finetune_*"

Several folders may be given; a result named ..._suite0.json counts as suite 0. Each label
other than "scratch" is divided by scratch's at the same number of attempts, a label's own
attempts number and "+" variants kept apart (pretrained25+paste: "pretrained+paste").
(session 31: bench/results/finetune_s31/paste with the session 30 folder, --suite0 the same.)
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from collections import defaultdict
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the repository on sys.path)

from robot_app.evaluation import wilson_interval

NAME = re.compile(r"(?P<cell>(?P<label>.+?)-at(?P<step>\d+)_n(?P<attempts>\d+))_s(?P<seed>\d+)(?:_suite(?P<suite>\d+))?$")


def successes(path: Path) -> tuple[int, int]:
    family = json.loads(path.read_text())["families"]["grasp-heldout"]
    return int(family["successes"]), int(family["n"])


def read(paths: list[Path]) -> dict[str, dict[int, dict[int, tuple[int, int]]]]:
    """{cell: {suite: {model seed: (successes, n)}}}"""
    cells: dict = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        match = NAME.match(path.stem)
        if match:
            cells[match["cell"]][int(match["suite"] or 0)][int(match["seed"])] = successes(path)
    return cells


def pooled(runs: dict[int, tuple[int, int]]) -> tuple[int, int, str]:
    got, n = sum(s for s, _ in runs.values()), sum(n for _, n in runs.values())
    lo, hi = wilson_interval(got, n)
    return got, n, f"{got}/{n} = {100 * got / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fresh", type=Path, nargs="+", help="folders of *_suiteK.json results")
    p.add_argument("--suite0", default="bench/results/finetune_*", help="glob of the folders holding suite 0's results")
    args = p.parse_args(argv)
    fresh = read(sorted(path for folder in args.fresh for path in folder.glob("*_suite[12].json")))
    if not fresh:
        raise SystemExit(f"no *_suiteK.json results in {', '.join(map(str, args.fresh))}")
    picked = read([Path(f) for d in glob.glob(args.suite0) for f in glob.glob(f"{d}/*.json")]
                  + [path for folder in args.fresh for path in folder.glob("*_suite0.json")])
    print("| cell | suite 0 (picked on) | suites 1 + 2 (fresh) | per model, suite 1 / suite 2 |")
    print("|---|---:|---:|---|")
    rates: dict[tuple[str, str], float] = {}
    for cell in sorted(fresh, key=lambda c: (int(NAME.match(c + "_s0")["attempts"]), c)):
        match = NAME.match(cell + "_s0")
        on_fresh = {(suite, seed): r for suite in (1, 2) for seed, r in fresh[cell].get(suite, {}).items()}
        got, n, text = pooled(on_fresh)
        rates[(match["attempts"], match["label"].replace(match["attempts"], "", 1))] = got / n
        zero = pooled(picked[cell][0])[2] if picked.get(cell, {}).get(0) else "-"
        seeds = sorted({seed for _, seed in on_fresh})
        per_model = ", ".join(f"s{seed}: {fresh[cell][1].get(seed, ('-',))[0]} / {fresh[cell][2].get(seed, ('-',))[0]}"
                              for seed in seeds)
        print(f"| {cell} | {zero} | {text} | {per_model} |")
    for attempts, label in sorted(rates, key=lambda key: (int(key[0]), key[1])):
        if label != "scratch" and (attempts, "scratch") in rates:
            ratio = rates[(attempts, label)] / rates[(attempts, "scratch")]
            print(f"{attempts} attempts, fresh suites: {label} / scratch = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
