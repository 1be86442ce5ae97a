"""Shared fixtures: a private, loopback-only ROS 2 domain for every test session."""

from __future__ import annotations

import glob
import os
import random
from pathlib import Path

import pytest

from gymnast_core.ros_env import loopback_ros_env


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory):
    """Environment for processes that use rclpy: loopback discovery, a per-run domain, temp logs."""
    before = set(glob.glob("/dev/shm/fastdds_*") + glob.glob("/dev/shm/sem.fastdds_*"))
    env = dict(os.environ)
    loopback_ros_env(env, domain_id=random.Random(os.getpid()).randint(1, 101))
    env["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    yield env
    # Processes killed mid-run leave Fast DDS shared-memory segments behind.
    for path in set(glob.glob("/dev/shm/fastdds_*") + glob.glob("/dev/shm/sem.fastdds_*")) - before:
        try:
            os.unlink(path)
        except OSError:
            pass



@pytest.fixture(scope="session")
def save_tiny_vlm():
    """save_tiny_vlm(name, folder) writes a tiny random-weight checkpoint of the named architecture."""
    from gymnast_policy.tiny_checkpoints import TINY_VLMS

    return lambda name, folder: TINY_VLMS[name](folder)


@pytest.fixture(scope="session")
def shipped():
    """The checkpoints the project ships (checkpoints/default, tracked in git)."""
    return Path(__file__).resolve().parents[1] / "checkpoints" / "default"
