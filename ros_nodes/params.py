"""The nodes' parameter handling, done one way: typed defaults declared from a dict, start
values checked before anything is built, and parameters that only a restart can change
refused by name.

Refusing early matters on a robot: a node that came up with a bad value would act on it
(a sim with an unsupported image size, a recorder writing an unknown storage format).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rclpy.node import Node


def declare_checked(node: Node, parameters: dict, validate: Callable[[list], str]) -> None:
    """Declare `parameters` (name -> typed default) on `node`; ValueError naming the node
    when validate(the start values) says why they are not acceptable ('' when they are)."""
    for name, default in parameters.items():
        node.declare_parameter(name, default)
    reason = validate(node.get_parameters(list(parameters)))
    if reason:
        raise ValueError(f"{node.get_name()}: {reason}")


def change_refused(params: list, restart_only: Iterable[str], validate: Callable[[list], str]) -> str:
    """Why a change of `params` is refused: one fixed at start, or validate's reason; ''
    when it is acceptable (the node may still refuse for reasons of its own)."""
    fixed = [p.name for p in params if p.name in restart_only]
    if fixed:
        return f"{', '.join(fixed)}: fixed at start; restart the node"
    return validate(params)
