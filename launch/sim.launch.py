"""ros2 launch robot_app sim.launch.py [model:=PATH] [world:=panda] [headless:=true] [namespace:=NS]

The sim driver, the policy node and (unless headless) the GUI. The node list, parameter
files and remappings come from ros_nodes/graph.py, which `robot-app launch sim` uses too.
"""

from ros_nodes.graph import launch_description, sim_graph, truthy

ARGUMENTS = {
    "model": ("", "ONNX policy (default: model_path in config/sim.yaml)"),
    "world": ("", "sim_node world parameter (default: config/sim.yaml's)"),
    "headless": ("false", "true: leave the GUI out"),
    "namespace": ("", "ROS namespace for every node"),
}


def graph(arg: dict):
    return sim_graph(model=arg["model"] or None, headless=truthy(arg["headless"]), world=arg["world"] or None)


def generate_launch_description():
    return launch_description(ARGUMENTS, graph)
