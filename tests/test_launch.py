"""The graph description, the launch files built from it, `robot-app launch` and `robot-app demo`."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ros_nodes.graph import CONFIG_DIR, ROBOT_REMAPPINGS, NodeSpec, command_line, robot_graph, sim_graph

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from ros_helpers import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("launch_model"))


def test_sim_and_robot_graphs():
    assert [s.name for s in sim_graph()] == ["sim_node", "policy_node", "recorder_node", "gui_node"]
    assert [s.name for s in sim_graph(headless=True)] == ["sim_node", "policy_node"]
    policy = sim_graph(model="m.onnx", headless=True)[1]
    assert policy.overrides == {"model_path": "m.onnx"} and policy.params_path().is_file()
    robot = robot_graph(headless=True)
    assert [s.name for s in robot] == ["policy_node"]
    assert dict(robot[0].remappings)["cmd/ee_delta"] == "/servo_node/delta_twist_cmds"
    recorder, gui = robot_graph()[1:]
    assert gui.remappings == recorder.remappings == robot[0].remappings  # watched and recorded where they really go
    assert dict(gui.remappings)["cmd/ee_delta"] == "/servo_node/delta_twist_cmds"
    gripper = (("cmd/gripper", "/gripper/cmd"),)
    assert robot_graph(remappings=gripper)[2].remappings == gripper
    assert CONFIG_DIR.joinpath("robot.yaml").is_file()


def test_command_line_names_params_file_namespace_remaps_and_overrides():
    spec = NodeSpec("policy_node", "policy_node", "ros_nodes.policy_node", "robot.yaml",
                    remappings=(("cmd/ee_delta", "/servo/twist"),), overrides={"model_path": "1.onnx", "max_steps": 5})
    argv = command_line(spec, namespace="/arm/", python="py")
    assert argv[:3] == ["py", "-m", "ros_nodes.policy_node"]
    text = " ".join(argv)
    assert "-r __node:=policy_node" in text and "-r __ns:=/arm" in text
    assert f"--params-file {CONFIG_DIR / 'robot.yaml'}" in text
    assert "-r cmd/ee_delta:=/servo/twist" in text
    assert '-p model_path:="1.onnx"' in text  # quoted: stays a string, not a number
    assert "-p max_steps:=5" in text


def _fake_launch_modules() -> dict:
    """Stand-ins for launch / launch_ros (not on PyPI) with the calls the launch files make."""
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    substitutions = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")

    class LaunchDescription(list):
        pass

    class DeclareLaunchArgument:
        def __init__(self, name, default_value=None, description=""):
            self.name, self.default_value = name, default_value

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context.launch_configurations[self.name]

    class Node:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    launch.LaunchDescription = LaunchDescription
    actions.DeclareLaunchArgument, actions.OpaqueFunction = DeclareLaunchArgument, OpaqueFunction
    substitutions.LaunchConfiguration = LaunchConfiguration
    ros_actions.Node = Node
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


@pytest.mark.parametrize("name", ["sim", "robot"])
def test_launch_files_start_the_graph_description(name, monkeypatch):
    for module_name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location(f"{name}_launch", ROOT / "launch" / f"{name}.launch.py")
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    description = launch_file.generate_launch_description()
    defaults = {a.name: a.default_value for a in description if hasattr(a, "default_value")}
    context = types.SimpleNamespace(launch_configurations=dict(defaults, model="m.onnx", namespace="arm", headless="true"))
    nodes = [a for a in description if hasattr(a, "function")][0].function(context)
    graph = sim_graph(model="m.onnx", headless=True) if name == "sim" else robot_graph(model="m.onnx", headless=True)
    assert [n.kwargs["executable"] for n in nodes] == [s.executable for s in graph]
    for node, s in zip(nodes, graph, strict=True):
        assert node.kwargs["package"] == "robot_app" and node.kwargs["namespace"] == "arm"
        params_file, overrides = node.kwargs["parameters"]
        assert Path(params_file).name == s.params_file and Path(params_file).is_file()
        assert overrides == s.overrides and node.kwargs["remappings"] == list(s.remappings)
    if name == "robot":
        assert nodes[0].kwargs["remappings"] == list(ROBOT_REMAPPINGS)
    context.launch_configurations["headless"] = "false"
    with_gui = [a for a in description if hasattr(a, "function")][0].function(context)
    assert [n.kwargs["executable"] for n in with_gui] == [n.kwargs["executable"] for n in nodes] + ["recorder_node", "gui_node"]


def test_setup_installs_console_entry_points_for_every_node():
    text = (ROOT / "setup.py").read_text()
    for spec in sim_graph() + robot_graph():
        module = spec.module.replace(".", r"\.")
        assert re.search(rf'"{spec.executable} = {module}:main"', text), spec.executable


@pytest.mark.ros
def test_launcher_reports_a_node_that_dies(tmp_path):
    from robot_app.commands.launch import Launcher, node_environment
    from ros_nodes.client import wait_for

    bad = NodeSpec("sim_node", "sim_node", "ros_nodes.sim_node", "sim.yaml", overrides={"image_size": 100})
    out = tmp_path / "out.txt"
    with open(out, "w") as stream, Launcher([bad], env=node_environment(local_only=True), out=stream) as launcher:
        died = wait_for(launcher.poll, 60, "the badly configured sim_node to exit")
    assert died == [("sim_node", 1)]
    text = out.read_text()
    assert "[launch] sim_node exited with code 1" in text
    assert "[sim_node] sim_node: cannot start: sim_node: image_size must be one of (64, 128), got 100" in text


@pytest.mark.ros
@pytest.mark.slow
def test_robot_app_launch_runs_the_sim_graph_and_stops_it_on_sigterm(model, tmp_path):
    from ros_helpers import Probe, wait_for
    from std_msgs.msg import String

    from ros_nodes import qos

    log = open(tmp_path / "launch.log", "w")
    proc = subprocess.Popen([str(VENV_BIN / "robot-app"), "launch", "sim", "--headless", "--model", str(model),
                             "--namespace", "launched"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    probe = Probe("launch_probe")
    try:
        probe.listen(String, "/launched/policy/status", qos.STATUS)
        status = wait_for(lambda: probe.statuses("/launched/policy/status"), 60, "the launched policy node")[-1]
        assert status["state"] == "idle"  # the model loaded; waiting for a goal
        wait_for(lambda: "/launched/camera/image_raw" in probe.topics(), 30, "the launched sim camera")
        forwarded = ("[sim_node] [INFO]", "[policy_node] [INFO]")  # their logs, prefixed, while they run
        wait_for(lambda: all(p in (tmp_path / "launch.log").read_text() for p in forwarded), 30, "forwarded logs")
    finally:
        probe.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    text = (tmp_path / "launch.log").read_text()
    assert code == 0, text
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
    assert len(pids) == 2 and "[launch] stopping every node" in text
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_demo_says_which_model_is_missing(tmp_path):
    result = subprocess.run([str(VENV_BIN / "robot-app"), "demo", "--model", str(tmp_path / "nope.onnx")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("demo: failed") and "nope.onnx is missing" in last


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_the_sim_graph_and_draws_the_rollout(model, tmp_path):
    import cv2

    result = subprocess.run([str(VENV_BIN / "robot-app"), "demo", "--model", str(model), "--out", str(tmp_path / "demo"),
                             "--no-gui"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    # a random-weight model: the run ends on its step budget, never on a reached goal
    assert re.match(r"demo: (not )?reached \(sim check: (yes|no), policy: no\) in 30 steps, final Q 0\.\d+", last), last
    picture = cv2.imread(str(tmp_path / "demo" / "rollout.png"))
    assert picture is not None and picture.shape[1] > 8 * picture.shape[0]
    assert last.endswith(f"video {tmp_path / 'demo' / 'rollout.webm'}"), last
    video = cv2.VideoCapture(str(tmp_path / "demo" / "rollout.webm"))
    assert sum(1 for _ in iter(lambda: video.read()[0], False)) >= 30  # a frame a step of the 30-step run, then the outcome


@pytest.mark.ros
@pytest.mark.slow
def test_demo_with_a_proposing_task_model_draws_the_goal_it_chose(tmp_path):
    """`robot-app demo` on a task model that proposes its goal: the run says so, and the
    strip's goal is the bank picture the model went for, not the suite's goal image."""
    import cv2
    import numpy as np
    from ros_helpers import make_tiny_bc_model
    from task_model_fixtures import make_tiny_task_model

    make_tiny_task_model(tmp_path, base=make_tiny_bc_model(tmp_path))
    result = subprocess.run([str(VENV_BIN / "robot-app"), "demo", "--model", str(tmp_path / "task_model.onnx"),
                             "--family", "grasp-heldout", "--out", str(tmp_path / "demo"), "--no-gui"],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert "goal picture proposed by the task model" in last, last
    strip = cv2.imread(str(tmp_path / "demo" / "rollout.png"))[:, :, ::-1]
    goal_tile = strip[::2, -128::2]  # the strip is drawn at twice the 64 px size, the goal last
    bank = np.load(tmp_path / "task_model_bank.npz")["images"]
    assert any(np.array_equal(goal_tile, picture) for picture in bank)
