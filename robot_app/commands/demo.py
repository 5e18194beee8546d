"""`robot-app demo` (`make demo`): the whole system once, on the default sim world.

Launches the sim graph headless (sim driver + policy node on the shipped model) as
separate processes, exactly as `robot-app launch sim` does, in a namespace of its own so
it cannot disturb another graph on the same DDS domain. It puts the sim in the start state
of a reach task from the goal suite, sends that task's goal image, starts the policy and
waits for the outcome: reached by the simulator's success check on its state (not pixels)
and by the policy's own view (Q over its threshold), with steps and the final Q. A strip
of camera frames and the goal (for a task model, the goal picture it proposed) goes to
out/demo/rollout.png. With a display, the GUI opens
on the same graph and the demo waits for it to be closed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = ROOT / "models" / "am_default.onnx"
DONE_STATES = ("reached", "stopped", "error")


@dataclass
class DemoResult:
    sim_success: bool  # the task's success check on simulator state, after the run
    policy_reached: bool  # the policy stopped because its Q passed the threshold
    steps: int
    final_q: float | None
    reason: str  # the policy's last word on why it stopped
    picture: Path | None
    goal_proposed: bool = False  # a task model chose its own goal picture (the strip shows that one)
    video: Path | None = None  # the camera's frames beside the goal, as a video

    def line(self) -> str:
        yes = {True: "yes", False: "no"}
        verdict = "reached" if self.sim_success else "not reached"
        q = "n/a" if self.final_q is None else f"{self.final_q:.3f}"
        goal = "; goal picture proposed by the task model" if self.goal_proposed else ""
        return (f"demo: {verdict} (sim check: {yes[self.sim_success]}, policy: {yes[self.policy_reached]}) "
                f"in {self.steps} steps, final Q {q}; {self.reason}{goal}; picture {self.picture}"
                + (f", video {self.video}" if self.video else ""))


class DemoError(RuntimeError):
    """The demo could not run (model, graph); the message says what to do, `details` why."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help=f"ONNX policy (default: {SHIPPED_MODEL.relative_to(ROOT)})")
    parser.add_argument("--seed", type=int, default=0, help="goal-suite seed of the task (default: 0)")
    parser.add_argument("--family", default="reach", help="goal-suite family of the task (default: reach); e.g. "
                        "--family grasp-heldout --model models/grasp_heldout.onnx runs the shipped task model, which "
                        "proposes its own goal from the camera")
    parser.add_argument("--out", default="out/demo", metavar="DIR", help="where rollout.png goes (default: out/demo)")
    parser.add_argument("--no-gui", action="store_true", help="never open the GUI, even with a display")


def check_model(model: str | os.PathLike | None):
    """Load the policy here first: a missing or broken model is reported before any node starts."""
    from robot_app.policy import Policy

    path = Path(model) if model else SHIPPED_MODEL
    if not path.exists():
        hint = ("train and export one (robot-app train, robot-app export -o models/am_default.onnx) "
                "or pass --model PATH") if model is None else "check the path"
        raise DemoError(f"model {path} is missing: {hint}")
    try:
        return Policy.load(path)
    except Exception as exc:
        raise DemoError(f"model {path} cannot be used: {exc}") from None


def rollout_strip(frames: list, goal, columns: int = 8, scale: int = 2):
    """Up to `columns` evenly spaced frames, then the goal, side by side (RGB uint8)."""
    import cv2
    import numpy as np

    picks = frames if len(frames) <= columns else [frames[round(i)] for i in np.linspace(0, len(frames) - 1, columns)]
    gap = np.full((goal.shape[0], 2, 3), 255, np.uint8)
    tiles = []
    for image in [*picks, None, goal]:
        tiles.append(gap if image is None else image)  # None: a wider gap before the goal
        if image is None:
            tiles.append(gap)
    strip = np.concatenate(tiles, axis=1)
    return cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def run_demo(model=None, seed: int = 0, out_dir="out/demo", gui: bool = False, family: str = "reach") -> DemoResult:
    policy = check_model(model)

    from robot_app.commands.launch import Launcher, node_environment
    from robot_app.spec import needs_heldout_world
    from ros_nodes.client import GraphClient
    from ros_nodes.graph import sim_graph
    from sim_worlds.goals import make_suite

    print(f"demo: model {policy.onnx_path} ({policy.card.algo}, {policy.image_size}px)", flush=True)
    try:
        task = make_suite(family, 1, seed, policy.image_size)[0]
    except ValueError as exc:  # an unknown family, named with the known ones
        raise DemoError(str(exc)) from None
    namespace = f"demo{os.getpid()}"
    specs = sim_graph(
        model=str(policy.onnx_path.resolve()), headless=not gui,
        sim_overrides={"goal_family": family, "goal_seed": seed, "goal_index": 0, "image_size": policy.image_size,
                       "heldout": needs_heldout_world(family)},
        policy_overrides={"max_steps": task.max_steps},
    )
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    launcher = Launcher(specs, namespace=namespace, env=node_environment(local_only=True), quiet=True)
    launcher.start()
    client = GraphClient("demo", namespace=namespace)
    try:
        result = _drive(client, launcher, task, Path(out_dir), gui)
    except TimeoutError as exc:
        raise DemoError(str(exc), _tails(launcher)) from None
    finally:
        client.close()
        launcher.stop()
    return result


def _tails(launcher, lines: int = 8) -> str:
    """The last lines of each node's output: why a graph did not come up."""
    return "\n".join(f"[{name}] {line}" for name, log in launcher.logs.items() for line in log[-lines:])


def _drive(client, launcher, task, out_dir: Path, gui: bool) -> DemoResult:
    """Reset to the task's start, send its goal, run the policy to its end, judge, draw."""
    import cv2
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, String
    from std_srvs.srv import Trigger
    from tqdm import tqdm

    from robot_app.spec import CONTROL_HZ, Topics
    from robot_app.video import write_rollout_video
    from ros_nodes import qos
    from ros_nodes.client import wait_for
    from ros_nodes.conversions import image_to_msg, msg_to_image

    client.listen(Image, Topics.IMAGE, qos.SENSOR)
    client.listen(Bool, Topics.SIM_SUCCESS, qos.COMMAND)
    client.listen(String, Topics.POLICY_STATUS, qos.STATUS)
    client.listen(Image, Topics.PROPOSED_GOAL, qos.LATCHED)  # a task model's own goal, for the strip
    goal_pub = client.node.create_publisher(Image, Topics.GOAL_IMAGE, qos.LATCHED)

    def alive():
        if launcher.poll():
            raise DemoError("a node of the graph died", _tails(launcher))

    wait_for(lambda: alive() or (client.latest(Topics.IMAGE) and client.statuses()), 90, "the sim and the policy node")
    if client.statuses()[-1]["state"] == "error":
        raise DemoError(f"the policy node cannot run: {client.statuses()[-1]['reason']}")
    client.connect(Trigger, Topics.POLICY_START)  # so the start below is answered at once
    client.call(Trigger, Topics.RESET)
    t0 = time.monotonic()
    goal_pub.publish(image_to_msg(task.goal_image))
    wait_for(lambda: any(s["state"] == "ready" for s in client.statuses(t0=t0)), 10, "the policy to accept the goal")
    # Start only once frames of the restored start state are flowing, so the rollout strip
    # and the policy's first action both begin at the task's start.
    wait_for(lambda: alive() or len(client.since(Topics.IMAGE, t0)) >= 3, 15, "camera frames after the reset")
    t_run = time.monotonic()
    started = client.call(Trigger, Topics.POLICY_START)
    if not started.success:
        raise DemoError(f"the policy refused to start: {started.message}")

    final = None
    with tqdm(total=task.max_steps, desc=f"demo: {task.family} task", unit="step", file=sys.stderr) as bar:
        deadline = time.monotonic() + task.max_steps * 0.1 * 4 + 20
        while final is None and time.monotonic() < deadline:
            alive()
            statuses = client.statuses(t0=t_run)
            if statuses:
                bar.update(max(0, statuses[-1]["step"] - bar.n))
                final = next((s for s in statuses if s["state"] in DONE_STATES), None)
            time.sleep(0.05)
    if final is None:
        raise TimeoutError("the policy to finish its run")
    time.sleep(0.3)  # the driver's next ticks report the state the arm stopped in
    success = client.latest(Topics.SIM_SUCCESS)
    frames = [msg_to_image(m) for m in client.since(Topics.IMAGE, t_run)]
    out_dir.mkdir(parents=True, exist_ok=True)
    picture = out_dir / "rollout.png"
    proposed = client.since(Topics.PROPOSED_GOAL, t_run)
    pursued = msg_to_image(proposed[-1]) if proposed else task.goal_image  # the strip shows what the arm went for
    cv2.imwrite(str(picture), cv2.cvtColor(rollout_strip(frames, pursued), cv2.COLOR_RGB2BGR))
    sim_success = bool(success and success.data)
    video = write_rollout_video(out_dir / "rollout.webm", frames, pursued, fps=CONTROL_HZ,
                                outcome=f"{'reached' if sim_success else 'not reached'}, {final['step']} steps")
    result = DemoResult(sim_success, final["state"] == "reached", final["step"],
                        final["q_value"], final["reason"], picture, goal_proposed=bool(proposed), video=video)
    if gui:
        print(result.line(), flush=True)
        print("demo: the GUI stays open on this graph; close its window (or press Ctrl-C) to end", flush=True)
        while "gui_node" in launcher.running():
            time.sleep(0.2)
    return result


def run(args: argparse.Namespace) -> int:
    gui = not args.no_gui and bool(os.environ.get("DISPLAY"))
    try:
        result = run_demo(args.model, args.seed, args.out, gui=gui, family=args.family)
    except DemoError as exc:
        if exc.details:
            print(exc.details, file=sys.stderr)
        print(f"demo: failed: {exc}")
        return 2
    print(result.line())
    return 0
