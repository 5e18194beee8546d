"""pybullet worlds, scripted play collectors, goal suites and success checks. No ROS imports.

The public names are re-exported lazily, so `import sim_worlds` stays cheap (pybullet loads
only when a name is first used).
"""

from importlib import import_module

_EXPORTS = {
    "PandaWorld": "panda_world",
    "WORKSPACE_LOW": "panda_world",
    "WORKSPACE_HIGH": "panda_world",
    "HELDOUT_OBJECT": "panda_world",
    "DEFAULT_OBJECTS": "panda_world",
    "ObjectKind": "panda_world",
    "draw_play_objects": "play_objects",
    "Episode": "collectors",
    "TASKS": "collectors",
    "collect_episode": "collectors",
    "FAMILIES": "goals",
    "GoalTask": "goals",
    "GoalResult": "goals",
    "make_suite": "goals",
    "run_goal_episode": "goals",
    "world_for": "goals",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sim_worlds' has no attribute {name!r}")
    return getattr(import_module(f"sim_worlds.{_EXPORTS[name]}"), name)
