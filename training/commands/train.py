"""`robot-app train`: offline goal-conditioned Q-learning (or a baseline) from a training store.

    robot-app train --data DIR --algo am --out RUN [--config YAML] [--set key=value ...]
                    [--share-data STORE] [--steps N] [--resume] [--debug] [--nproc N]

Also runs as `python -m torch.distributed.run --nproc_per_node N -m training.commands.train ...`
(which is what `--nproc N` launches). torch is imported only inside run().
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ALGOS = ("am", "am-nonneg", "am-nochain", "gcbc", "gcivl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="training store directory (from `robot-app dataset build`)")
    parser.add_argument("--share-data", help="a second store (e.g. the pretraining play) that keeps share_fraction "
                        "(default 0.5) of every batch while continuing on --data; same as --set share_data=STORE")
    parser.add_argument("--algo", choices=ALGOS, help="algorithm or ablation preset (default: the config's, else am)")
    parser.add_argument("--out", required=True, help="run directory: config.yaml, metrics.csv, curve.png, checkpoints/")
    parser.add_argument("--config", help="YAML config (see config/train_am.yaml); unknown keys are errors")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set am.gamma=0.95 --set network.channels=[32,64,64,64]")
    parser.add_argument("--steps", type=int, help="total gradient updates (overrides the config)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where its last checkpoint left it")
    parser.add_argument("--debug", action="store_true", help="shrink everything so the run takes seconds")
    parser.add_argument("--nproc", type=int, default=1, help="data-parallel processes (torchrun; gloo on CPU, NCCL on GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.csv)")


def _torchrun_argv(args) -> list[str]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
            "-m", "training.commands.train", "--out", args.out]
    for flag in ("data", "algo", "config", "steps"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag}", str(getattr(args, flag))]
    for text in args.overrides:
        argv += ["--set", text]
    argv += [f for f, on in (("--resume", args.resume), ("--debug", args.debug), ("--no-progress", args.no_progress)) if on]
    return argv


def run(args) -> int:
    if args.nproc < 1:
        print(f"robot-app train: --nproc {args.nproc}: must be >= 1", file=sys.stderr)
        return 2
    if getattr(args, "share_data", None):
        args.overrides = [*args.overrides, f"share_data={args.share_data}"]
        args.share_data = None
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return subprocess.run(_torchrun_argv(args)).returncode

    from training.config import ConfigError, load_yaml
    from training.runner import resolve_config, train

    out = Path(args.out)
    try:
        base = None
        if args.resume:
            if not (out / "config.yaml").is_file():
                raise FileNotFoundError(f"{out}: no config.yaml, nothing to resume")
            base = load_yaml(out / "config.yaml")
            if args.algo and args.algo != base.get("algo"):
                raise ConfigError(f"{out}: the run is {base.get('algo')!r}; --resume cannot change it to {args.algo!r}")
        config = resolve_config(args.config, args.algo, args.overrides, args.debug, args.steps, args.data, base=base)
        checkpoint = train(config, out, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"robot-app train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robot-app train: interrupted; `--out {out} --resume` continues from the last checkpoint", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"robot-app train: {config.algo} for {config.steps} steps -> {out} (checkpoint {checkpoint})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.commands.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
