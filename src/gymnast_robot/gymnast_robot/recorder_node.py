"""Episode recorder: camera, executed actions and joint states to one MCAP file per episode.

`~/start` opens an episode, `~/stop` (data = success) closes it atomically, `~/discard` drops
it. `gymnast convert` turns the folder of MCAP files into a training dataset.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool, Trigger

from gymnast_core.names import ACTION_TOPIC, IMAGE_TOPIC, JOINT_STATES_TOPIC, TELEOP_RECORDINGS
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_interfaces.msg import ActionChunk
from gymnast_robot.mcap_episodes import McapEpisodeWriter


@dataclass(frozen=True)
class RecorderNodeConfig:
    out: str = TELEOP_RECORDINGS
    # What the episodes show; can be changed between episodes with `ros2 param set`.
    instruction: str = ""
    image_topic: str = IMAGE_TOPIC
    action_topic: str = ACTION_TOPIC
    joint_states_topic: str = JOINT_STATES_TOPIC


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.config = declare_config(self, RecorderNodeConfig())
        self.writer = McapEpisodeWriter()
        self._recording = False
        self._lock = threading.Lock()  # message callbacks vs start/stop
        topics = ((Image, self.config.image_topic, qos_profile_sensor_data), (ActionChunk, self.config.action_topic, 10),
                  (JointState, self.config.joint_states_topic, 10))
        for msg_type, topic, qos in topics:
            self.create_subscription(msg_type, topic, lambda msg, topic=topic: self.record(topic, msg), qos)
        self.create_service(Trigger, "~/start", self.on_start)
        self.create_service(SetBool, "~/stop", self.on_stop)
        self.create_service(Trigger, "~/discard", self.on_discard)
        self.get_logger().info(f"recording episodes to {self.config.out}")

    def record(self, topic: str, msg) -> None:
        with self._lock:
            if self._recording:
                self.writer.write(topic, msg, time.time_ns())

    def on_start(self, _, response: Trigger.Response) -> Trigger.Response:
        instruction = self.get_parameter("instruction").value
        with self._lock:
            if self._recording:
                response.success, response.message = False, "already recording; stop or discard first"
            elif not instruction.strip():
                response.success, response.message = False, "set the 'instruction' parameter first"
            else:
                path = Path(self.config.out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.mcap"
                self.writer.start(path, instruction, {"robot": "wx250s"})
                self._recording = True
                response.success, response.message = True, str(path)
        self.get_logger().info(f"start: {response.message}")
        return response

    def on_stop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            if not self._recording:
                response.success, response.message = False, "not recording"
                return response
            self._recording = False
            try:
                response.success, response.message = True, str(self.writer.stop(success=bool(request.data)))
            except ValueError as exc:
                response.success, response.message = False, str(exc)
        self.get_logger().info(f"stop (success={request.data}): {response.message}")
        return response

    def on_discard(self, _, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            response.success = self._recording
            response.message = "episode discarded" if self._recording else "not recording"
            if self._recording:
                self.writer.discard()
                self._recording = False
        return response

    def close(self) -> None:
        # An episode still open at shutdown was never confirmed: do not leave half a file behind.
        if self._recording:
            self.writer.discard()


def main(args: list[str] | None = None) -> None:
    spin_node(RecorderNode, args)


if __name__ == "__main__":
    main()
