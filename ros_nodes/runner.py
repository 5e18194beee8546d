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
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(
    name: str,
    factory: Callable[[], Node],
    args=None,
    fatal: tuple[type[BaseException], ...] = (ValueError,),
) -> None:
    """Build the node with factory() and spin it on rclpy's single-threaded executor until shutdown.

    Every node here spins single-threaded: rclpy's multi-threaded executor starved the
    policy node's camera subscription under load (policy_node's docstring has the numbers).
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except fatal as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
