"""ros2 launch robot_app robot.launch.py [model:=PATH] [headless:=true] [namespace:=NS]

The policy node and (unless headless) the GUI against a real arm's driver: its camera,
joint states and MoveIt Servo's twist input, by the remappings in ros_nodes/graph.py
(ROBOT_REMAPPINGS), which `robot-app launch robot` uses too. Start the arm's driver, its
camera and Servo first.
"""

from ros_nodes.graph import launch_description, robot_graph, truthy

ARGUMENTS = {
    "model": ("", "ONNX policy (default: model_path in config/robot.yaml)"),
    "headless": ("false", "true: leave the GUI out"),
    "namespace": ("", "ROS namespace for the policy and the GUI"),
}


def graph(arg: dict):
    return robot_graph(model=arg["model"] or None, headless=truthy(arg["headless"]))


def generate_launch_description():
    return launch_description(ARGUMENTS, graph)
