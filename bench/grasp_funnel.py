"""Where closed-loop grasps are lost: how many episodes get over the object, down to it, close there, lift.

`robot-app eval --expert` asks a policy what it would do on the expert's path; this runs the
policy on its own path, which is where a 0% grasp family fails, and counts per task:

    over     the grasp target passes within OVER_XY of the object (table plane)
    low      ... and at the same step within LOW_Z of the object's centre height
    closed   a close command is given there while the fingers are still open
    lifted   the object rises LIFTED above its rest height
    success  the family's own check (held 5 cm up)

plus where each episode first closes the gripper (height above the object), and which object
the hand was nearest (table plane) there, or where it got lowest if it never closed: a policy
that goes for a distractor cube needs a different fix from one that goes for the right object
and closes a few centimetres beside it. A policy that closes high above the object and hovers
there is different again from one that descends and closes but slips.

    .venv/bin/python bench/grasp_funnel.py --policy gcbc-far@18000=runs/gcbc_far_long@18000 \
        --policy am=models/am_default.onnx --episodes 20
    # --gripper both: each policy twice, its card's gripper and the continuous one (side by side)

One JSON per label and gripper mode in bench/results/grasp_funnel/, and the table in summary.md there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import RESULTS, machine, write_report

from robot_app.evaluation import as_act_fn, episode_seed
from robot_app.policy import Policy
from robot_app.spec import ActionScaling
from sim_worlds import goals

OUT = RESULTS / "grasp_funnel"
OVER_XY = 0.025  # m: about the half width of the cubes; the fingers still straddle one from here
LOW_Z = 0.015  # m: the scripted expert closes with its grasp target about 0.4 cm above the cube's centre
LIFTED = 0.02  # m above rest
STAGES = ("over", "low", "closed", "lifted", "success")


def load_policy(spec: str, tmp: Path, seed: int) -> Policy:
    """An ONNX model (path or shipped name), or RUN@STEP exported to a temporary model first, as `robot-app eval` does."""
    if "@" in spec and Path(spec.split("@")[0]).is_dir():
        from training.commands.evaluate import run_checkpoint_policy

        run_dir, checkpoint = spec.rsplit("@", 1)
        return run_checkpoint_policy(run_dir, checkpoint, tmp, seed=seed)[0]
    return Policy.load(spec, seed=seed)


def raw_gripper(policy: Policy) -> ActionScaling:
    """Make `policy` return its searched grip as is; returns the scaling its card would settle actions with."""
    card_scaling = policy.card.action_scaling
    policy.card = dataclasses.replace(policy.card, action_scaling=dataclasses.replace(card_scaling, binary_gripper=False))
    return card_scaling


def trace_episode(world, task, act_fn, scaling: ActionScaling) -> dict:
    """Run one grasp task, acting with scaling.settle(act_fn(...)), and keep what the funnel asks of it.

    The grip before settling is kept where it decides the grasp: low over the object with the
    fingers open (a binary gripper closes when it is above 0).
    """
    name = next(iter(task.targets))
    rest = world.rest_height(name)
    obs = world.set_state(task.start_state)
    reached = dict.fromkeys(STAGES, False)
    first_close_height, grip_low_open = None, []
    aimed_at, lowest, miss = None, np.inf, None
    for _ in range(task.max_steps):
        ee, objects = world.ee_position(), world.object_positions()
        obj = objects[name]
        over = np.linalg.norm(ee[:2] - obj[:2]) < OVER_XY
        low = over and ee[2] - obj[2] < LOW_Z
        searched = act_fn(obs.image, task.goal_image, obs.state)
        action = scaling.settle(searched)
        if low and obs.gripper < 0.5:
            grip_low_open.append(float(searched[4]))
        closing = action[4] > 0 and obs.gripper < 0.5
        if closing and first_close_height is None:
            first_close_height = float(ee[2] - obj[2])
            aimed_at, miss = nearest_object(ee, objects), ee[:2] - obj[:2]
        if first_close_height is None and ee[2] < lowest:  # until the first close: where the hand got lowest
            lowest, aimed_at, miss = ee[2], nearest_object(ee, objects), ee[:2] - obj[:2]
        reached["over"] |= bool(over)
        reached["low"] |= bool(low)
        reached["closed"] |= bool(low and closing)
        obs = world.act(action)
        reached["lifted"] |= bool(world.object_positions()[name][2] - rest > LIFTED)
        if task.check(world):
            reached["success"] = True
            break
    return {"reached": reached, "first_close_height": first_close_height,
            "aimed_at": aimed_at[0], "aimed_at_xy_cm": aimed_at[1], "target": name,
            # hand minus target in base_link x (away from the camera, which looks along -x) and y, cm
            "miss_to_target_cm": [round(100 * float(v), 1) for v in miss],
            "grip_low_open_max": max(grip_low_open, default=None), "steps_low_open": len(grip_low_open)}


def nearest_object(ee: np.ndarray, objects: dict) -> tuple[str, float]:
    """(the object nearest the hand in the table plane, that distance in cm): which object a grasp went for."""
    name = min(objects, key=lambda n: np.linalg.norm(ee[:2] - objects[n][:2]))
    return name, round(100 * float(np.linalg.norm(ee[:2] - objects[name][:2])), 1)


def funnel(policy: Policy, scaling: ActionScaling, family: str, episodes: int, seed: int) -> tuple[dict, list[dict]]:
    """(the counts over `episodes` tasks of `family`, one trace per task)."""
    tasks = goals.make_suite(family, episodes, seed, image_size=policy.image_size)
    world = goals.world_for(family, policy.image_size)
    act_fn = as_act_fn(policy)
    traces = []
    try:
        for task in tasks:
            act_fn.new_episode(episode_seed(seed, family, task.index))
            traces.append(trace_episode(world, task, act_fn, scaling))
            print(f"  {family} #{task.index}: {traces[-1]}", file=sys.stderr, flush=True)
    finally:
        world.close()
    heights = [t["first_close_height"] for t in traces if t["first_close_height"] is not None]
    stuck = [t["grip_low_open_max"] for t in traces if t["grip_low_open_max"] is not None and not t["reached"]["closed"]]
    wrong = [t for t in traces if t["aimed_at"] != t["target"]]
    missed = [t for t in traces if t["aimed_at"] == t["target"] and not t["reached"]["success"]]  # failed at the target
    right = [t["aimed_at_xy_cm"] for t in missed]
    return {
        "n": len(traces),
        # the object the hand was nearest where it first closed (or, never closing, where it got lowest)
        "aimed_at_another_object": len(wrong),
        "failed_at_the_target_xy_cm_median": round(float(np.median(right)), 1) if right else None,
        # of those failures: the mean miss vector (x, y) in cm, a shared bias shows here, scatter averages out
        "failed_at_the_target_mean_miss_cm": ([round(float(v), 1) for v in np.mean([t["miss_to_target_cm"] for t in missed], axis=0)]
                                              if missed else None),
        "stages": {s: sum(t["reached"][s] for t in traces) for s in STAGES},
        "never_closed": len(traces) - len(heights),
        "first_close_height_cm_median": round(100 * float(np.median(heights)), 1) if heights else None,
        "first_close_above_5cm": sum(h > 0.05 for h in heights),
        # episodes low over the object with open fingers that never closed there: their highest searched grip
        "low_never_closed_grip_max": [round(g, 2) for g in stuck],
    }, traces


def table(reports: list[dict]) -> str:
    lines = ["| policy | family | gripper | n | over | low | closed there | lifted | success | first close: median height above the object (cm) | first closes above 5 cm | low, never closed: highest grip searched | went for another object | failed at the target: median miss in xy (cm) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        f = r["results"]
        s = f["stages"]
        lines.append(f"| {r['label']} | {r.get('family', 'grasp')} | {r['gripper']} | {f['n']} | " + " | ".join(str(s[k]) for k in STAGES)
                     + f" | {f['first_close_height_cm_median']} | {f['first_close_above_5cm']} of {f['n'] - f['never_closed']} |"
                     + f" {', '.join(f'{g:+.2f}' for g in f.get('low_never_closed_grip_max', []))} |"
                     + f" {f.get('aimed_at_another_object', '-')} | {f.get('failed_at_the_target_xy_cm_median') or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", action="append", default=[], metavar="LABEL=MODEL_OR_RUN@STEP")
    parser.add_argument("--family", default="grasp", choices=["grasp", "grasp-heldout"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gripper", choices=["card", "binary", "continuous", "both"], default="card",
                        help="the card's gripper, one forced, or 'both' (continuous and binary, side by side)")
    parser.add_argument("--table-only", action="store_true", help="rewrite summary.md from the JSON files")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    modes = {"both": [False, True], "binary": [True], "continuous": [False], "card": [None]}[args.gripper]
    with tempfile.TemporaryDirectory() as tmp:
        for item in [] if args.table_only else args.policy:
            label, _, spec = item.partition("=")
            policy = load_policy(spec, Path(tmp), args.seed)  # reseeded per task, so one load serves every mode
            card_scaling = raw_gripper(policy)
            for binary in modes:
                scaling = card_scaling if binary is None else dataclasses.replace(card_scaling, binary_gripper=binary)
                mode = "binary" if scaling.binary_gripper else "continuous"
                print(f"{label} ({mode}):", file=sys.stderr)
                results, traces = funnel(policy, scaling, args.family, args.episodes, args.seed)
                write_report(OUT / f"{label}_{args.family}_{mode}.json", {
                    "label": label, "model": spec, "gripper": mode, "family": args.family, "seed": args.seed,
                    "machine": machine(), "results": results, "episodes": traces})
    reports = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    (OUT / "summary.md").write_text(table(reports))
    print(table(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
