"""ros2 launch robot_app robot.launch.py [model:=PATH] [headless:=true] [namespace:=NS]

The policy node and (unless headless) the GUI against a real arm's driver: its camera,
joint states and MoveIt Servo's twist input, by the remappings in ros_nodes/graph.py
(ROBOT_REMAPPINGS), which `robot-app launch robot` uses too. Start the arm's driver, its
camera and Servo first.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from ros_nodes.graph import CONFIG_DIR, robot_graph

ARGUMENTS = {
    "model": ("", "ONNX policy (default: model_path in config/robot.yaml)"),
    "headless": ("false", "true: leave the GUI out"),
    "namespace": ("", "ROS namespace for the policy and the GUI"),
}


def config_dir() -> Path:
    """The installed package's config (colcon), else the checkout's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("robot_app")) / "config"
    except Exception:
        return CONFIG_DIR


def nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    headless = arg["headless"].lower() in ("true", "1", "yes")
    specs = robot_graph(model=arg["model"] or None, headless=headless)
    return [
        Node(package="robot_app", executable=s.executable, name=s.name, namespace=arg["namespace"],
             parameters=[str(s.params_path(config_dir())), s.overrides], remappings=list(s.remappings), output="screen")
        for s in specs
    ]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=d, description=h) for name, (d, h) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
