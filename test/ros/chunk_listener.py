"""Prints the first ActionChunk received on /action_chunk as JSON and exits."""

import json
import sys
import time

import rclpy

from gymnast_interfaces.msg import ActionChunk


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("chunk_listener")
    received = []
    try:
        node.create_subscription(ActionChunk, "/action_chunk", received.append, 10)
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not received:
            sys.exit(1)
        msg = received[0]
        print(json.dumps({"horizon": msg.horizon, "action_dim": msg.action_dim, "frame_id": msg.header.frame_id,
                          "action_names": list(msg.action_names), "actions": list(msg.actions),
                          "control_period": msg.control_period}))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
