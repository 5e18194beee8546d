"""rclpy nodes: the sim driver, the ONNX policy node and the episode recorder."""
