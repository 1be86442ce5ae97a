"""The Bridge camera: OpenCV (V4L2 on /dev/video*) to the image topic rgb8 + `/blue/camera_info`.

`device` is a V4L2 device (/dev/video0 or its index) or, for replays and tests, a video file,
which loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from gymnast_core.names import IMAGE_TOPIC
from gymnast_core.ros_msgs import array_to_image
from gymnast_core.ros_node import declare_config, spin_node


@dataclass(frozen=True)
class CameraNodeConfig:
    device: str = "/dev/video0"
    # Bridge's camera runs 640x480 at 30 fps; policies resize to their own input.
    width: int = 640
    height: int = 480
    fps: float = 30.0
    frame_id: str = "blue"
    topic: str = IMAGE_TOPIC


def open_capture(device: str, width: int, height: int, fps: float) -> cv2.VideoCapture:
    is_v4l2 = device.isdigit() or device.startswith("/dev/video")
    capture = cv2.VideoCapture(int(device) if device.isdigit() else device, cv2.CAP_V4L2 if is_v4l2 else cv2.CAP_ANY)
    if not capture.isOpened():
        raise RuntimeError(f"cannot open camera {device!r}" + (
            " (is it plugged in, and is the user in the 'video' group? `v4l2-ctl --list-devices` lists cameras)"
            if is_v4l2 else " (no such video file?)"))
    if is_v4l2:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
    return capture


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        self.config = declare_config(self, CameraNodeConfig())
        self.capture = open_capture(self.config.device, self.config.width, self.config.height, self.config.fps)
        self.image_pub = self.create_publisher(Image, self.config.topic, 10)
        self.info_pub = self.create_publisher(CameraInfo, self.config.topic.rsplit("/", 1)[0] + "/camera_info", 10)
        self.create_timer(1.0 / self.config.fps, self.grab)
        self.get_logger().info(f"camera {self.config.device} -> {self.config.topic} "
                               f"{self.config.width}x{self.config.height} at {self.config.fps:g} fps")

    def grab(self) -> None:
        ok, bgr = self.capture.read()
        if not ok:
            # A file ends: loop it. A device that stops delivering is reported, not fatal.
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.capture.read()
            if not ok:
                self.get_logger().error(f"camera {self.config.device}: no frame", throttle_duration_sec=2.0)
                return
        rgb = cv2.cvtColor(cv2.resize(bgr, (self.config.width, self.config.height), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(array_to_image(rgb, stamp, self.config.frame_id))
        info = CameraInfo(width=self.config.width, height=self.config.height)
        info.header.stamp, info.header.frame_id = stamp, self.config.frame_id
        self.info_pub.publish(info)

    def close(self) -> None:
        self.capture.release()


def main(args: list[str] | None = None) -> None:
    spin_node(CameraNode, args)


if __name__ == "__main__":
    main()
