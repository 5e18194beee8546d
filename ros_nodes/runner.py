"""Every node's main(): start rclpy, build the node, spin, and end the way ROS 2 nodes should.

Ctrl-C and an external shutdown (a launch system stopping the graph) are normal exits. A
node that refuses its parameters raises one of `fatal` while it is being built: the
message names the node and the process exits 1, instead of a traceback that hides which
parameter was wrong.

Teardown is bounded: DDS participants have been seen to hang while being destroyed (Fast
DDS, e.g. eProsima/Fast-DDS#235), and once in CI a launched sim_node outlived both SIGINT
and SIGTERM for 10 s. After spinning ends the node has SHUTDOWN_TIMEOUT_S to destroy itself;
past that faulthandler, whose watchdog is a C thread that needs no GIL, prints every
thread's stack to stderr (the launcher forwards it) and exits 1, so a hang says where it is
instead of waiting for SIGKILL.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

SHUTDOWN_TIMEOUT_S = 3.0


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
        faulthandler.dump_traceback_later(SHUTDOWN_TIMEOUT_S, exit=True)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()
