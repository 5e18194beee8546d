"""Training side of robot_app: everything that needs torch (datasets, algorithms, evaluation, export)."""
