"""Helpers for the cross-process ROS 2 tests: a probe node on its own context and thread,
node processes, and a small exported policy.

The probe talks to nodes that run as separate processes over real DDS (loopback only, the
session's own domain from conftest), the way a GUI or a second robot computer would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

ROOT = Path(__file__).resolve().parents[1]


def make_tiny_model(out_dir: Path, name: str = "tiny", image_size: int = 64, seed: int = 0) -> Path:
    """A randomly initialised small QNetwork exported by training.export (the real exporter)."""
    import torch

    from training.export import export_onnx
    from training.networks import NetworkConfig, QNetwork

    torch.manual_seed(seed)
    net = QNetwork(NetworkConfig(image_size=image_size, channels=(8, 8), feature_dim=32, head_hidden=32))
    onnx_path, _ = export_onnx(net, Path(out_dir) / f"{name}.onnx", image_size,
                               {"algo": "am", "network": net.config, "source": "tests: random weights"})
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


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll until predicate() is truthy; its value, or AssertionError saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Probe:
    """An rclpy node in its own context, spun on a background thread; records what it hears."""

    def __init__(self, name: str = "probe"):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def listen(self, msg_type, topic: str, qos_profile) -> list:
        """Record (receive monotonic time, message) for topic; returns the live list."""
        received = self.messages.setdefault(topic, [])

        def record(msg):
            with self._lock:
                received.append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, record, qos_profile)
        return received

    def latest(self, topic: str):
        with self._lock:
            items = self.messages.get(topic, [])
            return items[-1][1] if items else None

    def since(self, topic: str, t0: float) -> list:
        with self._lock:
            return [m for t, m in self.messages.get(topic, []) if t >= t0]

    def statuses(self, topic: str = "policy/status", t0: float = 0.0) -> list[dict]:
        return [json.loads(m.data) for m in self.since(topic, t0)]

    def call(self, srv_type, name: str, timeout: float = 15.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"service {name} not available after {timeout} s")
            future = client.call_async(srv_type.Request())
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise AssertionError(f"service {name} did not answer within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def topics(self) -> dict[str, list[str]]:
        return dict(self.node.get_topic_names_and_types())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5)


def pose_xyz(msg) -> np.ndarray:
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])
