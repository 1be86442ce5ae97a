"""The arm backends: the kinematic mock, the Dynamixel SDK driver over a fake bus, and the Interbotix wrapper's error."""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np
import pytest

from gymnast_robot import backends, kinematics


class _FakeBus:
    """Just enough of dynamixel_sdk for DynamixelBackend: a dict of (motor id, address) registers."""

    COMM_SUCCESS, COMM_RX_TIMEOUT = 0, -3001

    def __init__(self):
        self.regs = {(i, backends.ADDR_PRESENT_POSITION): 2048 for i in backends.MOTOR_IDS.values()}
        self.regs[(7, backends.ADDR_HARDWARE_ERROR_STATUS)] = 1 << 5  # wrist_angle overloaded
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
                bus.regs[(i, backends.ADDR_HARDWARE_ERROR_STATUS)] = 0
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
                    bus.regs[(i, self.addr)] = bus.regs[(i, backends.ADDR_PRESENT_POSITION)] = value
                return bus.COMM_SUCCESS

        self.PortHandler, self.GroupSyncRead, self.GroupSyncWrite = Port, SyncRead, SyncWrite
        self.PacketHandler = lambda version: Packet()


def test_mock_backend_moves_at_bounded_speed_and_converges():
    arm = backends.MockBackend(clock=None, max_joint_speed=3.0)
    goal = kinematics.HOME_JOINTS + np.array([0.5, -0.2, 0.3, 0.4, 0.2, -0.6])
    arm.command(goal, gripper=0.0)
    arm.tick(0.1)
    assert np.abs(arm.read_joints() - kinematics.HOME_JOINTS).max() == pytest.approx(0.3)
    for _ in range(5):
        arm.tick(0.1)
    np.testing.assert_allclose(arm.read_joints(), goal, atol=1e-9)
    assert arm.read_gripper() == pytest.approx(kinematics.FINGER_LIMITS[0])
    arm.inject_error("elbow")
    arm.command(kinematics.HOME_JOINTS, 1.0)
    arm.tick(1.0)
    assert arm.read_joints()[2] == pytest.approx(goal[2])
    assert arm.recover() == ["rebooted elbow (mock overload) and re-enabled torque"]
    arm.tick(1.0)
    np.testing.assert_allclose(arm.read_joints(), kinematics.HOME_JOINTS, atol=1e-9)
    assert arm.read_gripper() == pytest.approx(kinematics.FINGER_LIMITS[1])
    arm.close()
    assert not arm.torque_enabled


def test_make_backend_builds_by_name_and_rejects_unknown_names():
    assert isinstance(backends.make_backend("mock", clock=None), backends.MockBackend)
    with pytest.raises(ValueError, match=r"'nope'.*mock, dynamixel, interbotix"):
        backends.make_backend("nope")


def test_dynamixel_backend_names_port_baud_and_missing_ids_when_nothing_answers():
    pytest.importorskip("dynamixel_sdk")
    master, slave = os.openpty()  # a serial port with no motors behind it
    try:
        path = os.ttyname(slave)
        start = time.monotonic()
        with pytest.raises(backends.MotorsNotFoundError) as info:
            backends.DynamixelBackend(port=path, baud=1_000_000)
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
    with pytest.raises(backends.DynamixelError, match="/dev/ttyNO_SUCH_U2D2"):
        backends.DynamixelBackend(port="/dev/ttyNO_SUCH_U2D2")


def test_dynamixel_backend_commands_reads_and_recovers_over_a_fake_bus(monkeypatch):
    bus = _FakeBus()
    monkeypatch.setitem(__import__("sys").modules, "dynamixel_sdk", bus)
    monkeypatch.setattr(backends, "REBOOT_WAIT_S", 0.0)
    arm = backends.DynamixelBackend(port="/dev/fake", gripper_open_ticks=3000, gripper_closed_ticks=2000)
    assert bus.regs[(9, backends.ADDR_OPERATING_MODE)] == backends.POSITION_MODE
    assert all(bus.regs[(i, backends.ADDR_TORQUE_ENABLE)] == 1 for i in backends.MOTOR_IDS.values())
    np.testing.assert_allclose(arm.read_joints(), np.zeros(6))
    goal = np.array([0.5, -1.0, 1.2, -3.0, 0.3, 2.0])
    arm.command(goal, gripper=0.0)
    np.testing.assert_allclose(arm.read_joints(), goal, atol=2 * np.pi / 4096)  # one tick
    assert bus.regs[(1, backends.ADDR_PRESENT_POSITION)] == 2048 + round(0.5 * 4096 / (2 * np.pi))
    goals = {i for i, addr in bus.regs if addr == backends.ADDR_GOAL_POSITION}
    assert goals == {1, 2, 4, 6, 7, 8, 9}  # shadows (3, 5) follow their master in firmware
    assert arm.read_gripper() == pytest.approx(kinematics.FINGER_LIMITS[0])
    messages = arm.recover()
    assert bus.rebooted == [7] and len(messages) == 1 and "overload" in messages[0] and "wrist_angle" in messages[0]
    arm.close()
    assert all(bus.regs[(i, backends.ADDR_TORQUE_ENABLE)] == 0 for i in backends.MOTOR_IDS.values())


@pytest.mark.skipif(
    importlib.util.find_spec("interbotix_xs_modules") is not None, reason="Interbotix stack is installed"
)


def test_interbotix_backend_without_the_ros_stack_says_what_to_do():
    with pytest.raises(ImportError, match=r"Interbotix ROS 2 stack.*'dynamixel' or 'mock'"):
        backends.make_backend("interbotix")
