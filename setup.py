"""ament_python setup for robot_app: works under colcon and under plain pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_app"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["robot_app*", "ros_nodes*", "sim_worlds*", "gui*", "training*"]),
    package_data={"sim_worlds": ["assets/*", "assets/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.json") + glob("models/*_goal.png")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"], "vision": ["torchvision"]},
    zip_safe=True,
    maintainer="robot_app maintainers",
    maintainer_email="maintainers@robot-app.dev",
    description="Goal-image reaching for robot arms with offline goal-conditioned conservative Q-learning.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "robot-app = robot_app.cli:main",
            "sim_node = ros_nodes.sim_node:main",
            "policy_node = ros_nodes.policy_node:main",
            "recorder_node = ros_nodes.recorder_node:main",
            "gui_node = gui.app:main",
        ],
    },
)
