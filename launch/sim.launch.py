"""ros2 launch robot_app sim.launch.py [model:=PATH] [world:=panda] [headless:=true] [namespace:=NS]

The sim driver, the policy node and (unless headless) the GUI. The node list, parameter
files and remappings come from ros_nodes/graph.py, which `robot-app launch sim` uses too.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from ros_nodes.graph import CONFIG_DIR, sim_graph

ARGUMENTS = {
    "model": ("", "ONNX policy (default: model_path in config/sim.yaml)"),
    "world": ("", "sim_node world parameter (default: config/sim.yaml's)"),
    "headless": ("false", "true: leave the GUI out"),
    "namespace": ("", "ROS namespace for every node"),
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
    specs = sim_graph(model=arg["model"] or None, headless=headless, world=arg["world"] or None)
    return [
        Node(package="robot_app", executable=s.executable, name=s.name, namespace=arg["namespace"],
             parameters=[str(s.params_path(config_dir())), s.overrides], remappings=list(s.remappings), output="screen")
        for s in specs
    ]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=d, description=h) for name, (d, h) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
