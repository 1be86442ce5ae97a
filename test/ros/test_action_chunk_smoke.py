"""The custom ActionChunk message crosses two real rclpy processes under loopback-only DDS."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.ros
def test_action_chunk_between_two_processes(ros_env):
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    listener = subprocess.Popen([sys.executable, str(HERE / "chunk_listener.py")], env=ros_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    talker = subprocess.Popen([sys.executable, str(HERE / "chunk_talker.py")], env=ros_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = listener.communicate(timeout=60)
        assert listener.returncode == 0, f"listener received nothing:\n{err}"
        assert talker.wait(timeout=60) == 0
    finally:
        for proc in (listener, talker):
            if proc.poll() is None:
                proc.kill()
    msg = json.loads(out.strip().splitlines()[-1])
    assert msg["horizon"] == 2 and msg["action_dim"] == 7 and msg["frame_id"] == "wx250s/base_link"
    assert msg["action_names"][-1] == "gripper"
    assert msg["actions"] == pytest.approx([0.01 * i for i in range(14)])
    assert msg["control_period"] == pytest.approx(0.2)
