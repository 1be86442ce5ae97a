"""The WidowX 250 driver: Bridge's 7-D end-effector deltas on the action topic, executed
at 5 Hz through an interbotix, dynamixel or mock backend; joint states on `/wx250s/joint_states`.

No motion without a fresh command, enforced here whatever the sender does: an action runs only
within `max_action_age` of its stamped due time (`command_queue`), and an engaged e-stop on
`/gymnast/estop` empties the queue and refuses actions until it is released.

A target outside the workspace is clamped (motion stops at the boundary) and a malformed,
out-of-range, unstamped or stale action is rejected; both are logged and the node keeps
running. Motors in error are rebooted; torque goes off on shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from gymnast_core.names import ACTION_TOPIC, ESTOP_TOPIC, JOINT_STATES_TOPIC
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.ros_msgs import MessageError, msg_to_chunk
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_interfaces.msg import ActionChunk
from gymnast_robot.arm_target import ArmTarget
from gymnast_robot.backends import DynamixelError, make_backend
from gymnast_robot.command_queue import CommandQueue
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
    # Seconds an action may run past its due time: 2.5 control periods absorb one late tick
    # of this node's timer, while a stalled sender's backlog never moves the arm.
    max_action_age: float = 0.5
    action_topic: str = ACTION_TOPIC
    joint_states_topic: str = JOINT_STATES_TOPIC


class WidowXDriverNode(Node):
    def __init__(self) -> None:
        super().__init__("widowx_driver")
        self.config = declare_config(self, DriverNodeConfig())
        hardware = {"port": self.config.port, "baud": self.config.baud} if self.config.backend == "dynamixel" else {}
        self.backend = make_backend(self.config.backend, **hardware)
        self.arm = ArmTarget(self.backend.read_joints())
        self.queue = CommandQueue(self.config.max_action_age, self.config.max_queue)
        self.estop = False
        self.create_subscription(ActionChunk, self.config.action_topic, self.on_actions, 10)
        self.create_subscription(Bool, ESTOP_TOPIC, self.on_estop, 10)
        self.joint_pub = self.create_publisher(JointState, self.config.joint_states_topic, 10)
        self.create_timer(BRIDGE_ACTION_SPEC.period, self.execute_next)
        self.create_timer(1.0 / self.config.joint_state_rate, self.publish_joint_states)
        self.get_logger().info(f"wx250s on the {self.config.backend} backend, EE deltas at {BRIDGE_ACTION_SPEC.control_hz:g} Hz")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estop:
            self.get_logger().warning(f"e-stop: dropped {len(self.queue)} queued actions; refusing actions until released")
        elif self.estop and not msg.data:
            self.get_logger().info("e-stop released")
        self.estop = bool(msg.data)
        if self.estop:
            self.queue.clear()

    def on_actions(self, msg: ActionChunk) -> None:
        if self.estop:
            self.get_logger().error("rejected action: the e-stop is engaged", throttle_duration_sec=1.0)
            return
        try:
            actions = msg_to_chunk(msg, BRIDGE_ACTION_SPEC.names, BRIDGE_ACTION_SPEC.low, BRIDGE_ACTION_SPEC.high)
            stamp = Time.from_msg(msg.header.stamp).nanoseconds * 1e-9
            pushed_out = self.queue.push(actions, stamp, msg.control_period, self.now())
        except (MessageError, ValueError) as exc:
            self.get_logger().error(f"rejected action: {exc}")
            return
        if pushed_out:
            self.get_logger().warning("actions arrive faster than 5 Hz: dropping the oldest", throttle_duration_sec=2.0)

    def execute_next(self) -> None:
        action, stale = self.queue.pop(self.now())
        if stale:
            self.get_logger().warning(f"dropped {stale} stale actions (over {self.config.max_action_age:g} s past due)",
                                      throttle_duration_sec=1.0)
        if action is None:
            return
        command = self.arm.apply(action)
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
