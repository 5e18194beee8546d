"""pybullet worlds, scripted play collectors, goal suites and success checks. No ROS imports."""
