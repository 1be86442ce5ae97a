"""Teleop: keyboard or space mouse -> the action topic at 5 Hz, with recorder controls."""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node
from std_srvs.srv import SetBool, Trigger

from gymnast_core.names import ACTION_TOPIC
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.ros_msgs import chunk_to_msg
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_interfaces.msg import ActionChunk
from gymnast_robot.teleop import HELP, make_device


@dataclass(frozen=True)
class TeleopNodeConfig:
    device: str = "auto"
    # Translation (m) and rotation (rad) per control period while a key is held.
    step: float = 0.02
    turn: float = 0.1
    action_topic: str = ACTION_TOPIC
    frame_id: str = "wx250s/base_link"


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop")
        self.config = declare_config(self, TeleopNodeConfig())
        self.device = make_device(self.config.device, self.config.step, self.config.turn)
        self.action_pub = self.create_publisher(ActionChunk, self.config.action_topic, 10)
        self.recorder = {name: self.create_client(kind, f"/recorder/{name}")
                         for name, kind in (("start", Trigger), ("stop", SetBool), ("discard", Trigger))}
        self.create_timer(BRIDGE_ACTION_SPEC.period, self.tick)
        self.get_logger().info(f"{type(self.device).__name__}: {HELP}")

    def tick(self) -> None:
        action, commands = self.device.poll()
        self.action_pub.publish(chunk_to_msg(action, BRIDGE_ACTION_SPEC.names, BRIDGE_ACTION_SPEC.period,
                                             self.get_clock().now().to_msg(), self.config.frame_id))
        for command in commands:
            if command == "quit":
                raise KeyboardInterrupt
            client = self.recorder["stop" if command in ("success", "failure") else command]
            if not client.service_is_ready():
                self.get_logger().error(f"recorder not running: cannot {command}")
                continue
            request = SetBool.Request(data=command == "success") if command in ("success", "failure") else Trigger.Request()
            client.call_async(request).add_done_callback(
                lambda future, command=command: self.get_logger().info(f"{command}: {future.result().message}"))

    def close(self) -> None:
        self.device.close()


def main(args: list[str] | None = None) -> None:
    spin_node(TeleopNode, args)


if __name__ == "__main__":
    main()
