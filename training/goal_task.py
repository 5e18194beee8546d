"""Teach a task from labelled attempts by continuing a goal-conditioned policy on them, then let
it propose its own goal: `robot-app finetune --mode goal`.

Why this is the mode to use: on the held-out grasp it grasps most from few attempts of every
recipe measured (BENCHMARKS.md, sessions 22-31; three seeds, no goal picture given): from the
varied pretraining 68.3 / 81.8% of 600 tasks from 25 / 50 attempts, against 14.2 / 39.7% for
the same recipe from scratch at its best length, where the task Q-function modes grasp 0-1.3%
and cloning the successes about 30% at 50.

It is two steps, each also a command of its own (`robot-app train --set init_from=...`, then
`robot-app task-goals`):

1. Continue the pretrained GCBC policy on the attempts with hindsight goals, failures included:
   an attempt that missed still shows how the arm reaches the states it reached. The goal input
   stays, so the result also acts toward any goal picture. The settings are the pre-grasp
   recipe the pretraining used (far goals only, switches weighted x3, the steps before a grasp
   drawn x3: README, "A tour"); the network comes from the source.
2. Make it a task model (training/localiser.py): a heatmap localiser fitted to where the
   successful attempts closed (and to scenes made by pasting their object onto play frames)
   finds the object in a run's first frame, and the play data's pictures of a held, lifted
   object nearest that spot become the goal.

How long to continue depends on how many attempts there are, and is measured (`default_updates`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from training import runner
from training.config import ConfigError
from training.localiser import LocaliserConfig, build_task_model

# The pre-grasp GCBC recipe (README "A tour", step 3), as `train --set` overrides.
RECIPE = ("gcbc.switch_weight=3", "sampler.p_next=0", "sampler.p_geometric=0",
          "sampler.pre_grasp_steps=10", "sampler.pre_grasp_weight=3")


@dataclass(frozen=True)
class GoalTaskConfig:
    pretrained: str  # goal-conditioned GCBC run, .pt checkpoint or exported cloned model (--from)
    data: str  # labelled attempts (`robot-app dataset build` of `collect --task ...` or recorded bags)
    play: str = ""  # store the goal pictures come from (frames holding a lifted object): the pretraining play
    task: str = "grasp-heldout"  # the task's name in the card
    steps: int = 0  # updates on the attempts; 0 = by their number (default_updates)
    seed: int = 0  # the continuation's sampling and augmentation, and the localiser's
    overrides: tuple[str, ...] = ()  # further `train --set` settings, over the recipe's
    localiser_steps: int = 600  # LocaliserConfig.steps
    mirror: bool = True  # LocaliserConfig.mirror: off for a camera not on the robot's x axis
    camera: str = ""  # a calibrated camera file (task-goals --camera); "" = the simulator's


def default_updates(attempts: int) -> int:
    """Updates on `attempts` labelled episodes at batch 256, from each size's best measured length.

    The continuation forgets pretraining as it fits the attempts, and the fewer there are the
    sooner that costs (sessions 27-30, from the varied-play pretraining of
    models/varied_pretrained.onnx, 100 held-out tasks, three seeds a length, the localiser not
    yet pasting, which session 31 found worth 9-10 points at both picked lengths): from 25 attempts
    it grasps 48.0 / 61.0 / 58.3 / 59.7 / 53.3 / 49.0% at 250 / 500 / 1000 / 1500 / 2000 / 3000
    updates (500 picked on those tasks, then 59.5% on 600 it was not picked on); from 50, 67.7 / 75.7 / 68.3%
    at 1500 / 3000 / 6000; from 100, 76.3 / 83.3 / 83.0%. Between 25 and 50 nothing was
    measured; the switch sits halfway on a log scale.

    It is that source's rule: from the GPU pretraining of models/play_pretrained.onnx (three
    members continuing together, one seed) 3000 was best at both sizes, 38 / 37 / 39 / 46% at
    500 / 1000 / 1500 / 3000 from 25 attempts, so pass --steps 3000 when starting from it."""
    return 500 if attempts < 36 else 3000


def train_config(config: GoalTaskConfig, attempts: int, debug: bool = False) -> runner.TrainConfig:
    """The continuation's `train` config: GCBC from `pretrained`, the recipe, then the user's overrides."""
    overrides = [*RECIPE, f"init_from={config.pretrained}", f"seed={config.seed}", *config.overrides]
    steps = config.steps or (None if debug else default_updates(attempts))  # --debug: runner.DEBUG's
    return runner.resolve_config(algo="gcbc", overrides=overrides, debug=debug, steps=steps, data=config.data)


def check(config: GoalTaskConfig) -> None:
    if not config.pretrained:
        raise ConfigError("mode=goal continues a goal-conditioned GCBC policy: pass --from RUN (or a cloned model .onnx, "
                          "e.g. models/varied_pretrained.onnx)")
    if not config.data:
        raise ConfigError("no task data: pass --data DIR (a labelled store from `robot-app dataset build`)")
    if not config.play:
        raise ConfigError("mode=goal takes its goal pictures from a store whose frames hold a lifted object: pass --play "
                          "STORE, the pretraining play (`robot-app collect --episodes 1000` and `dataset build`, a few "
                          "minutes); the attempts' own store as --play also works, but its task models grasped about half "
                          "as often (BENCHMARKS.md, session 30)")
    if config.steps < 0 or config.localiser_steps < 1:
        raise ConfigError(f"steps={config.steps}, localiser_steps={config.localiser_steps}: "
                          "steps must be >= 0 (0 = by the attempts) and localiser_steps >= 1")


def check_source(pretrained: str) -> None:
    """Refuse, before any training, a source that is not a cloned policy: the continuation is GCBC."""
    import torch

    from training.export import names_a_model

    if names_a_model(pretrained):
        return  # training.export.import_cloned_model refuses a Q-function model by name
    path = runner.find_checkpoint(pretrained, pretrained if pretrained.endswith(".pt") else "latest")
    algo = torch.load(path, map_location="cpu", weights_only=True).get("config", {}).get("algo")
    if algo != "gcbc":
        raise ConfigError(f"--from {pretrained}: a {algo!r} run; mode=goal continues a goal-conditioned GCBC policy "
                          "(a `train --algo gcbc` run or a cloned model such as models/varied_pretrained.onnx)")


def finetune_goal(config: GoalTaskConfig, out: str | Path, task_model: str | Path | None = None,
                  progress: bool = True, debug: bool = False) -> tuple[Path, Path]:
    """Run both steps into the run directory `out`; returns (goal model, task model) ONNX paths.

    Writes OUT/ (the continuation run: config.yaml, metrics.csv, curve.png, checkpoints/),
    OUT/goal_model.onnx with its card, and the task model at `task_model` (default
    OUT/task_model.onnx) with its localiser, goal bank and goal picture beside it."""
    from robot_app.store import Store
    from training.export import export_run

    check(config)
    out = Path(out)
    task_model = Path(task_model) if task_model else out / "task_model.onnx"
    if task_model.suffix != ".onnx":
        raise ValueError(f"{task_model}: the task model's file name must end in .onnx")
    if runner.list_checkpoints(out):
        raise FileExistsError(f"{out}: already holds a run's checkpoints; choose another --out")
    check_source(config.pretrained)
    # What the task model needs from the stores and the camera is checked before the training,
    # not after it: a wrong --play or camera file should cost seconds, not the whole continuation.
    attempts = Store.open(config.data)
    attempts.require_ee_height("the localiser learns from where each attempt's gripper closed (ee_pose)")
    Store.open(config.play)
    camera = None
    if config.camera:
        from robot_app.camera import PinholeCamera

        camera = PinholeCamera.from_file(config.camera, attempts.image_size)
    continuation = train_config(config, attempts.num_episodes, debug)
    why = "" if config.steps or debug else f" (the measured best for {attempts.num_episodes} attempts: training/goal_task.py)"
    print(f"finetune goal: continuing {config.pretrained} on {attempts.num_episodes} attempts for {continuation.steps} "
          f"updates{why}", file=sys.stderr)
    checkpoint = runner.train(continuation, out, progress=progress)
    goal_model, _ = export_run(out, out / "goal_model.onnx", checkpoint=str(checkpoint))
    localiser = LocaliserConfig(seed=config.seed, mirror=config.mirror, steps=20 if debug else config.localiser_steps)
    build_task_model(str(goal_model), config.data, config.play, str(task_model), localiser, task=config.task,
                     camera=camera, progress=progress)
    return goal_model, task_model


def from_command_line(pretrained: str | None, data: str | None, play: str | None, steps: int | None, seed: int | None,
                      overrides: Sequence[str], task: str | None = None, camera: str | None = None,
                      mirror: bool = True) -> GoalTaskConfig:
    """The config from `finetune --mode goal`'s arguments (None = not given)."""
    config = GoalTaskConfig(pretrained=pretrained or "", data=data or "", play=play or "", overrides=tuple(overrides),
                            camera=camera or "", mirror=mirror)
    given = {"steps": steps, "seed": seed, "task": task}
    return replace(config, **{k: v for k, v in given.items() if v is not None})
