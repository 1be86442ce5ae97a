"""Keyboard teleop: keys become bounded Bridge actions and recorder commands."""

import os

import numpy as np
import pytest

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_robot.teleop import KeyboardTeleop, make_device


@pytest.fixture
def keyboard():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as stream:
        yield KeyboardTeleop(step=0.02, turn=0.1, stream=stream), write_end
    os.close(write_end)


def test_keys_map_to_base_frame_deltas_and_recorder_commands(keyboard):
    device, pipe = keyboard
    os.write(pipe, b"wu b")
    action, commands = device.poll()
    assert action.tolist() == pytest.approx([0.02, 0, 0, 0.1, 0, 0, 0.0])  # space closed the gripper
    assert commands == ["start"]
    BRIDGE_ACTION_SPEC.validate(action)
    assert np.all(action >= BRIDGE_ACTION_SPEC.low) and np.all(action <= BRIDGE_ACTION_SPEC.high)
    action, commands = device.poll()  # nothing pressed: hold still, gripper stays closed
    assert action.tolist() == [0, 0, 0, 0, 0, 0, 0.0] and commands == []
    os.write(pipe, b"nq")
    assert device.poll()[1] == ["success", "quit"]


def test_unknown_device_and_missing_terminal():
    with pytest.raises(ValueError, match="unknown teleop device"):
        make_device("joystick", 0.02, 0.1)
    with pytest.raises(RuntimeError, match="interactive terminal|space mouse"):
        make_device("keyboard", 0.02, 0.1)  # pytest's stdin is not a terminal
