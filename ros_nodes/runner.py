"""Every node's main(): start rclpy, build the node, spin, and end the way ROS 2 nodes should.

Ctrl-C and an external shutdown (a launch system stopping the graph) are normal exits. A
node that refuses its parameters raises one of `fatal` while it is being built: the
message names the node and the process exits 1, instead of a traceback that hides which
parameter was wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node


def run_node(
    name: str,
    factory: Callable[[], Node],
    args=None,
    executor: Callable[[], Executor] | None = None,
    fatal: tuple[type[BaseException], ...] = (ValueError,),
) -> None:
    """Build the node with factory() and spin it until shutdown.

    executor: makes the executor once rclpy is initialised (e.g. a MultiThreadedExecutor for
    a node whose callback groups must run in parallel); None spins on rclpy's default.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        if executor is None:
            rclpy.spin(node)
        else:
            spinner = executor()
            spinner.add_node(node)
            spinner.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except fatal as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
