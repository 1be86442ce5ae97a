"""The WidowX 250 driver: Bridge's 7-D end-effector deltas on the action topic, executed
at 5 Hz through an interbotix, dynamixel or mock backend; joint states on `/wx250s/joint_states`.

A target outside the workspace is clamped (motion stops at the boundary) and a malformed or
out-of-range action is rejected; both are logged and the node keeps running. Motors in error
are rebooted; torque goes off on shutdown.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import JointState

from gymnast_core.names import ACTION_TOPIC, JOINT_STATES_TOPIC
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.ros_msgs import MessageError, msg_to_chunk
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_interfaces.msg import ActionChunk
from gymnast_robot.arm_target import ArmTarget
from gymnast_robot.backends import DynamixelError, make_backend
from gymnast_robot.kinematics import FINGER_NAMES, JOINT_NAMES


@dataclass(frozen=True)
class DriverNodeConfig:
    # interbotix (interbotix_xs_modules), dynamixel (dynamixel-sdk over a U2D2) or mock (kinematic).
    backend: str = "dynamixel"
    port: str = "/dev/ttyDXL"
    baud: int = 1000000
    joint_state_rate: float = 20.0
    # Actions waiting to execute; older ones are dropped when a sender runs ahead of 5 Hz.
    max_queue: int = 10
    action_topic: str = ACTION_TOPIC
    joint_states_topic: str = JOINT_STATES_TOPIC


class WidowXDriverNode(Node):
    def __init__(self) -> None:
        super().__init__("widowx_driver")
        self.config = declare_config(self, DriverNodeConfig())
        hardware = {"port": self.config.port, "baud": self.config.baud} if self.config.backend == "dynamixel" else {}
        self.backend = make_backend(self.config.backend, **hardware)
        self.arm = ArmTarget(self.backend.read_joints())
        self.queue: deque = deque(maxlen=self.config.max_queue)
        self.create_subscription(ActionChunk, self.config.action_topic, self.on_actions, 10)
        self.joint_pub = self.create_publisher(JointState, self.config.joint_states_topic, 10)
        self.create_timer(BRIDGE_ACTION_SPEC.period, self.execute_next)
        self.create_timer(1.0 / self.config.joint_state_rate, self.publish_joint_states)
        self.get_logger().info(f"wx250s on the {self.config.backend} backend, EE deltas at {BRIDGE_ACTION_SPEC.control_hz:g} Hz")

    def on_actions(self, msg: ActionChunk) -> None:
        try:
            actions = msg_to_chunk(msg, BRIDGE_ACTION_SPEC.names, BRIDGE_ACTION_SPEC.low, BRIDGE_ACTION_SPEC.high)
        except MessageError as exc:
            self.get_logger().error(f"rejected action: {exc}")
            return
        if len(self.queue) + len(actions) > self.config.max_queue:
            self.get_logger().warning("actions arrive faster than 5 Hz: dropping the oldest", throttle_duration_sec=2.0)
        self.queue.extend(actions)

    def execute_next(self) -> None:
        if not self.queue:
            return
        command = self.arm.apply(self.queue.popleft())
        if command.reason:
            self.get_logger().warning(command.reason, throttle_duration_sec=1.0)
        self.with_recovery(lambda: self.backend.command(command.joints, command.gripper))

    def publish_joint_states(self) -> None:
        readings = self.with_recovery(lambda: (self.backend.read_joints(), self.backend.read_gripper()))
        if readings is None:
            return
        joints, finger = readings
        msg = JointState(name=[*JOINT_NAMES, *FINGER_NAMES], position=[*map(float, joints), float(finger), float(finger)])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joint_pub.publish(msg)

    def with_recovery(self, operation):
        """Run a bus operation; on a motor error (overload, ...) reboot the motors and report it."""
        try:
            return operation()
        except DynamixelError as exc:
            self.get_logger().error(f"{exc}; rebooting motors in error")
            for note in self.backend.recover():
                self.get_logger().warning(note)
            self.arm.reset(self.backend.read_joints())
            return None

    def close(self) -> None:
        self.backend.close()  # torque off: the arm must not hold (or fight) once nobody commands it
        self.get_logger().info("torque off")


def main(args: list[str] | None = None) -> None:
    spin_node(WidowXDriverNode, args)


if __name__ == "__main__":
    main()
