"""QoS profiles of design section 2, named once so every node and test agree.

A subscription whose QoS is incompatible with its publisher receives nothing and says
nothing, so the profiles are chosen to be compatible with what a real driver offers:
camera-like streams are best effort (a subscriber asking for reliable would never match a
sensor-data publisher), commands are reliable, and the goal is latched (transient local)
so a policy node started after the GUI still gets the goal that was already sent.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# camera/image_raw, camera/camera_info, joint_states, ee_pose: best effort, keep last 5.
SENSOR = qos_profile_sensor_data


def _keep_last(depth: int, reliability: ReliabilityPolicy, durability: DurabilityPolicy) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability
    )


# A consumer that only ever wants the newest frame (the policy) keeps one, so a slow
# inference never works through a backlog of stale frames.
SENSOR_LATEST = _keep_last(1, ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)

# cmd/ee_delta, cmd/gripper: reliable depth 10 (MoveIt Servo's input uses the same).
COMMAND = _keep_last(10, ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)

# goal_image: the last goal is kept for late joiners.
LATCHED = _keep_last(1, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)

# policy/status as published: reliable, and transient local so a GUI opened mid-run sees
# the current state at once. Volatile reliable subscribers match it too.
STATUS = _keep_last(10, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
