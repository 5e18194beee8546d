"""`robot-app eval`: judge a run or an exported ONNX policy on the sim goal suites.

A RUN is exported to a temporary ONNX file first and evaluated through the same runtime
(robot_app.policy.Policy) as a shipped model, so a run and its export cannot be judged
by different code: what is measured is what the robot would run. The export costs about
a second per checkpoint, small next to the episodes. An ONNX policy needs no torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_SUITE = "reach,push,grasp,rearrange,chain"


def add_arguments(parser) -> None:
    parser.add_argument("--policy", required=True, help="a run directory, a .onnx/.json model, a model name in models/, or 'random' (uniform actions: the chance level)")
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"comma-separated goal families (default: {DEFAULT_SUITE})")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per family (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="suite and policy-noise seed (default: 0)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here (default: DIR/eval.json with --out)")
    parser.add_argument("--out", type=Path, help="directory for eval.md, report.html, strip_<family>.png, rollout videos, success_vs_step.png")
    parser.add_argument("--videos", type=int, default=1, metavar="N",
                        help="with --out: videos of the first N episodes per family, "
                             "rollout_<family>_<task>_<success|fail>.webm (default: 1; 0: none)")
    parser.add_argument("--checkpoint", default="latest", help="checkpoint of a run to evaluate: latest (default), best (the best periodic evaluation), a step or a .pt file")
    parser.add_argument("--all-checkpoints", action="store_true", help="evaluate every checkpoint of a run; plot success against step")
    parser.add_argument("--write-card", action="store_true", help="store the results in the ONNX model's card")
    parser.add_argument("--max-steps", type=int, help="step budget per episode (default: each task's own)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)")
    parser.add_argument("--expert", action="store_true",
                        help="also run the scripted expert on each task and score the policy's actions along its path, "
                             "per skill phase (robot_app.expert_agreement): where a failing policy parts from the data's skills")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _is_run(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "checkpoints").is_dir()


def _checkpoints(run_dir: str) -> list[str]:
    """Every checkpoint file of a run, oldest first."""
    from training.runner import list_checkpoints

    files = list_checkpoints(Path(run_dir))
    if not files:
        raise SystemExit(f"robot-app eval: {run_dir}: no checkpoints in {Path(run_dir) / 'checkpoints'}")
    return [str(p) for p in files]


def _judge(policy, args, families, record: bool, name: str) -> dict:
    """The suite's success (and with --expert, the agreement with the scripted expert) of one policy."""
    from robot_app.evaluation import evaluate_suite

    results = evaluate_suite(policy, families, args.episodes, args.seed, image_size=policy.image_size,
                             progress=not args.no_progress, record_strips=record, max_steps=args.max_steps, name=name,
                             videos=args.videos if record else 0)
    if args.expert:
        from robot_app.expert_agreement import expert_agreement

        results["expert_agreement"] = expert_agreement(policy, families, args.episodes, args.seed, policy.image_size)
    return results


def run_checkpoint_policy(run_dir: str, checkpoint: str, tmp: Path, threads: int = 1, seed: int = 0):
    """(Policy, LoadedRun): one checkpoint exported to an ONNX model in `tmp`, judged like any shipped model."""
    from robot_app.policy import Policy
    from training.export import export_loaded_run
    from training.runner import load_run

    run = load_run(run_dir, checkpoint=checkpoint)
    onnx_path, _ = export_loaded_run(run, tmp / f"{Path(run_dir).name}_step_{run.step}.onnx",
                                     source=f"{Path(run_dir).resolve()}@{checkpoint}")
    return Policy.load(onnx_path, threads=threads, seed=seed), run


def _evaluate_run_checkpoint(run_dir: str, checkpoint: str, args, families, tmp: Path, record: bool):
    """Export one checkpoint to a temporary ONNX and evaluate it like any shipped model."""
    policy, run = run_checkpoint_policy(run_dir, checkpoint, tmp, args.threads, args.seed)
    results = _judge(policy, args, families, record, f"{run_dir}@{checkpoint} (step {run.step})")
    results["training_step"] = run.step
    return results


def _check_args(args, families: list[str]) -> str | None:
    from sim_worlds.goals import FAMILIES

    if args.episodes < 1:
        return f"--episodes must be at least 1, got {args.episodes}"
    if args.videos < 0:
        return f"--videos must be 0 or more, got {args.videos}"
    if not families:
        return "--suite names no family"
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        return f"--suite: unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {', '.join(FAMILIES)}"
    run = _is_run(args.policy)
    if args.all_checkpoints and not run:
        return f"--all-checkpoints needs a run directory, got {args.policy}"
    if args.policy == "random" and (args.write_card or args.all_checkpoints):
        return "--policy random is a baseline: it has no card to write and no checkpoints"
    if args.write_card and run:
        return "--write-card needs an exported model (.onnx/.json); export the run first with robot-app export"
    return None


def run(args) -> int:
    import tempfile

    from robot_app.evaluation import (
        RandomPolicy,
        markdown_table,
        plot_success_vs_step,
        save_rollouts,
        write_html_report,
        write_json,
    )
    from robot_app.policy import Policy, PolicyLoadError

    families = [f.strip() for f in args.suite.split(",") if f.strip()]
    problem = _check_args(args, families)
    if problem:
        print(f"robot-app eval: {problem}", file=sys.stderr)
        return 2
    record = args.out is not None
    curve = []
    if _is_run(args.policy):
        checkpoints = _checkpoints(args.policy) if args.all_checkpoints else [args.checkpoint]
        with tempfile.TemporaryDirectory(prefix="robot_app_eval_") as tmp:
            for i, ckpt in enumerate(checkpoints):
                last = i == len(checkpoints) - 1
                res = _evaluate_run_checkpoint(args.policy, ckpt, args, families, Path(tmp), record and last)
                curve.append((res["training_step"], res))
                if len(checkpoints) > 1:
                    rates = ", ".join(f"{f} {r['success_rate']:.2f}" for f, r in res["families"].items())
                    if args.expert:
                        from robot_app.expert_agreement import switches_on_time

                        made, n = switches_on_time(res["expert_agreement"])
                        rates += f"; gripper switches on time {made}/{n}"
                    print(f"step {res['training_step']}: {rates}")
        results = curve[-1][1]
        if len(curve) > 1:
            keep = ("families", "expert_agreement")
            results["checkpoints"] = [{"step": s, **{k: r[k] for k in keep if k in r}} for s, r in curve]
    else:
        try:
            policy = RandomPolicy(args.seed) if args.policy == "random" else Policy.load(args.policy, threads=args.threads, seed=args.seed)
        except PolicyLoadError as exc:
            print(f"robot-app eval: {exc}", file=sys.stderr)
            return 2
        results = _judge(policy, args, families, record, str(policy.onnx_path))
        results["training_step"] = policy.card.training_steps if isinstance(policy, Policy) else 0
        if args.write_card:
            card = policy.card.with_evaluation({k: results[k] for k in ("families", "seed", "episodes")})
            card.write(policy.card_path)
            print(f"evaluation written into {policy.card_path}")

    table = markdown_table(results)
    if args.expert:
        from robot_app.expert_agreement import markdown_agreement

        table += "\n" + markdown_agreement(results["expert_agreement"])
    print(table, end="")
    json_path = args.json or (args.out / "eval.json" if args.out else None)
    if json_path:
        print(f"results: {write_json(results, json_path)}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        header = f"# Evaluation of {results['policy']}\n\nseed {args.seed}, {args.episodes} episodes per family\n\n"
        (args.out / "eval.md").write_text(header + table)
        save_rollouts(results, args.out)
        if len(curve) > 1:
            plot_success_vs_step(curve, args.out / "success_vs_step.png")
        print(f"report: {args.out / 'eval.md'}, with pictures and videos: {write_html_report(results, args.out)}")
    return 0
