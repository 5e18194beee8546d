"""Reference for the fine-tuning benchmark: filtered behaviour cloning on the same labelled data.

How much of the held-out grasp can anything learn from N labelled episodes at 64x64? The
simplest answer a robot-learning user asks for first: clone the actions of the successful
episodes only ("filtered BC", robomimic's and Cal-QL's baseline), same conv trunk, same
task goal image, same augmentation, same evaluation suite and seeds as
bench_finetune.py. `--trunk pretrained` starts the trunk from the goal-conditioned run's
Q-network encoder (or a GCBC run's policy encoder), which asks whether pretraining gave a
representation worth having; `--trunk policy` starts the whole policy from a GCBC run
(trunk and head: the goal-conditioned skill itself, adapted to the task), and with
`--steps 0` measures that skill zero-shot on the task goal image.

It is a reference, not a mode of `robot-app finetune`: the policy is run in torch (its mean
action), not exported. Writes bench/results/finetune_bc.json after every run.

    .venv/bin/python bench/bench_finetune_bc.py --sizes 25,50,100 --seeds 0,1,2 --trunks scratch,pretrained \
        --task-store data/h7_task_store --pretrained runs/am_s0_3000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_finetune import subset_store, summarise  # noqa: E402

from robot_app.spec import ActionScaling, proprio_vector  # noqa: E402
from robot_app.store import Store  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="25,50,100")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trunks", default="scratch,pretrained",
                   help="scratch, pretrained (the --pretrained run's encoder) and/or policy (a GCBC run's whole policy)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--episodes-eval", type=int, default=100)
    # Defaults: what bench_finetune.py makes when run without arguments (`robot-app bench` runs it first).
    p.add_argument("--task-store", default=str(ROOT / "data" / "bench_finetune" / "task_store"), help="labelled task store")
    p.add_argument("--pretrained", default=str(ROOT / "data" / "bench_finetune" / "pretrained"),
                   help="goal-conditioned AM run (network config, and the trunk for --trunks pretrained)")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--work", default=str(ROOT / "data" / "bench_finetune_bc"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "finetune_bc.json"))
    return p.parse_args(argv)


def pretrained_weights(state: dict, trunk: str) -> dict:
    """BCPolicy weights to start from: the encoder ("pretrained") of an AM or GCBC run, or a GCBC run's whole policy."""
    if "policy" in state:  # a GCBC run
        from training.gcbc import acting_weights

        weights = acting_weights(state)
        return weights if trunk == "policy" else {k: v for k, v in weights.items() if k.startswith("encoder.")}
    if trunk == "policy":
        raise ValueError("--trunks policy needs a GCBC --pretrained run (an AM run has no policy to start from)")
    return {k: v for k, v in state["q1"].items() if k.startswith("encoder.")}


def train_bc(store_dir: Path, trunk: str, seed: int, args, base, checkpoint):
    import torch

    from training import runner
    from training.finetune import TaskBatches, task_goal_image, task_transitions
    from training.gcbc import BCPolicy

    torch.manual_seed(seed)
    store = Store.open(store_dir)
    task = task_transitions(store, seed=seed, height_input=base.network.height_input)
    goal, _ = task_goal_image(store)
    policy = BCPolicy(base.network, base.gcbc.action_bins)
    if trunk != "scratch":
        policy.load_state_dict(pretrained_weights(checkpoint["algorithm"], trunk), strict=trunk == "policy")
    optimizer = torch.optim.Adam(policy.parameters(), lr=base.gcbc.lr)
    batches = TaskBatches(task, goal, None, seed=seed)
    rows = batches.cloned_rows()  # the successful episodes' transitions
    loss = torch.tensor(float("nan"))  # --steps 0: the pretrained policy as it is
    rng, shift = np.random.default_rng(seed), torch.Generator()
    shift.manual_seed(seed + 2)
    for _ in range(args.steps):
        r = rows[rng.integers(0, len(rows), args.batch_size)]
        batch, _ = batches.task_rows(r)
        b = runner.to_torch(batch, torch.device("cpu"), base.augment_pad, shift)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=base.precision == "bf16"):
            raw = policy.raw(b["image"], b["goal"], b["gripper"])
        loss = policy.loss(raw, b["action"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return policy.eval(), goal, float(loss)


def act_fn(policy, goal, scaling: ActionScaling):
    """The policy's mean action, settled as the runtime settles it (a binary gripper opens or closes)."""
    import torch

    goal_t = torch.from_numpy(goal[None].copy())

    @torch.no_grad()
    def act(image, _suite_goal, state):  # a task policy pursues its own goal image, like a fine-tuned model
        grip = torch.from_numpy(proprio_vector(state, policy.config.height_input)[None])
        return scaling.settle(policy(torch.from_numpy(image[None].copy()), goal_t, grip)[0].numpy())

    return act


def main(argv=None) -> int:
    import torch
    from tqdm import tqdm

    from robot_app.evaluation import evaluate_suite
    from training.finetune import FinetuneConfig, base_train_config

    args = parse_args(argv)
    for path, what in ((args.task_store, "--task-store"), (args.pretrained, "--pretrained")):
        if not Path(path).exists():
            raise SystemExit(f"bench_finetune_bc: {what} {path} does not exist; run bench/bench_finetune.py first or pass {what}")
    torch.set_num_threads(args.num_threads)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    base, checkpoint = base_train_config(FinetuneConfig(pretrained=args.pretrained, data="-"))
    sizes = [int(x) for x in args.sizes.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    trunks = [t for t in args.trunks.split(",") if t]
    report = {"benchmark": "finetune_bc", "what": "filtered BC on the successful labelled episodes, torch policy, grasp-heldout success",
              "config": {**{k: v for k, v in vars(args).items() if k not in ("work", "out")}, "network": base.network.to_dict()},
              "runs": []}
    scaling = ActionScaling(binary_gripper=Store.open(args.task_store).gripper_is_binary)  # as the runtime settles
    cells = [(n, trunk, seed) for n in sizes for trunk in trunks for seed in seeds]
    for n, trunk, seed in tqdm(cells, desc="filtered BC", unit="run"):
        started = time.perf_counter()
        policy, goal, loss = train_bc(subset_store(Path(args.task_store), n, work), trunk, seed, args, base, checkpoint)
        train_s = time.perf_counter() - started
        family = evaluate_suite(act_fn(policy, goal, scaling), ["grasp-heldout"], args.episodes_eval, seed, progress=False)["families"]["grasp-heldout"]
        report["runs"].append({"mode": f"filtered-bc-{trunk}", "episodes": n, "seed": seed, **family,
                               "final_loss": round(loss, 4), "train_s": round(train_s, 1)})
        tqdm.write(f"filtered BC, {trunk} trunk, n={n}, seed {seed}: {family['successes']}/{family['n']} ({train_s:.0f} s training)")
        report["table"] = summarise(report["runs"])
        out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
