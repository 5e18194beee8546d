"""Episode recorder: the design's topics into one rosbag2 bag per episode, without rosbag2_py.

`recorder/start` opens a new bag in `output_dir`, `recorder/stop` finishes it, and
`recorder/status` (latched JSON: recording, path, messages, last_written) says which, so a
GUI shows the truth whoever started it and whenever it joined. Messages are
stored as the serialized CDR bytes DDS delivered (raw subscriptions: no deserialise and
serialise round trip), under their resolved names as `ros2 bag record` would, stamped with
the receive time. The bag is flushed every `flush_period_s`, so a killed recorder loses at
most that last moment: its `DIR.partial` is turned into a complete bag by
robot_app.bags.recover_bag, which the node also does for every leftover partial it finds
in `output_dir` when it starts. Nothing recorded is ever dropped silently.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import Trigger

from robot_app.bags import PARTIAL_SUFFIX, STORAGES, BagWriter, recover_bag
from robot_app.spec import Topics
from ros_nodes import qos
from ros_nodes.params import change_refused, declare_checked
from ros_nodes.runner import run_node

START, STOP = Topics.RECORDER_START, Topics.RECORDER_STOP
# Commands that stay in force until the next one: the driver's watchdog stops motion half a
# second after the last twist, but a grip target holds. Each bag therefore opens with the one
# in force. Without it `dataset build` could only read the steps before the episode's first
# grip command from the fingers (their measured state), and refuses a bag with none at all.
HELD_COMMANDS = (Topics.CMD_GRIPPER,)
# topic -> (message class, QoS that matches its publisher)
RECORDABLE = {
    Topics.IMAGE: (Image, qos.SENSOR),
    Topics.CAMERA_INFO: (CameraInfo, qos.SENSOR),
    Topics.JOINT_STATES: (JointState, qos.SENSOR),
    Topics.EE_POSE: (PoseStamped, qos.SENSOR),
    Topics.CMD_EE_DELTA: (TwistStamped, qos.COMMAND),
    Topics.CMD_GRIPPER: (Float64, qos.COMMAND),
    Topics.TASK_SUCCESS: (Bool, qos.COMMAND),
    Topics.GOAL_IMAGE: (Image, qos.LATCHED),
    Topics.POLICY_STATUS: (String, qos.STATUS),
}
PARAMETERS = {
    "output_dir": "data/recorded",  # one bag directory per episode inside it
    "storage": "mcap",  # or sqlite3
    "flush_period_s": 0.5,  # at most this much is lost when the recorder is killed
    "topics": list(RECORDABLE),  # a subset of RECORDABLE
}
RESTART_ONLY = ("output_dir", "topics", "flush_period_s")  # fixed once subscriptions and files exist


def msgtype_of(cls) -> str:
    """"sensor_msgs/msg/Image" for sensor_msgs.msg.Image (the name bags store)."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def recover_partials(output_dir: Path, log) -> list[Path]:
    """Complete every bag a killed recorder left behind; a failure is logged, not fatal."""
    recovered = []
    for partial in sorted(output_dir.glob(f"*{PARTIAL_SUFFIX}")):
        try:
            recovered.append(recover_bag(partial))
            log.info(f"recovered the unfinished bag {partial} as {recovered[-1]}")
        except Exception as exc:
            log.error(f"could not recover {partial}: {exc}")
    return recovered


class RecorderNode(Node):
    def __init__(self, **node_kwargs):  # node_kwargs: Node's (context, parameter_overrides, ...)
        super().__init__("recorder_node", **node_kwargs)
        declare_checked(self, PARAMETERS, self._validate)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.output_dir = Path(self._param("output_dir"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        recover_partials(self.output_dir, self.get_logger())

        self.writer: BagWriter | None = None
        self.count = 0
        self.held: dict[str, tuple[str, bytes]] = {}  # resolved topic -> (msgtype, CDR) of the last held command
        for topic in self._param("topics"):
            cls, profile = RECORDABLE[topic]
            record = self._writer_for(self.resolve_topic_name(topic), msgtype_of(cls), held=topic in HELD_COMMANDS)
            self.create_subscription(cls, topic, record, profile, raw=True)
        self.status_pub = self.create_publisher(String, Topics.RECORDER_STATUS, qos.LATCHED)
        self.create_service(Trigger, START, self._on_start)
        self.create_service(Trigger, STOP, self._on_stop)
        self.create_timer(self._param("flush_period_s"), self._flush)
        self._publish_status()
        self.get_logger().info(f"recorder ready: bags into {self.output_dir}; call {START} / {STOP}")

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _validate(self, params) -> str:
        for param in params:
            if param.name == "storage" and param.value not in STORAGES:
                return f"storage must be one of {list(STORAGES)}, got {param.value!r}"
            if param.name == "flush_period_s" and not param.value > 0:
                return f"flush_period_s must be positive, got {param.value}"
            if param.name == "topics":
                unknown = [t for t in param.value if t not in RECORDABLE]
                if unknown or not param.value:
                    return f"topics: {unknown or 'none given'}; recordable: {list(RECORDABLE)}"
        return ""

    def _on_set_parameters(self, params) -> SetParametersResult:
        reason = change_refused(params, RESTART_ONLY, self._validate)
        return SetParametersResult(successful=not reason, reason=reason)

    def _writer_for(self, topic: str, msgtype: str, held: bool = False):
        def record(data: bytes) -> None:
            if held:
                self.held[topic] = (msgtype, data)
            if self.writer is not None:
                self.writer.write_cdr(topic, msgtype, time.time_ns(), data)
                self.count += 1

        return record

    def _flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self._publish_status()  # the message count grows while recording

    def _publish_status(self, written: str = "") -> None:
        status = {"recording": self.writer is not None, "path": str(self.writer.path) if self.writer else "",
                  "messages": self.count if self.writer else 0, "last_written": written}
        self.status_pub.publish(String(data=json.dumps(status)))

    def _on_start(self, request, response):
        if self.writer is not None:
            response.success, response.message = False, f"already recording to {self.writer.path}"
            return response
        path = self.output_dir / time.strftime("episode_%Y%m%d_%H%M%S")
        suffix = 1
        while path.exists() or Path(f"{path}{PARTIAL_SUFFIX}").exists():
            path = self.output_dir / f"{time.strftime('episode_%Y%m%d_%H%M%S')}_{suffix}"
            suffix += 1
        try:
            self.writer = BagWriter(path, storage=self._param("storage"))
        except Exception as exc:
            response.success, response.message = False, f"cannot open a bag at {path}: {exc}"
            self.get_logger().error(response.message)
            return response
        self.count = 0
        for topic, (msgtype, data) in self.held.items():  # the grip target in force as the episode begins
            self.writer.write_cdr(topic, msgtype, time.time_ns(), data)
            self.count += 1
        response.success, response.message = True, str(path)
        self.get_logger().info(f"recording to {path}")
        self._publish_status()
        return response

    def _finish(self) -> str:
        path, count = self.writer.close(), self.count
        self.writer = None
        written = f"{path} ({count} messages)"
        self._publish_status(written)
        return written

    def _on_stop(self, request, response):
        if self.writer is None:
            response.success, response.message = False, "not recording"
            return response
        response.success, response.message = True, self._finish()
        self.get_logger().info(f"wrote {response.message}")
        return response

    def destroy_node(self):
        if self.writer is not None:  # Ctrl-C mid-episode: finish the bag rather than leave a partial
            self.get_logger().info(f"wrote {self._finish()}")
        return super().destroy_node()


def main(args=None) -> None:
    run_node("recorder_node", RecorderNode, args)


if __name__ == "__main__":
    main()
