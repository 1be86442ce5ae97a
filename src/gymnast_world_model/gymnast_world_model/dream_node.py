"""The dream as a ROS 2 node: a loopback simulator with the real arm's action input and camera output.

Each action on the action topic advances the world model one frame, published on
the image topic like the real camera; between actions the latest frame is republished at the
camera rate. `/dream/reset` restarts it from an image (e.g. the real camera's, for test-time
training in a new scene) or a task folder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image

from gymnast_core.names import ACTION_TOPIC, DREAM_RESET_SERVICE, IMAGE_TOPIC, SHIPPED_WORLD_MODEL
from gymnast_core.ros_msgs import MessageError, array_to_image, image_to_array, msg_to_chunk
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_core.task import Task
from gymnast_interfaces.msg import ActionChunk
from gymnast_interfaces.srv import ResetFromImage
from gymnast_world_model.dream_env import DreamConfig


@dataclass(frozen=True)
class DreamNodeConfig:
    dream: DreamConfig = field(default_factory=lambda: DreamConfig(checkpoint=SHIPPED_WORLD_MODEL))
    # A task folder to start from (gymnast make-tasks); empty = wait for /dream/reset.
    task_folder: str = ""
    camera_rate: float = 10.0
    frame_id: str = "blue"
    image_topic: str = IMAGE_TOPIC
    action_topic: str = ACTION_TOPIC


class DreamNode(Node):
    def __init__(self) -> None:
        super().__init__("dream")
        self.config = declare_config(self, DreamNodeConfig())
        self.env = self.config.dream.make_env()
        self.spec = self.env.action_spec
        self._frame: np.ndarray | None = None
        self._lock = threading.Lock()  # one world-model call at a time: reset vs step
        group = MutuallyExclusiveCallbackGroup()
        self.image_pub = self.create_publisher(Image, self.config.image_topic, 10)
        self.create_subscription(ActionChunk, self.config.action_topic, self.on_action, 10, callback_group=group)
        self.create_service(ResetFromImage, DREAM_RESET_SERVICE, self.on_reset, callback_group=group)
        self.create_timer(1.0 / self.config.camera_rate, self.publish_frame)
        if self.config.task_folder:
            task = Task.load(self.config.task_folder)
            self.reset(task.initial_frame, task.instruction)
        self.get_logger().info(f"dreaming with {self.config.dream.checkpoint} ({self.env.image_size} px, "
                               f"{self.config.dream.sampling_steps} sampling steps)")

    def reset(self, frame: np.ndarray, instruction: str) -> None:
        with self._lock:
            self._frame = self.env.reset_frames(frame[None], [instruction])[0]
        self.publish_frame()

    def on_reset(self, request: ResetFromImage.Request, response: ResetFromImage.Response) -> ResetFromImage.Response:
        try:
            if request.image.width:
                frame, instruction = image_to_array(request.image), request.instruction
            elif request.task_folder:
                task = Task.load(request.task_folder)
                frame, instruction = task.initial_frame, request.instruction or task.instruction
            else:
                raise MessageError("send an image or a task_folder")
            if not instruction.strip():
                raise MessageError("the dream needs an instruction")
            self.reset(frame, instruction)
        except (MessageError, FileNotFoundError, ValueError) as exc:
            self.get_logger().error(f"/dream/reset rejected: {exc}")
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, f"dreaming {instruction!r}"
        return response

    def on_action(self, msg: ActionChunk) -> None:
        try:
            actions = msg_to_chunk(msg, self.spec.names, self.spec.low, self.spec.high)
        except MessageError as exc:
            self.get_logger().error(f"rejected action: {exc}")
            return
        if self._frame is None:
            self.get_logger().error("rejected action: the dream has not been reset (call /dream/reset)",
                                    throttle_duration_sec=1.0)
            return
        for action in actions:
            with self._lock:
                self._frame = self.env.step(action[None])[0]
            self.publish_frame()

    def publish_frame(self) -> None:
        if self._frame is not None:
            self.image_pub.publish(array_to_image(self._frame, self.get_clock().now().to_msg(), self.config.frame_id))


def main(args: list[str] | None = None) -> None:
    spin_node(DreamNode, args)


if __name__ == "__main__":
    main()
