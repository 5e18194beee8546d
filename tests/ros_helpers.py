"""Helpers for the cross-process ROS 2 tests: a probe node on its own context and thread,
node processes, and a small exported policy.

The probe talks to nodes that run as separate processes over real DDS (loopback only, the
session's own domain from conftest), the way a GUI or a second robot computer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from robot_app.spec import Topics
from ros_nodes import client, qos

ROOT = Path(__file__).resolve().parents[1]


def make_tiny_model(out_dir: Path, name: str = "tiny", image_size: int = 64, seed: int = 0, height_input: bool = False) -> Path:
    """A randomly initialised small QNetwork exported by training.export (the real exporter)."""
    import torch

    from training.export import export_onnx
    from training.networks import NetworkConfig, QNetwork

    torch.manual_seed(seed)
    net = QNetwork(NetworkConfig(image_size=image_size, channels=(8, 8), feature_dim=32, head_hidden=32, height_input=height_input))
    onnx_path, _ = export_onnx(net, Path(out_dir) / f"{name}.onnx", image_size,
                               {"algo": "am", "network": net.config, "source": "tests: random weights"})
    return onnx_path


def make_tiny_bc_model(out_dir: Path, name: str = "tiny_bc", seed: int = 0) -> Path:
    """A randomly initialised small cloned policy (GCBC's BCScorer) exported as the real exporter does."""
    import torch

    from training.export import export_onnx
    from training.gcbc import BCPolicy, BCScorer
    from training.networks import NetworkConfig

    torch.manual_seed(seed)
    config = NetworkConfig(channels=(8, 8), feature_dim=32, head_hidden=32)
    onnx_path, _ = export_onnx(BCScorer(BCPolicy(config), 0.25), Path(out_dir) / f"{name}.onnx", 64,
                               {"algo": "gcbc", "network": config, "source": "tests: random weights"})
    return onnx_path


def node_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    assert env.get("ROS_DOMAIN_ID") and env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    return env


def start_node(module: str, *ros_args: str, log: Path) -> subprocess.Popen:
    """`python -m module --ros-args ...` with its output in `log`."""
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", module, "--ros-args", *ros_args], cwd=ROOT,
                            env=node_env(), stdout=out, stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def sim_and_recorder(workdir: Path, goal_seed: int = 0) -> dict[str, tuple[str, ...]]:
    """The driver on the first reach task and a recorder flushing often into workdir/bags, as
    `nodes_running` takes them: what the graph tests put a policy or a window in front of."""
    return {
        "sim": ("ros_nodes.sim_node", "-p", "goal_family:=reach", "-p", f"goal_seed:={goal_seed}"),
        "recorder": ("ros_nodes.recorder_node", "-p", f"output_dir:={workdir / 'bags'}", "-p", "flush_period_s:=0.2"),
    }


@contextmanager
def nodes_running(workdir: Path, nodes: dict[str, tuple[str, ...]]):
    """name -> (module, *ros_args) started as processes logging to workdir/NAME.log; stopped on exit."""
    procs = {}
    try:
        for name, (module, *ros_args) in nodes.items():
            procs[name] = start_node(module, *ros_args, log=workdir / f"{name}.log")
        yield procs
    finally:
        for proc in procs.values():
            stop_node(proc)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """client.wait_for, failing the test (AssertionError) instead of raising TimeoutError."""
    try:
        return client.wait_for(predicate, timeout, what, interval)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


class Probe(client.GraphClient):
    """The test's node; service calls that time out fail the test."""

    def listen_to_the_arm(self) -> None:
        """The driver's joints and pose and the commands it obeys, with the QoS they are sent with."""
        self.listen(JointState, Topics.JOINT_STATES, qos.SENSOR)
        self.listen(PoseStamped, Topics.EE_POSE, qos.SENSOR)
        self.listen(TwistStamped, Topics.CMD_EE_DELTA, qos.COMMAND)
        self.listen(Float64, Topics.CMD_GRIPPER, qos.COMMAND)

    def call(self, srv_type, name: str, timeout: float = 15.0, request=None):
        try:
            return super().call(srv_type, name, timeout, request)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None

    def connect(self, srv_type, name: str, timeout: float = 15.0):
        try:
            return super().connect(srv_type, name, timeout)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None


def pose_xyz(msg) -> np.ndarray:
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])
