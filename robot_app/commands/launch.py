"""`robot-app launch sim|robot`: start a ROS 2 graph without `ros2 launch` (not on PyPI).

The graph comes from ros_nodes/graph.py, the same description the launch files use. Each
node runs as its own process (`python -m MODULE --ros-args ...`), as under ros2 launch, so
a crash in one leaves the others up, and killing the policy exercises the driver's
watchdog as it would on a robot. Their output is forwarded line by line with the node's
name in front; Ctrl-C or SIGTERM stops them all (SIGINT first, as ros2 launch does, then
SIGTERM, then SIGKILL for any that hang), and a node that dies is reported at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path

from ros_nodes.graph import CONFIG_DIR, DEFAULT_MODEL, GRAPHS, NodeSpec, command_line

STOP_GRACE_S = 5.0  # per escalation step when stopping


def _die_with_parent() -> None:
    """Linux: a node gets SIGTERM if the launcher dies without stopping it (no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def node_environment(local_only: bool) -> dict:
    """The environment for node processes: unbuffered, uncoloured logs; loopback-only DDS
    discovery for a sim graph unless the user chose otherwise."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0")
    if local_only:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class Launcher:
    """Starts node processes, forwards their output, reports deaths, stops them all."""

    def __init__(self, specs: list[NodeSpec], config_dir: str | Path = CONFIG_DIR, namespace: str = "",
                 env: dict | None = None, out=None, quiet: bool = False):
        self.specs = specs
        self.config_dir = Path(config_dir)
        self.namespace = namespace
        self.env = env if env is not None else node_environment(local_only=True)
        self.out = out or sys.stdout
        self.quiet = quiet  # keep the nodes' output (self.logs) without printing it
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, list[str]] = {}
        self._reported: set[str] = set()
        self._print_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def say(self, text: str, name: str = "launch") -> None:
        with self._print_lock:
            print(f"[{name}] {text}", file=self.out, flush=True)

    def start(self) -> None:
        for spec in self.specs:
            argv = command_line(spec, self.config_dir, self.namespace)
            proc = subprocess.Popen(
                argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", bufsize=1, start_new_session=True, preexec_fn=_die_with_parent,
            )
            self.procs[spec.name] = proc
            self.logs[spec.name] = []
            thread = threading.Thread(target=self._forward, args=(spec.name, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
            self.say(f"started {spec.name} (pid {proc.pid}): {' '.join(argv[1:])}")

    def _forward(self, name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.logs[name].append(line)
            if not self.quiet:
                self.say(line, name)

    def poll(self) -> list[tuple[str, int]]:
        """Nodes that exited since the last call, as (name, exit code); each is reported once."""
        died = []
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None and name not in self._reported:
                self._reported.add(name)
                died.append((name, code))
                self.say(f"{name} exited with code {code}" + ("" if code == 0 else f" ({_describe(code)})"))
        return died

    def running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def stop(self) -> dict[str, int]:
        """Stop every node (SIGINT, then SIGTERM, then SIGKILL); returns their exit codes."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs.values() if p.poll() is None]
            if not alive:
                break
            if sig != signal.SIGINT:
                hung = [name for name, p in self.procs.items() if p in alive]
                self.say(f"{', '.join(hung)} still running {STOP_GRACE_S:g} s after the last signal: sending {sig.name}")
            for proc in alive:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._reported.update(self.procs)
        return {name: proc.wait() for name, proc in self.procs.items()}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "failed"


def parse_remap(text: str) -> tuple[str, str]:
    src, sep, dst = text.partition(":=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"remapping {text!r}: expected FROM:=TO")
    return src, dst


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", choices=sorted(GRAPHS), help="sim: pybullet driver + policy + GUI; robot: policy + GUI for a real arm")
    parser.add_argument("--headless", action="store_true", help="leave the GUI out")
    parser.add_argument("--model", metavar="PATH", help=f"ONNX policy (default: config's model_path, {DEFAULT_MODEL})")
    parser.add_argument("--namespace", default="", metavar="NS", help="ROS namespace for every node (default: none)")
    parser.add_argument("--world", help="sim only: the sim_node `world` parameter (default: config's)")
    parser.add_argument("--remap", action="append", type=parse_remap, default=[], metavar="FROM:=TO",
                        help="robot only: replace the default remapping of FROM (repeatable)")
    parser.add_argument("--config-dir", default=str(CONFIG_DIR), metavar="DIR", help="where sim.yaml / robot.yaml are")


def build_specs(args: argparse.Namespace) -> list[NodeSpec]:
    model = str(Path(args.model).resolve()) if args.model and Path(args.model).exists() else args.model
    headless = args.headless
    if not headless and find_spec("gui.app") is None:
        print("robot-app launch: the GUI (gui.app) is not installed; running headless", file=sys.stderr)
        headless = True
    if not headless and not _can_show_windows():
        print("robot-app launch: no display ($DISPLAY / $WAYLAND_DISPLAY unset); running headless", file=sys.stderr)
        headless = True
    if args.graph == "sim":
        return GRAPHS["sim"](model=model, headless=headless, world=args.world)
    from ros_nodes.graph import ROBOT_REMAPPINGS

    remaps = dict(ROBOT_REMAPPINGS)
    remaps.update(args.remap)
    return GRAPHS["robot"](model=model, headless=headless, remappings=tuple(remaps.items()))


def _can_show_windows() -> bool:
    env = os.environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) or env.get("QT_QPA_PLATFORM") == "offscreen"


def run(args: argparse.Namespace) -> int:
    specs = build_specs(args)
    launcher = Launcher(specs, args.config_dir, args.namespace, env=node_environment(local_only=args.graph == "sim"))
    # Ctrl-C and SIGTERM only set a flag: an exception raised wherever the main thread
    # happens to be (inside a print, a Popen) could leave output half written.
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed = False
    try:
        launcher.start()
        while launcher.running() and not stop.wait(0.2):
            failed |= any(code != 0 for _, code in launcher.poll())
        failed |= any(code != 0 for _, code in launcher.poll())
        launcher.say("stopping every node" if stop.is_set() else "every node has exited")
    finally:
        codes = launcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT, -signal.SIGTERM)}
    if bad:
        launcher.say(f"nodes that did not stop cleanly: {bad}")
    return 1 if failed or bad else 0
