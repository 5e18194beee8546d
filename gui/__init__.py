"""PyQt6 goal-image GUI (also an rclpy node)."""
