"""The ROS 2 graphs, described once: which nodes, with which parameters and remappings.

ROS 2's launch tools are not on PyPI, so the same description feeds two starters:
launch/sim.launch.py and launch/robot.launch.py (under `ros2 launch`, through
launch_description below) and `robot-app launch sim|robot`, which starts each node as a
plain process. Nothing here imports launch or rclpy at import time.

Parameters come from one YAML file per graph (config/sim.yaml, config/robot.yaml, keyed
`/**/NODE_NAME` so a namespace does not change them); `overrides` carry what a user gives
on the command line (the model), which ROS applies after the file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"  # the checkout's (or an install's share)
DEFAULT_MODEL = "models/am_default.onnx"


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name, also the log prefix
    executable: str  # console entry point in setup.py, what `ros2 launch` runs
    module: str  # `python -m MODULE`, what `robot-app launch` runs
    params_file: str  # file name in the config directory
    remappings: tuple[tuple[str, str], ...] = ()  # (from, to), relative names
    overrides: dict = field(default_factory=dict)  # parameters applied after the file
    interactive: bool = False  # left out when headless: the GUI, and the recorder the GUI drives

    def params_path(self, config_dir: str | Path = CONFIG_DIR) -> Path:
        return Path(config_dir) / self.params_file


def _policy(params_file: str, model: str | None, remappings=(), overrides: dict | None = None) -> NodeSpec:
    overrides = dict(overrides or {})
    if model:
        overrides["model_path"] = str(model)
    return NodeSpec("policy_node", "policy_node", "ros_nodes.policy_node", params_file, tuple(remappings), overrides)


def _gui(params_file: str, remappings=()) -> NodeSpec:
    return NodeSpec("gui_node", "gui_node", "gui.app", params_file, tuple(remappings), interactive=True)


def _recorder(params_file: str, remappings=()) -> NodeSpec:
    """Records episodes when the GUI's Record button (or anyone) calls recorder/start and /stop;
    it listens to the same remapped topics as the policy, so it logs what the policy saw and sent."""
    return NodeSpec("recorder_node", "recorder_node", "ros_nodes.recorder_node", params_file, tuple(remappings),
                    interactive=True)


def sim_graph(model: str | None = None, headless: bool = False, world: str | None = None,
              sim_overrides: dict | None = None, policy_overrides: dict | None = None) -> list[NodeSpec]:
    """The sim driver, the policy and (unless headless) the GUI and its recorder, on the design's topic names."""
    sim = dict(sim_overrides or {})
    if world:
        sim["world"] = world
    nodes = [
        NodeSpec("sim_node", "sim_node", "ros_nodes.sim_node", "sim.yaml", overrides=sim),
        _policy("sim.yaml", model, overrides=policy_overrides),
        _recorder("sim.yaml"),
        _gui("sim.yaml"),
    ]
    return [n for n in nodes if not (headless and n.interactive)]


# A real arm: a camera driver (realsense2_camera's default names), the arm's joint states
# at the root, and MoveIt Servo taking twists. cmd/gripper stays for a gripper adapter.
ROBOT_REMAPPINGS = (
    ("camera/image_raw", "/camera/camera/color/image_raw"),
    ("camera/camera_info", "/camera/camera/color/camera_info"),
    ("joint_states", "/joint_states"),
    ("cmd/ee_delta", "/servo_node/delta_twist_cmds"),
)


def robot_graph(model: str | None = None, headless: bool = False, remappings=ROBOT_REMAPPINGS) -> list[NodeSpec]:
    """The policy and (unless headless) the GUI and its recorder against a real arm's driver, by remapping.

    The GUI takes the same remappings as the policy, so it shows the camera the policy
    sees and its "commands alive" line watches the topic the commands really go to
    (Servo's twist input, not cmd/ee_delta); names it does not use are inert.
    """
    nodes = [_policy("robot.yaml", model, remappings), _recorder("robot.yaml", remappings), _gui("robot.yaml", remappings)]
    return [n for n in nodes if not (headless and n.interactive)]


GRAPHS = {"sim": sim_graph, "robot": robot_graph}


def ros_value(value) -> str:
    """A parameter value as `-p name:=value` wants it: YAML, and JSON is YAML that keeps
    a string a string (a model named "1.onnx" or "true" is not read as a number or a bool)."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def ros_arguments(spec: NodeSpec, config_dir: str | Path = CONFIG_DIR, namespace: str = "") -> list[str]:
    """The `--ros-args ...` a node process needs: name, namespace, parameters, remappings."""
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    params = spec.params_path(config_dir)
    if params.is_file():
        args += ["--params-file", str(params)]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    for name, value in spec.overrides.items():
        args += ["-p", f"{name}:={ros_value(value)}"]
    return args


def command_line(spec: NodeSpec, config_dir: str | Path = CONFIG_DIR, namespace: str = "",
                 python: str = sys.executable) -> list[str]:
    """argv starting one node as its own process, without the console entry points installed."""
    return [python, "-m", spec.module, *ros_arguments(spec, config_dir, namespace)]


def truthy(text: str) -> bool:
    """A launch argument's text as a flag (headless:=true)."""
    return text.strip().lower() in ("true", "1", "yes")


def installed_config_dir() -> Path:
    """The installed package's config (colcon), else the checkout's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("robot_app")) / "config"
    except Exception:  # not installed by colcon, or no ament index: the checkout's
        return CONFIG_DIR


def launch_description(arguments: dict[str, tuple[str, str]], graph):
    """What a launch/*.launch.py returns: its arguments declared (name -> (default, help)),
    and launch_ros Node actions for graph(values) -> [NodeSpec], built once the values are
    known. Every node is put in the `namespace` argument's namespace."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        config = installed_config_dir()
        return [
            Node(package="robot_app", executable=s.executable, name=s.name, namespace=values.get("namespace", ""),
                 parameters=[str(s.params_path(config)), s.overrides], remappings=list(s.remappings), output="screen")
            for s in graph(values)
        ]

    declared = [DeclareLaunchArgument(name, default_value=d, description=h) for name, (d, h) in arguments.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
