"""WidowX 250 kinematics and its robot description: FK, IK, pose conventions, the URDF and the RViz config."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from gymnast_robot import kinematics

PACKAGE_DIR = Path(kinematics.__file__).resolve().parents[1]
URDF_PATH = PACKAGE_DIR / "urdf" / "wx250s.urdf"
RVIZ_PATH = PACKAGE_DIR / "rviz" / "gymnast.rviz"


def _random_joints(rng, n):
    # Stay clear of the limits so a perturbed seed is still a fair start.
    mid, half = (kinematics.JOINT_LOWER + kinematics.JOINT_UPPER) / 2, (kinematics.JOINT_UPPER - kinematics.JOINT_LOWER) / 2
    return mid + rng.uniform(-0.6, 0.6, size=(n, 6)) * half


def _urdf_joints():
    root = ET.parse(URDF_PATH).getroot()
    return root, {j.get("name"): j for j in root.findall("joint")}


def _origin(joint) -> np.ndarray:
    origin = joint.find("origin")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [float(v) for v in origin.get("rpy").split()]).as_matrix()
    T[:3, 3] = [float(v) for v in origin.get("xyz").split()]
    return T


def _urdf_fk(joints: dict, q) -> np.ndarray:
    """Walk the URDF chain base_link -> ee_gripper_link, rotating each revolute joint by q."""
    by_child = {j.find("child").get("link"): j for j in joints.values()}
    chain, link = [], kinematics.EE_FRAME
    while link != kinematics.BASE_FRAME:
        chain.append(by_child[link])
        link = by_child[link].find("parent").get("link")
    T = np.eye(4)
    for joint in reversed(chain):
        T = T @ _origin(joint)
        if joint.get("type") == "revolute":
            axis = np.array([float(v) for v in joint.find("axis").get("xyz").split()])
            R = np.eye(4)
            R[:3, :3] = Rotation.from_rotvec(axis * q[kinematics.JOINT_NAMES.index(joint.get("name"))]).as_matrix()
            T = T @ R
    return T


def test_zero_joints_put_the_gripper_at_the_published_home_pose():
    np.testing.assert_allclose(kinematics.forward_kinematics(np.zeros(6)), kinematics.HOME_EE_POSE, atol=1e-12)
    np.testing.assert_allclose(kinematics.HOME_EE_POSE[:3, 3], [0.458325, 0, 0.36065])


def test_ik_recovers_random_reachable_poses():
    rng = np.random.default_rng(1)
    for q in _random_joints(rng, 8):
        target = kinematics.forward_kinematics(q)
        joints, ok = kinematics.inverse_kinematics(target, q + rng.normal(0, 0.1, 6))
        assert ok
        reached = kinematics.forward_kinematics(joints)
        assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-3
        assert Rotation.from_matrix(reached[:3, :3] @ target[:3, :3].T).magnitude() < 1e-2
        assert np.all(joints >= kinematics.JOINT_LOWER) and np.all(joints <= kinematics.JOINT_UPPER)


def test_ik_reports_failure_on_an_unreachable_target():
    target = kinematics.xyzrpy_to_pose([1.0, 0, 0.2, 0, 0, 0])
    joints, ok = kinematics.inverse_kinematics(target, kinematics.HOME_JOINTS)
    assert not ok
    assert np.all(joints >= kinematics.JOINT_LOWER) and np.all(joints <= kinematics.JOINT_UPPER)


def test_pose6_is_extrinsic_xyz_euler_in_the_base_frame():
    r, p, y = 0.3, -0.2, 0.5
    T = kinematics.xyzrpy_to_pose([0.1, 0.2, 0.3, r, p, y])
    Rx, Ry, Rz = (Rotation.from_rotvec(v).as_matrix() for v in ([r, 0, 0], [0, p, 0], [0, 0, y]))
    np.testing.assert_allclose(T[:3, :3], Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(kinematics.pose_to_xyzrpy(T), [0.1, 0.2, 0.3, r, p, y], atol=1e-12)


def test_urdf_matches_the_kinematics_names_and_limits():
    root, joints = _urdf_joints()
    assert root.get("name") == kinematics.ROBOT_MODEL
    links = {link.get("name") for link in root.findall("link")}
    for name in ("base_link", "shoulder_link", "upper_arm_link", "wrist_link", "gripper_link", "ee_gripper_link"):
        assert f"wx250s/{name}" in links
    revolute = [name for name, j in joints.items() if j.get("type") == "revolute"]
    assert tuple(revolute) == kinematics.JOINT_NAMES
    for i, name in enumerate(kinematics.JOINT_NAMES):
        limit = joints[name].find("limit")
        assert float(limit.get("lower")) == pytest.approx(kinematics.JOINT_LOWER[i], abs=1e-5)
        assert float(limit.get("upper")) == pytest.approx(kinematics.JOINT_UPPER[i], abs=1e-5)
    for name in kinematics.FINGER_NAMES:
        assert joints[name].get("type") == "prismatic"
        limit = joints[name].find("limit")
        assert (float(limit.get("lower")), float(limit.get("upper"))) == kinematics.FINGER_LIMITS
    np.testing.assert_allclose(_urdf_fk(joints, np.zeros(6)), kinematics.forward_kinematics(np.zeros(6)), atol=1e-9)
    for q in _random_joints(np.random.default_rng(3), 5):  # axes and offsets, not just the zero pose
        np.testing.assert_allclose(_urdf_fk(joints, q), kinematics.forward_kinematics(q), atol=1e-9)


def test_rviz_config_shows_the_robot_tf_and_camera_in_the_base_frame():
    config = yaml.safe_load(RVIZ_PATH.read_text())["Visualization Manager"]
    assert config["Global Options"]["Fixed Frame"] == kinematics.BASE_FRAME
    displays = {d["Class"]: d for d in config["Displays"]}
    assert displays["rviz_default_plugins/RobotModel"]["Description Topic"]["Value"] == "/robot_description"
    assert "rviz_default_plugins/TF" in displays
    # Relative, remapped to the camera topic by rviz.launch.py.
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "image"
