"""Publishes one known ActionChunk repeatedly until a listener has matched, then a few more."""

import sys
import time

import rclpy

from gymnast_interfaces.msg import ActionChunk


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("chunk_talker")
    try:
        publisher = node.create_publisher(ActionChunk, "/action_chunk", 10)
        msg = ActionChunk(horizon=2, action_dim=7, control_period=0.2)
        msg.header.frame_id = "wx250s/base_link"
        msg.action_names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
        msg.actions = [0.01 * i for i in range(14)]
        deadline = time.monotonic() + 30.0
        sent_after_match = 0
        while time.monotonic() < deadline and sent_after_match < 20:
            if sent_after_match or publisher.get_subscription_count() > 0:
                sent_after_match += 1
            publisher.publish(msg)
            time.sleep(0.05)
        sys.exit(0 if sent_after_match else 1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
