"""`robot-app doctor`: does this machine have what robot_app needs, and does it work?

Why: ROS 2 here comes from PyPI wheels, so `ros2 doctor` (ros2cli) is not there to ask, and
what fails on a new machine fails far from its cause: a DDS that cannot discover on a
locked-down network shows up as a GUI that waits for a camera; a CUDA torch wheel as a
training run that will not import. Each check here runs the real thing briefly (two nodes
exchange a message over DDS, the simulator renders a frame, every shipped model loads and
acts) and says in one line what it found and, when it fails, what to do.

    robot-app doctor            # exit 0 when every required check passes
    robot-app doctor --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DDS_TIMEOUT_S = 10.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str  # what was found; when not ok, also what to do
    required: bool = True  # a failed optional check (GPU, display) does not fail the doctor


def _version(module: str) -> str:
    mod = importlib.import_module(module)
    return str(getattr(mod, "__version__", "")) or "installed"


def check_python() -> Check:
    ok = sys.version_info[:2] in ((3, 11), (3, 12))
    return Check("python", ok, f"{sys.version.split()[0]} at {sys.executable}"
                 + ("" if ok else "; the ROS 2 Jazzy wheels exist for Python 3.11 and 3.12 only"))


def check_imports() -> list[Check]:
    wanted = {  # module -> (what needs it, required)
        "numpy": ("everything", True), "onnxruntime": ("the policy runtime", True), "cv2": ("images and videos", True),
        "pybullet": ("the simulator", True), "rosbags": ("episode bags", True), "yaml": ("configs", True),
        "PyQt6.QtWidgets": ("the GUI", True), "torch": ("training (not the robot computer's runtime)", False),
        "onnx": ("export", False),
    }
    checks = []
    for module, (why, required) in wanted.items():
        try:
            checks.append(Check(module, True, f"{_version(module)} ({why})", required))
        except Exception as exc:  # an import can fail in many ways (missing, ABI, CUDA libs)
            hint = "make setup (or pip install -e .) in this checkout"
            checks.append(Check(module, False, f"cannot import ({exc.__class__.__name__}: {exc}); needed for {why}; {hint}",
                                required))
    return checks


def check_torch_device() -> Check:
    try:  # probed by name: the runtime never depends on torch (a robot computer has none), the doctor asks for it
        torch = importlib.import_module("torch")
    except Exception:
        return Check("torch device", False, "torch not importable: training unavailable here", required=False)
    if torch.cuda.is_available():
        return Check("torch device", True, f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.__version__})", False)
    return Check("torch device", True, f"CPU only, {torch.get_num_threads()} threads (torch {torch.__version__}); "
                 "training works, slower", False)


def check_dds(timeout_s: float = DDS_TIMEOUT_S) -> Check:
    """Two nodes in two contexts (as two processes would be) exchange one latched message."""
    try:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from ros_nodes import qos
    except Exception as exc:
        return Check("ROS 2 (rclpy over DDS)", False, f"cannot import rclpy ({exc}); make setup installs "
                     "ros-jazzy-rclpy[fastrtps] and the message packages")
    contexts, nodes, got = [], [], []
    started = time.monotonic()
    try:
        for name in ("doctor_talker", "doctor_listener"):
            ctx = Context()
            rclpy.init(context=ctx)
            contexts.append(ctx)
            nodes.append(rclpy.create_node(name, context=ctx))
        topic = f"doctor_{os.getpid()}"
        nodes[0].create_publisher(String, topic, qos.LATCHED).publish(String(data="hello"))
        nodes[1].create_subscription(String, topic, lambda m: got.append(m.data), qos.LATCHED)
        executor = SingleThreadedExecutor(context=contexts[1])
        executor.add_node(nodes[1])
        while not got and time.monotonic() - started < timeout_s:
            executor.spin_once(timeout_sec=0.1)
        rmw = rclpy.get_rmw_implementation_identifier()
    finally:
        for node in nodes:
            node.destroy_node()
        for ctx in contexts:
            rclpy.shutdown(context=ctx)
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")
                    if k in os.environ) or "no ROS_* discovery variables set"
    if got:
        return Check("ROS 2 (rclpy over DDS)", True, f"{rmw}: a message crossed in {time.monotonic() - started:.1f} s ({env})")
    return Check("ROS 2 (rclpy over DDS)", False, f"{rmw}: no message within {timeout_s:g} s ({env}); discovery is "
                 "blocked: try ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, or allow multicast / UDP 7400-7500 on this host")


def check_simulator() -> Check:
    try:
        from sim_worlds.panda_world import PandaWorld
    except Exception as exc:
        return Check("simulator", False, f"cannot import the pybullet world ({exc})")
    started = time.monotonic()
    world = PandaWorld(image_size=64)
    try:
        image = world.observe().image
    finally:
        world.close()
    ok = image.shape == (64, 64, 3) and int(image.std()) > 0
    return Check("simulator", ok, f"Panda world rendered a {image.shape[0]}x{image.shape[1]} frame in "
                 f"{time.monotonic() - started:.1f} s" + ("" if ok else " but it is blank"))


def check_models(models_dir: Path = ROOT / "models") -> list[Check]:
    """Every shipped model loads (card, hash, graph, proposer) and acts once."""
    from robot_app.policy import Policy

    cards = sorted(p for p in models_dir.glob("*.onnx") if p.with_suffix(".json").is_file())
    if not cards:
        return [Check("models", False, f"no model with its card in {models_dir}")]
    checks = []
    for path in cards:
        try:
            policy = Policy.load(path)
            started = time.perf_counter()
            policy.act_on_blank()
            kind = "task model" if policy.card.task else "goal-conditioned"
            checks.append(Check(f"model {path.stem}", True, f"{kind}, {policy.card.algo}, acts in "
                                f"{1e3 * (time.perf_counter() - started):.1f} ms"))
        except Exception as exc:
            checks.append(Check(f"model {path.stem}", False, f"{exc}; `git checkout models/` restores the shipped files"))
    return checks


def check_video() -> Check:
    import tempfile

    import numpy as np

    from robot_app.video import write_video

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = write_video(Path(tmp) / "check.webm", [np.zeros((64, 64, 3), np.uint8)] * 3)
            return Check("videos", path.stat().st_size > 0, "OpenCV writes WebM (VP8) rollout videos", False)
        except OSError as exc:
            return Check("videos", False, f"{exc}; eval and dataset view still write their pictures", False)


def check_display() -> Check:
    shown = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen"
    return Check("display", bool(shown), "a display for the GUI" if shown else
                 "no $DISPLAY / $WAYLAND_DISPLAY: the GUI cannot open; `robot-app launch --headless` and the "
                 "demo run without it (QT_QPA_PLATFORM=offscreen renders screenshots)", required=False)


CHECKS: list[Callable[[], Check | list[Check]]] = [check_python, check_imports, check_torch_device, check_dds,
                                                   check_simulator, check_models, check_video, check_display]


def run_checks(checks=None) -> list[Check]:
    results: list[Check] = []
    for check in checks or CHECKS:
        try:
            found = check()
        except Exception as exc:  # a check that breaks is itself a finding, not a crash of the doctor
            found = Check(check.__name__.removeprefix("check_"), False, f"the check itself failed: {exc!r}")
        results += found if isinstance(found, list) else [found]
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    results = run_checks()
    failed = [c for c in results if not c.ok and c.required]
    if args.json:
        print(json.dumps([asdict(c) for c in results], indent=2))
    else:
        for c in results:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            print(f"{mark}  {c.name}: {c.detail}")
        warned = [c for c in results if not c.ok and not c.required]
        print(f"doctor: {sum(c.ok for c in results)} ok, {len(warned)} warning(s), {len(failed)} to fix"
              + (f": {', '.join(c.name for c in failed)}" if failed else ""))
    return 1 if failed else 0
