"""Message conversion: round trips, and errors that name what is wrong with a message."""

import numpy as np
import pytest

from gymnast_core.ros_msgs import MessageError, array_to_image, chunk_to_msg, image_to_array, msg_to_chunk

NAMES = ("dx", "dy", "dz", "gripper")


def test_image_round_trip_and_bgr():
    frame = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    msg = array_to_image(frame, frame_id="blue")
    assert (msg.width, msg.height, msg.encoding, msg.header.frame_id) == (7, 5, "rgb8", "blue")
    assert np.array_equal(image_to_array(msg), frame)
    msg.encoding = "bgr8"
    assert np.array_equal(image_to_array(msg), frame[..., ::-1])


def test_padded_rows_are_cropped():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = array_to_image(frame)
    msg.step = 12
    msg.data = b"".join(bytes(row.tobytes()) + b"\0\0\0" for row in frame)
    assert np.array_equal(image_to_array(msg), frame)


@pytest.mark.parametrize("change, message", [
    (dict(encoding="mono8"), "encoding 'mono8'"),
    (dict(data=bytes(10)), "10 bytes"),
    (dict(width=0), "empty"),
])
def test_malformed_images_name_the_problem(change, message):
    msg = array_to_image(np.zeros((4, 4, 3), np.uint8))
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(MessageError, match=message):
        image_to_array(msg)


def test_chunk_round_trip():
    actions = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    msg = chunk_to_msg(actions, NAMES, 0.2)
    assert (msg.horizon, msg.action_dim) == (2, 4) and msg.control_period == pytest.approx(0.2)
    assert np.allclose(msg_to_chunk(msg, NAMES, [-1] * 4, [1] * 4), actions)


@pytest.mark.parametrize("actions, names, message", [
    (np.zeros((1, 4)), ("a", "b", "c", "d"), "do not match"),
    (np.array([[np.nan, 0, 0, 0]]), NAMES, "NaN"),
    (np.array([[0, 0, 0, 0], [0, 2.0, 0, 0]]), NAMES, "step 1 dy=2 is outside"),
])
def test_malformed_chunks_name_the_problem(actions, names, message):
    msg = chunk_to_msg(actions, names, 0.2)
    with pytest.raises(MessageError, match=message):
        msg_to_chunk(msg, NAMES, [-1] * 4, [1] * 4)


def test_chunk_with_inconsistent_shape():
    msg = chunk_to_msg(np.zeros((2, 4)), NAMES, 0.2)
    msg.horizon = 3
    with pytest.raises(MessageError, match="chunk shape"):
        msg_to_chunk(msg, NAMES)
