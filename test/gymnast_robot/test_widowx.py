"""WidowX 250 6-DOF library: kinematics, the Bridge action convention, workspace, backends, URDF, RViz."""

from __future__ import annotations

import importlib.util
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from gymnast_robot import widowx as wx

PACKAGE_DIR = Path(wx.__file__).resolve().parents[1]
URDF_PATH = PACKAGE_DIR / "urdf" / "wx250s.urdf"
RVIZ_PATH = PACKAGE_DIR / "rviz" / "gymnast.rviz"


def _action(**kw) -> np.ndarray:
    a = np.zeros(7)
    a[6] = 1.0
    for name, value in kw.items():
        a[wx.ACTION_NAMES.index(name)] = value
    return a


def _random_joints(rng, n):
    # Stay clear of the limits so a perturbed seed is still a fair start.
    mid, half = (wx.JOINT_LOWER + wx.JOINT_UPPER) / 2, (wx.JOINT_UPPER - wx.JOINT_LOWER) / 2
    return mid + rng.uniform(-0.6, 0.6, size=(n, 6)) * half


# --------------------------------------------------------------------------- kinematics


def test_zero_joints_put_the_gripper_at_the_published_home_pose():
    np.testing.assert_allclose(wx.forward_kinematics(np.zeros(6)), wx.HOME_EE_POSE, atol=1e-12)
    np.testing.assert_allclose(wx.HOME_EE_POSE[:3, 3], [0.458325, 0, 0.36065])


def test_home_joints_reach_the_bridge_start_pose_and_sleep_is_within_limits():
    np.testing.assert_allclose(wx.pose_to_xyzrpy(wx.forward_kinematics(wx.HOME_JOINTS)), wx.START_POSE6, atol=1e-3)
    assert not wx.BRIDGE_WORKSPACE.clamp(wx.START_POSE6)[1]
    assert np.all((wx.SLEEP_JOINTS >= wx.JOINT_LOWER) & (wx.SLEEP_JOINTS <= wx.JOINT_UPPER))
    np.testing.assert_allclose(np.rad2deg(wx.JOINT_LOWER[1:3]), [-108, -123])


def test_ik_recovers_random_reachable_poses():
    rng = np.random.default_rng(1)
    for q in _random_joints(rng, 8):
        target = wx.forward_kinematics(q)
        joints, ok = wx.inverse_kinematics(target, q + rng.normal(0, 0.1, 6))
        assert ok
        reached = wx.forward_kinematics(joints)
        assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-3
        assert Rotation.from_matrix(reached[:3, :3] @ target[:3, :3].T).magnitude() < 1e-2
        assert np.all(joints >= wx.JOINT_LOWER) and np.all(joints <= wx.JOINT_UPPER)


def test_ik_reports_failure_on_an_unreachable_target():
    target = wx.xyzrpy_to_pose([1.0, 0, 0.2, 0, 0, 0])
    joints, ok = wx.inverse_kinematics(target, wx.HOME_JOINTS)
    assert not ok
    assert np.all(joints >= wx.JOINT_LOWER) and np.all(joints <= wx.JOINT_UPPER)


def test_a_stream_of_actions_stays_on_target_with_ik_seeded_from_the_last_command():
    rng = np.random.default_rng(2)
    arm = wx.ArmTarget(wx.HOME_JOINTS)
    for _ in range(25):
        a = np.concatenate([rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05, 3), [1.0]])
        cmd = arm.apply(a)
        assert cmd.ik_ok, cmd.reason
        reached = wx.forward_kinematics(cmd.joints)
        assert np.linalg.norm(reached[:3, 3] - cmd.target[:3, 3]) < 1e-3


# --------------------------------------------------------------------------- the action convention


def test_pose6_is_extrinsic_xyz_euler_in_the_base_frame():
    r, p, y = 0.3, -0.2, 0.5
    T = wx.xyzrpy_to_pose([0.1, 0.2, 0.3, r, p, y])
    Rx, Ry, Rz = (Rotation.from_rotvec(v).as_matrix() for v in ([r, 0, 0], [0, p, 0], [0, 0, y]))
    np.testing.assert_allclose(T[:3, :3], Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(wx.pose_to_xyzrpy(T), [0.1, 0.2, 0.3, r, p, y], atol=1e-12)


@pytest.mark.parametrize("name, axis", [("droll", 0), ("dpitch", 1), ("dyaw", 2)])
def test_rotation_deltas_premultiply_about_base_axes_around_the_gripper(name, axis):
    d = 0.2
    arm = wx.ArmTarget(wx.HOME_JOINTS)  # home orientation: gripper points along base +x
    before = wx.forward_kinematics(wx.HOME_JOINTS)
    cmd = arm.apply(_action(**{name: d}))
    assert cmd.ik_ok and not cmd.workspace_violation
    after = wx.forward_kinematics(cmd.joints)
    rot = np.zeros(3)
    rot[axis] = d
    expected = Rotation.from_rotvec(rot).as_matrix() @ before[:3, :3]
    assert Rotation.from_matrix(after[:3, :3] @ expected.T).magnitude() < 1e-2
    assert np.linalg.norm(after[:3, 3] - before[:3, 3]) < 1e-3
    if name == "droll":
        # Roll about the approach axis is a wrist motion; a yawing waist is the classic frame bug.
        dq = cmd.joints - wx.HOME_JOINTS
        assert abs(dq[0]) < 1e-3
        assert abs(dq[3] + dq[5]) == pytest.approx(d, abs=1e-2)
    if name == "dyaw":
        # Yawing about the fingertips swings the wrist centre the other way; the waist follows it.
        wrist_centre = after[:3, 3] - after[:3, 0] * (wx.HOME_EE_POSE[0, 3] - 0.29975)
        assert cmd.joints[0] == pytest.approx(np.arctan2(wrist_centre[1], wrist_centre[0]), abs=1e-3)
        assert cmd.joints[0] < 0


def test_translation_deltas_are_in_the_base_frame_and_targets_accumulate():
    arm = wx.ArmTarget(wx.HOME_JOINTS)
    arm.apply(_action(dx=0.02, dy=-0.01, dz=-0.03))
    cmd = arm.apply(_action(dx=0.02, dy=-0.01, dz=-0.03))
    np.testing.assert_allclose(cmd.target[:3, 3], wx.START_POSE6[:3] + [0.04, -0.02, -0.06], atol=1e-3)
    np.testing.assert_allclose(wx.forward_kinematics(cmd.joints)[:3, 3], cmd.target[:3, 3], atol=1e-3)


# --------------------------------------------------------------------------- workspace and validation


def test_workspace_violation_stops_at_the_boundary_without_raising():
    arm = wx.ArmTarget(wx.HOME_JOINTS)  # z = 0.15; the ceiling is 0.18
    cmd = arm.apply(_action(dz=0.05))
    assert cmd.workspace_violation and cmd.ik_ok and "workspace" in cmd.reason
    assert cmd.target[2, 3] == pytest.approx(0.18)
    again = arm.apply(_action(dz=0.05))
    assert again.workspace_violation
    np.testing.assert_allclose(again.joints, cmd.joints, atol=1e-6)
    back = arm.apply(_action(dz=-0.05))
    assert not back.workspace_violation and back.target[2, 3] == pytest.approx(0.13)


def test_workspace_clamps_roll_and_position():
    clamped, violated = wx.BRIDGE_WORKSPACE.clamp([0.5, 0.0, 0.0, 2.0, 0.1, 0.2])
    assert violated
    np.testing.assert_allclose(clamped, [0.45, 0.0, 0.0, 1.57, 0.1, 0.2])
    assert wx.BRIDGE_WORKSPACE.clamp(wx.START_POSE6)[1] is False


def test_ik_failure_keeps_the_previous_joint_command():
    arm = wx.ArmTarget(wx.HOME_JOINTS, workspace=wx.Workspace(high=(2.0, 2.0, 2.0)))
    previous = arm.joints
    for _ in range(30):
        cmd = arm.apply(_action(dx=0.05))
        if not cmd.ik_ok:
            break
        previous = cmd.joints
    assert not cmd.ik_ok and "IK" in cmd.reason
    np.testing.assert_array_equal(cmd.joints, previous)
    np.testing.assert_allclose(wx.forward_kinematics(previous), cmd.target, atol=1e-3)


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(6), "shape"),
        (np.zeros((1, 7)), "shape"),
        (_action(droll=np.nan), "droll"),
        (_action(dz=np.inf), "dz"),
        (_action(dx=0.1), r"dx.*bounds"),
        (_action(dyaw=-0.3), "dyaw"),
        (_action(gripper=1.5), "gripper"),
    ],
)
def test_invalid_actions_raise_naming_the_problem(action, match):
    with pytest.raises(ValueError, match=match):
        wx.ArmTarget().apply(action)


def test_gripper_is_absolute_and_binarised_by_default():
    arm = wx.ArmTarget()
    assert arm.apply(_action(gripper=0.4)).gripper == 0.0
    assert arm.apply(_action(gripper=0.6)).gripper == 1.0
    assert wx.ArmTarget(gripper_threshold=None).apply(_action(gripper=0.4)).gripper == pytest.approx(0.4)
    np.testing.assert_allclose(wx.validate_action(np.float32([0.05, 0, 0, 0, 0, 0, 1])), [0.05, 0, 0, 0, 0, 0, 1])


# --------------------------------------------------------------------------- backends


def test_mock_backend_moves_at_bounded_speed_and_converges():
    arm = wx.MockBackend(clock=None, max_joint_speed=3.0)
    goal = wx.HOME_JOINTS + np.array([0.5, -0.2, 0.3, 0.4, 0.2, -0.6])
    arm.command(goal, gripper=0.0)
    arm.tick(0.1)
    assert np.abs(arm.read_joints() - wx.HOME_JOINTS).max() == pytest.approx(0.3)
    for _ in range(5):
        arm.tick(0.1)
    np.testing.assert_allclose(arm.read_joints(), goal, atol=1e-9)
    assert arm.read_gripper() == pytest.approx(wx.FINGER_LIMITS[0])
    arm.inject_error("elbow")
    arm.command(wx.HOME_JOINTS, 1.0)
    arm.tick(1.0)
    assert arm.read_joints()[2] == pytest.approx(goal[2])
    assert arm.recover() == ["rebooted elbow (mock overload) and re-enabled torque"]
    arm.tick(1.0)
    np.testing.assert_allclose(arm.read_joints(), wx.HOME_JOINTS, atol=1e-9)
    assert arm.read_gripper() == pytest.approx(wx.FINGER_LIMITS[1])
    arm.close()
    assert not arm.torque_enabled


def test_make_backend_builds_by_name_and_rejects_unknown_names():
    assert isinstance(wx.make_backend("mock", clock=None), wx.MockBackend)
    with pytest.raises(ValueError, match=r"'nope'.*mock, dynamixel, interbotix"):
        wx.make_backend("nope")


def test_dynamixel_backend_names_port_baud_and_missing_ids_when_nothing_answers():
    pytest.importorskip("dynamixel_sdk")
    master, slave = os.openpty()  # a serial port with no motors behind it
    try:
        path = os.ttyname(slave)
        start = time.monotonic()
        with pytest.raises(wx.MotorsNotFoundError) as info:
            wx.DynamixelBackend(port=path, baud=1_000_000)
        assert time.monotonic() - start < 3.0
    finally:
        os.close(master)
        os.close(slave)
    message = str(info.value)
    assert path in message and "1000000" in message and "power" in message and "U2D2" in message
    assert info.value.missing_ids == list(range(1, 10))
    assert all(f"{i} (" in message for i in range(1, 10))


def test_dynamixel_backend_reports_a_port_that_cannot_be_opened():
    pytest.importorskip("dynamixel_sdk")
    with pytest.raises(wx.DynamixelError, match="/dev/ttyNO_SUCH_U2D2"):
        wx.DynamixelBackend(port="/dev/ttyNO_SUCH_U2D2")


class _FakeBus:
    """Just enough of dynamixel_sdk for DynamixelBackend: a dict of (motor id, address) registers."""

    COMM_SUCCESS, COMM_RX_TIMEOUT = 0, -3001

    def __init__(self):
        self.regs = {(i, wx.ADDR_PRESENT_POSITION): 2048 for i in wx.MOTOR_IDS.values()}
        self.regs[(7, wx.ADDR_HARDWARE_ERROR_STATUS)] = 1 << 5  # wrist_angle overloaded
        self.rebooted = []
        bus = self

        class Port:
            def __init__(self, name):
                pass

            openPort = setBaudRate = lambda self, *a: True  # noqa: E731
            closePort = lambda self: None  # noqa: E731

        class Packet:
            def ping(self, port, i):
                return 0, bus.COMM_SUCCESS, 0

            def _read(self, port, i, addr):
                return bus.regs.get((i, addr), 0), bus.COMM_SUCCESS, 0

            def _write(self, port, i, addr, value):
                bus.regs[(i, addr)] = value
                return bus.COMM_SUCCESS, 0

            def reboot(self, port, i):
                bus.rebooted.append(i)
                bus.regs[(i, wx.ADDR_HARDWARE_ERROR_STATUS)] = 0
                return bus.COMM_SUCCESS, 0

            read1ByteTxRx = read4ByteTxRx = _read
            write1ByteTxRx = write4ByteTxRx = _write
            getTxRxResult = getRxPacketError = lambda self, r: f"code {r}"  # noqa: E731

        class SyncRead:
            def __init__(self, port, ph, addr, size):
                self.addr, self.ids = addr, []

            addParam = lambda self, i: self.ids.append(i)  # noqa: E731
            txRxPacket = lambda self: bus.COMM_SUCCESS  # noqa: E731
            isAvailable = lambda self, i, addr, size: i in self.ids  # noqa: E731
            getData = lambda self, i, addr, size: bus.regs[(i, addr)] & 0xFFFFFFFF  # noqa: E731

        class SyncWrite:
            def __init__(self, port, ph, addr, size):
                self.addr, self.data = addr, {}

            clearParam = lambda self: self.data.clear()  # noqa: E731
            addParam = lambda self, i, data: self.data.__setitem__(i, data)  # noqa: E731

            def txPacket(self):
                for i, data in self.data.items():  # the fake motors arrive instantly
                    value = int.from_bytes(bytes(data), "little", signed=True)
                    bus.regs[(i, self.addr)] = bus.regs[(i, wx.ADDR_PRESENT_POSITION)] = value
                return bus.COMM_SUCCESS

        self.PortHandler, self.GroupSyncRead, self.GroupSyncWrite = Port, SyncRead, SyncWrite
        self.PacketHandler = lambda version: Packet()


def test_dynamixel_backend_commands_reads_and_recovers_over_a_fake_bus(monkeypatch):
    bus = _FakeBus()
    monkeypatch.setitem(__import__("sys").modules, "dynamixel_sdk", bus)
    monkeypatch.setattr(wx, "REBOOT_WAIT_S", 0.0)
    arm = wx.DynamixelBackend(port="/dev/fake", gripper_open_ticks=3000, gripper_closed_ticks=2000)
    assert bus.regs[(9, wx.ADDR_OPERATING_MODE)] == wx.POSITION_MODE
    assert all(bus.regs[(i, wx.ADDR_TORQUE_ENABLE)] == 1 for i in wx.MOTOR_IDS.values())
    np.testing.assert_allclose(arm.read_joints(), np.zeros(6))
    goal = np.array([0.5, -1.0, 1.2, -3.0, 0.3, 2.0])
    arm.command(goal, gripper=0.0)
    np.testing.assert_allclose(arm.read_joints(), goal, atol=2 * np.pi / 4096)  # one tick
    assert bus.regs[(1, wx.ADDR_PRESENT_POSITION)] == 2048 + round(0.5 * 4096 / (2 * np.pi))
    goals = {i for i, addr in bus.regs if addr == wx.ADDR_GOAL_POSITION}
    assert goals == {1, 2, 4, 6, 7, 8, 9}  # shadows (3, 5) follow their master in firmware
    assert arm.read_gripper() == pytest.approx(wx.FINGER_LIMITS[0])
    messages = arm.recover()
    assert bus.rebooted == [7] and len(messages) == 1 and "overload" in messages[0] and "wrist_angle" in messages[0]
    arm.close()
    assert all(bus.regs[(i, wx.ADDR_TORQUE_ENABLE)] == 0 for i in wx.MOTOR_IDS.values())


@pytest.mark.skipif(
    importlib.util.find_spec("interbotix_xs_modules") is not None, reason="Interbotix stack is installed"
)
def test_interbotix_backend_without_the_ros_stack_says_what_to_do():
    with pytest.raises(ImportError, match=r"Interbotix ROS 2 stack.*'dynamixel' or 'mock'"):
        wx.make_backend("interbotix")


# --------------------------------------------------------------------------- URDF and RViz


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
    chain, link = [], wx.EE_FRAME
    while link != wx.BASE_FRAME:
        chain.append(by_child[link])
        link = by_child[link].find("parent").get("link")
    T = np.eye(4)
    for joint in reversed(chain):
        T = T @ _origin(joint)
        if joint.get("type") == "revolute":
            axis = np.array([float(v) for v in joint.find("axis").get("xyz").split()])
            R = np.eye(4)
            R[:3, :3] = Rotation.from_rotvec(axis * q[wx.JOINT_NAMES.index(joint.get("name"))]).as_matrix()
            T = T @ R
    return T


def test_urdf_matches_the_kinematics_names_and_limits():
    root, joints = _urdf_joints()
    assert root.get("name") == wx.ROBOT_MODEL
    links = {link.get("name") for link in root.findall("link")}
    for name in ("base_link", "shoulder_link", "upper_arm_link", "wrist_link", "gripper_link", "ee_gripper_link"):
        assert f"wx250s/{name}" in links
    revolute = [name for name, j in joints.items() if j.get("type") == "revolute"]
    assert tuple(revolute) == wx.JOINT_NAMES
    for i, name in enumerate(wx.JOINT_NAMES):
        limit = joints[name].find("limit")
        assert float(limit.get("lower")) == pytest.approx(wx.JOINT_LOWER[i], abs=1e-5)
        assert float(limit.get("upper")) == pytest.approx(wx.JOINT_UPPER[i], abs=1e-5)
    for name in wx.FINGER_NAMES:
        assert joints[name].get("type") == "prismatic"
        limit = joints[name].find("limit")
        assert (float(limit.get("lower")), float(limit.get("upper"))) == wx.FINGER_LIMITS
    np.testing.assert_allclose(_urdf_fk(joints, np.zeros(6)), wx.forward_kinematics(np.zeros(6)), atol=1e-9)
    for q in _random_joints(np.random.default_rng(3), 5):  # axes and offsets, not just the zero pose
        np.testing.assert_allclose(_urdf_fk(joints, q), wx.forward_kinematics(q), atol=1e-9)


def test_rviz_config_shows_the_robot_tf_and_camera_in_the_base_frame():
    config = yaml.safe_load(RVIZ_PATH.read_text())["Visualization Manager"]
    assert config["Global Options"]["Fixed Frame"] == wx.BASE_FRAME
    displays = {d["Class"]: d for d in config["Displays"]}
    assert displays["rviz_default_plugins/RobotModel"]["Description Topic"]["Value"] == "/robot_description"
    assert "rviz_default_plugins/TF" in displays
    # Relative, remapped to the camera topic by rviz.launch.py.
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "image"
