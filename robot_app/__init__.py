"""robot_app: torch-free runtime core (specs, world interface, ONNX policy runtime, episode I/O, CLI)."""

__version__ = "0.1.0"
