"""NumPy <-> ROS 2 message conversion for the graph's nodes, with errors that name the problem.

cv_bridge breaks under NumPy 2, and a reshape of `Image.data` is all it did for rgb8/bgr8.
Only nodes import this module; the training path never touches rclpy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnast_interfaces.msg import ActionChunk
from sensor_msgs.msg import Image

IMAGE_ENCODINGS = ("rgb8", "bgr8")


class MessageError(ValueError):
    """A message a node received is malformed; the node logs it and carries on."""


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> uint8 [H, W, 3] RGB."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise MessageError(f"image encoding {msg.encoding!r} is not supported; send one of {', '.join(IMAGE_ENCODINGS)}")
    if msg.height == 0 or msg.width == 0:
        raise MessageError(f"image is empty ({msg.width}x{msg.height})")
    if msg.step < msg.width * 3 or len(msg.data) != msg.step * msg.height:
        raise MessageError(
            f"image data has {len(msg.data)} bytes; {msg.width}x{msg.height} {msg.encoding} with step {msg.step} "
            f"needs {msg.step * msg.height} (step >= {msg.width * 3})")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    frame = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return np.ascontiguousarray(frame[..., ::-1] if msg.encoding == "bgr8" else frame)


def array_to_image(frame: np.ndarray, stamp=None, frame_id: str = "") -> Image:
    """uint8 [H, W, 3] RGB -> sensor_msgs/Image rgb8."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise MessageError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8", is_bigendian=0, step=frame.shape[1] * 3)
    msg.data = frame.tobytes()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def chunk_to_msg(actions: np.ndarray, names: Sequence[str], control_period: float, stamp=None,
                 frame_id: str = "") -> ActionChunk:
    """float [K, A] actions in physical units -> ActionChunk (one action is a chunk of horizon 1)."""
    actions = np.atleast_2d(np.asarray(actions, np.float32))
    msg = ActionChunk(horizon=actions.shape[0], action_dim=actions.shape[1], action_names=list(names),
                      control_period=float(control_period))
    msg.actions = actions.ravel().tolist()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def msg_to_chunk(msg: ActionChunk, names: Sequence[str], low: Sequence[float] | None = None,
                 high: Sequence[float] | None = None) -> np.ndarray:
    """ActionChunk -> float32 [K, A], checked against the receiver's action names and bounds."""
    if list(msg.action_names) != list(names):
        raise MessageError(f"action names {list(msg.action_names)} do not match this node's {list(names)}")
    if msg.horizon == 0 or msg.action_dim != len(names) or len(msg.actions) != msg.horizon * msg.action_dim:
        raise MessageError(
            f"chunk shape: horizon {msg.horizon} x action_dim {msg.action_dim} (expected {len(names)}) "
            f"with {len(msg.actions)} values")
    actions = np.asarray(msg.actions, np.float32).reshape(msg.horizon, msg.action_dim)
    if not np.all(np.isfinite(actions)):
        raise MessageError("chunk contains NaN or infinite actions")
    if low is not None and high is not None:
        outside = (actions < np.asarray(low, np.float32) - 1e-6) | (actions > np.asarray(high, np.float32) + 1e-6)
        if outside.any():
            step, dim = map(int, np.argwhere(outside)[0])
            raise MessageError(
                f"chunk is out of range: step {step} {names[dim]}={actions[step, dim]:.4g} is outside "
                f"[{low[dim]:.4g}, {high[dim]:.4g}]")
    return actions
