"""WidowX arm backends behind one small interface: a kinematic mock, the Robotis Dynamixel SDK
directly (U2D2, protocol 2.0), and the Interbotix ROS 2 stack. Joints in JOINT_NAMES order, radians.

Plain Python (no rclpy); tests in test/gymnast_robot/test_backends.py.
"""

from __future__ import annotations

import abc
import math
import time
from typing import Callable

import numpy as np

from gymnast_robot.kinematics import FINGER_LIMITS, HOME_JOINTS, JOINT_NAMES, ROBOT_MODEL, clip_joints


class ArmBackend(abc.ABC):
    """The smallest interface a WidowX driver needs. Joints in JOINT_NAMES order, radians."""

    @abc.abstractmethod
    def read_joints(self) -> np.ndarray:
        """Measured arm joint positions, shape (6,)."""

    @abc.abstractmethod
    def read_gripper(self) -> float:
        """Measured finger position in metres (FINGER_LIMITS: 0.015 closed .. 0.037 open)."""

    @abc.abstractmethod
    def command(self, joints, gripper: float) -> None:
        """Send joint targets (6,) and a gripper opening (1 open .. 0 closed); non-blocking."""

    @abc.abstractmethod
    def torque(self, enabled: bool) -> None:
        """Enable or disable torque on all motors (disabled: the arm falls, hold it)."""

    @abc.abstractmethod
    def recover(self) -> list[str]:
        """Reboot motors in a hardware-error state and re-enable them; returns what was done."""

    @abc.abstractmethod
    def close(self) -> None:
        """Torque off and release the hardware. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _finger_from_opening(opening: float) -> float:
    closed, open_ = FINGER_LIMITS
    return closed + float(np.clip(opening, 0.0, 1.0)) * (open_ - closed)


class MockBackend(ArmBackend):
    """A kinematic arm: each joint moves toward its command at ``max_joint_speed`` rad/s.

    Time advances with ``clock`` (time.monotonic by default) on every read, and/or explicitly
    with ``tick(dt)``; pass ``clock=None`` for a deterministic, tick-only arm in tests.
    ``inject_error(joint)`` freezes a joint until ``recover()``, like a Dynamixel overload.
    """

    def __init__(
        self,
        joints=HOME_JOINTS,
        *,
        gripper: float = 1.0,
        max_joint_speed: float = 3.0,
        max_finger_speed: float = 0.1,
        clock: Callable[[], float] | None = time.monotonic,
    ):
        self._joints = clip_joints(joints)
        self._goal = self._joints.copy()
        self._finger = self._finger_goal = _finger_from_opening(gripper)
        self.max_joint_speed, self.max_finger_speed = max_joint_speed, max_finger_speed
        self._clock = clock
        self._last = clock() if clock else 0.0
        self.torque_enabled = True
        self.faulted: set[str] = set()
        self.closed = False

    def tick(self, dt: float) -> None:
        if not self.torque_enabled or dt <= 0:
            return
        step = np.clip(self._goal - self._joints, -self.max_joint_speed * dt, self.max_joint_speed * dt)
        step[[JOINT_NAMES.index(name) for name in self.faulted]] = 0.0
        self._joints += step
        df = self.max_finger_speed * dt
        self._finger += float(np.clip(self._finger_goal - self._finger, -df, df))

    def _advance(self) -> None:
        if self._clock is not None:
            now = self._clock()
            self.tick(now - self._last)
            self._last = now

    def read_joints(self) -> np.ndarray:
        self._advance()
        return self._joints.copy()

    def read_gripper(self) -> float:
        self._advance()
        return self._finger

    def command(self, joints, gripper: float) -> None:
        self._advance()  # motion so far happened toward the previous goal
        self._goal = clip_joints(joints)
        self._finger_goal = _finger_from_opening(gripper)

    def torque(self, enabled: bool) -> None:
        self._advance()
        self.torque_enabled = bool(enabled)

    def inject_error(self, joint: str) -> None:
        if joint not in JOINT_NAMES:
            raise ValueError(f"unknown joint {joint!r}; expected one of {JOINT_NAMES}")
        self.faulted.add(joint)

    def recover(self) -> list[str]:
        done = [f"rebooted {name} (mock overload) and re-enabled torque" for name in sorted(self.faulted)]
        self.faulted.clear()
        return done

    def close(self) -> None:
        self.torque(False)
        self.closed = True


# Dynamixel X-series, protocol 2.0 control table.
ADDR_OPERATING_MODE = 11
ADDR_TORQUE_ENABLE = 64
ADDR_HARDWARE_ERROR_STATUS = 70
ADDR_PROFILE_VELOCITY = 112
ADDR_GOAL_POSITION = 116
ADDR_PRESENT_POSITION = 132
POSITION_MODE = 3
TICKS_PER_REV = 4096
CENTER_TICKS = 2048  # 0 rad
HARDWARE_ERROR_BITS = {
    0: "input voltage",
    2: "overheating",
    3: "motor encoder",
    4: "electrical shock",
    5: "overload",
}
# wx250s motor IDs. Shadows mirror their master in firmware (secondary ID), so they are pinged,
# torqued and rebooted but never sent goal positions.
MOTOR_IDS = {
    "waist": 1,
    "shoulder": 2,
    "shoulder_shadow": 3,
    "elbow": 4,
    "elbow_shadow": 5,
    "forearm_roll": 6,
    "wrist_angle": 7,
    "wrist_rotate": 8,
    "gripper": 9,
}
ARM_MOTOR_IDS = tuple(MOTOR_IDS[name] for name in JOINT_NAMES)
GRIPPER_MOTOR_ID = MOTOR_IDS["gripper"]
DEFAULT_PORT = "/dev/ttyDXL"  # Interbotix udev rule's link to the U2D2
DEFAULT_BAUD = 1_000_000
# Gripper motor goal ticks for open / closed in position mode. Placeholders: calibrate per robot
# (read present position by hand with torque off) and pass them to DynamixelBackend.
GRIPPER_OPEN_TICKS = 2900
GRIPPER_CLOSED_TICKS = 1950
REBOOT_WAIT_S = 0.5


class DynamixelError(RuntimeError):
    """A Dynamixel port or bus failure."""


class MotorsNotFoundError(DynamixelError):
    """Some motor IDs did not answer a ping."""

    def __init__(self, port: str, baud: int, missing_ids: list[int]):
        self.port, self.baud, self.missing_ids = port, baud, list(missing_ids)
        names = {v: k for k, v in MOTOR_IDS.items()}
        missing = ", ".join(f"{i} ({names.get(i, '?')})" for i in missing_ids)
        super().__init__(
            f"Dynamixel motor IDs {missing} did not answer on port {port} at {baud} baud. "
            "Check that the arm's 12 V power supply is on, the U2D2 is plugged in and connected to the arm, "
            f"and that the motors use {baud} baud (Interbotix ships 1000000); "
            "another process (e.g. the Interbotix driver) must not hold the port."
        )


def _ticks_to_rad(ticks: int) -> float:
    return (ticks - CENTER_TICKS) * 2 * math.pi / TICKS_PER_REV


def _rad_to_ticks(rad: float) -> int:
    return int(round(CENTER_TICKS + rad * TICKS_PER_REV / (2 * math.pi)))


class DynamixelBackend(ArmBackend):
    """Direct driver over the Robotis ``dynamixel_sdk`` (protocol 2.0, U2D2, X-series motors).

    Opens ``port`` at ``baud``, pings every wx250s ID (raising MotorsNotFoundError listing the
    silent ones), puts the gripper in position mode and enables torque. Arm joints are read and
    written with one group sync read / write per call.
    """

    def __init__(
        self,
        port: str = DEFAULT_PORT,
        baud: int = DEFAULT_BAUD,
        *,
        gripper_open_ticks: int = GRIPPER_OPEN_TICKS,
        gripper_closed_ticks: int = GRIPPER_CLOSED_TICKS,
        profile_velocity: int = 131,  # smooths 5 Hz set-points; 0 = firmware max speed
        enable_torque: bool = True,
    ):
        try:
            import dynamixel_sdk as sdk
        except ImportError as exc:
            raise ImportError("DynamixelBackend needs the Robotis SDK: pip install dynamixel-sdk") from exc
        self._sdk = sdk
        self.port_name, self.baud = port, baud
        self.gripper_open_ticks, self.gripper_closed_ticks = gripper_open_ticks, gripper_closed_ticks
        self._port = sdk.PortHandler(port)
        self._packet = sdk.PacketHandler(2.0)
        try:
            self._port.openPort()
            baud_ok = self._port.setBaudRate(baud)
        except (OSError, ValueError) as exc:
            raise DynamixelError(
                f"cannot open Dynamixel port {port}: {exc}. Is the U2D2 plugged in, does the udev link exist "
                "(Interbotix installs /dev/ttyDXL), and is your user in the dialout group?"
            ) from exc
        if not baud_ok:
            self._port.closePort()
            raise DynamixelError(f"baud rate {baud} is not supported by dynamixel_sdk on port {port}")
        missing = [i for i in MOTOR_IDS.values() if self._packet.ping(self._port, i)[1] != sdk.COMM_SUCCESS]
        if missing:
            self._port.closePort()
            raise MotorsNotFoundError(port, baud, missing)
        self._reader = sdk.GroupSyncRead(self._port, self._packet, ADDR_PRESENT_POSITION, 4)
        for i in (*ARM_MOTOR_IDS, GRIPPER_MOTOR_ID):
            self._reader.addParam(i)
        self._writer = sdk.GroupSyncWrite(self._port, self._packet, ADDR_GOAL_POSITION, 4)
        try:
            if self._read(GRIPPER_MOTOR_ID, ADDR_OPERATING_MODE, 1) != POSITION_MODE:
                # Operating mode lives in EEPROM and can only change with torque off; the gripper
                # (PWM mode under Interbotix) holds nothing, so switching it is safe.
                self._write(GRIPPER_MOTOR_ID, ADDR_TORQUE_ENABLE, 1, 0)
                self._write(GRIPPER_MOTOR_ID, ADDR_OPERATING_MODE, 1, POSITION_MODE)
            for i in ARM_MOTOR_IDS:
                self._write(i, ADDR_PROFILE_VELOCITY, 4, profile_velocity)
            if enable_torque:
                self.torque(True)
        except Exception:
            self._port.closePort()  # leave the port free for the next attempt
            raise
        self._open = True

    def _check(self, what: str, result: int, error: int = 0) -> None:
        if result != self._sdk.COMM_SUCCESS:
            raise DynamixelError(f"{what} on {self.port_name}: {self._packet.getTxRxResult(result)}")
        if error:
            raise DynamixelError(f"{what} on {self.port_name}: {self._packet.getRxPacketError(error)}")

    def _read(self, motor_id: int, address: int, size: int) -> int:
        fn = {1: self._packet.read1ByteTxRx, 4: self._packet.read4ByteTxRx}[size]
        value, result, error = fn(self._port, motor_id, address)
        self._check(f"reading address {address} of motor {motor_id}", result, error)
        return value

    def _write(self, motor_id: int, address: int, size: int, value: int) -> None:
        fn = {1: self._packet.write1ByteTxRx, 4: self._packet.write4ByteTxRx}[size]
        result, error = fn(self._port, motor_id, address, value)
        self._check(f"writing address {address} of motor {motor_id}", result, error)

    def _read_ticks(self) -> dict[int, int]:
        self._check("sync-reading present positions", self._reader.txRxPacket())
        ticks = {}
        for i in (*ARM_MOTOR_IDS, GRIPPER_MOTOR_ID):
            if not self._reader.isAvailable(i, ADDR_PRESENT_POSITION, 4):
                raise DynamixelError(f"motor {i} sent no present position on {self.port_name}")
            raw = self._reader.getData(i, ADDR_PRESENT_POSITION, 4)
            ticks[i] = raw - (1 << 32) if raw & (1 << 31) else raw  # int32 register
        return ticks

    def read_joints(self) -> np.ndarray:
        ticks = self._read_ticks()
        return np.array([_ticks_to_rad(ticks[i]) for i in ARM_MOTOR_IDS])

    def read_gripper(self) -> float:
        # Linear between the calibrated tick values: an approximation of the finger linkage.
        frac = (self._read_ticks()[GRIPPER_MOTOR_ID] - self.gripper_closed_ticks) / (
            self.gripper_open_ticks - self.gripper_closed_ticks
        )
        return _finger_from_opening(frac)

    def command(self, joints, gripper: float) -> None:
        goals = [_rad_to_ticks(q) for q in clip_joints(joints)]
        g = float(np.clip(gripper, 0.0, 1.0))
        goals.append(int(round(self.gripper_closed_ticks + g * (self.gripper_open_ticks - self.gripper_closed_ticks))))
        self._writer.clearParam()
        for i, goal in zip((*ARM_MOTOR_IDS, GRIPPER_MOTOR_ID), goals):
            self._writer.addParam(i, list(int(goal).to_bytes(4, "little", signed=True)))
        self._check("sync-writing goal positions", self._writer.txPacket())

    def torque(self, enabled: bool) -> None:
        for i in MOTOR_IDS.values():
            self._write(i, ADDR_TORQUE_ENABLE, 1, int(bool(enabled)))

    def recover(self) -> list[str]:
        names = {v: k for k, v in MOTOR_IDS.items()}
        done = []
        for i, name in names.items():
            status, result, _ = self._packet.read1ByteTxRx(self._port, i, ADDR_HARDWARE_ERROR_STATUS)
            if result != self._sdk.COMM_SUCCESS:
                done.append(f"motor {i} ({name}) did not answer: {self._packet.getTxRxResult(result)}")
                continue
            if not status:
                continue
            causes = [label for bit, label in HARDWARE_ERROR_BITS.items() if status >> bit & 1] or [f"0x{status:02x}"]
            self._check(f"rebooting motor {i}", *self._packet.reboot(self._port, i))
            time.sleep(REBOOT_WAIT_S)  # the motor is deaf while it restarts
            self._write(i, ADDR_TORQUE_ENABLE, 1, 1)
            done.append(f"motor {i} ({name}): {', '.join(causes)} error; rebooted and re-enabled torque")
        return done

    def close(self) -> None:
        if not getattr(self, "_open", False):
            return
        try:
            self.torque(False)
        finally:
            self._open = False
            self._port.closePort()


class InterbotixBackend(ArmBackend):
    """Wraps ``InterbotixManipulatorXS`` from the Interbotix ROS 2 stack (not on PyPI).

    Its constructor blocks and starts a hidden global executor: create this backend once,
    inside our own driver node, and nowhere else.
    """

    def __init__(
        self,
        robot_model: str = ROBOT_MODEL,
        *,
        moving_time: float = 0.2,  # one 5 Hz control period: successive set-points blend
        accel_time: float = 0.05,
        gripper_threshold: float = 0.5,  # the Interbotix gripper is open/closed, not positional
        **kwargs,
    ):
        try:
            from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
        except ImportError as exc:
            raise ImportError(
                "InterbotixBackend needs interbotix_xs_modules, which is not on PyPI: install the Interbotix "
                "ROS 2 stack (interbotix_ros_manipulators, then source its workspace), or use backend "
                "'dynamixel' or 'mock'"
            ) from exc
        self._bot = InterbotixManipulatorXS(
            robot_model=robot_model, moving_time=moving_time, accel_time=accel_time, **kwargs
        )
        self.gripper_threshold = gripper_threshold
        self._gripper_open: bool | None = None

    def _joint_state(self) -> dict[str, float] | None:
        msg = getattr(self._bot.core, "joint_states", None)
        return None if msg is None else dict(zip(msg.name, msg.position))

    def read_joints(self) -> np.ndarray:
        state = self._joint_state()
        if state is None or not all(name in state for name in JOINT_NAMES):
            return np.asarray(self._bot.arm.get_joint_commands(), dtype=np.float64)  # no states yet
        return np.array([state[name] for name in JOINT_NAMES])

    def read_gripper(self) -> float:
        state = self._joint_state() or {}
        if "left_finger" in state:
            return float(state["left_finger"])
        return FINGER_LIMITS[1] if self._gripper_open in (None, True) else FINGER_LIMITS[0]

    def command(self, joints, gripper: float) -> None:
        self._bot.arm.set_joint_positions(clip_joints(joints).tolist(), blocking=False)
        want_open = gripper >= self.gripper_threshold
        if want_open != self._gripper_open:  # release()/grasp() re-publish; only send changes
            (self._bot.gripper.release if want_open else self._bot.gripper.grasp)(delay=0.0)
            self._gripper_open = want_open

    def torque(self, enabled: bool) -> None:
        self._bot.core.robot_torque_enable("group", "arm", bool(enabled))

    def recover(self) -> list[str]:
        self._bot.core.robot_reboot_motors("group", "arm", enable=True)
        return ["asked the Interbotix driver to reboot the arm group and re-enable torque"]

    def close(self) -> None:
        if self._bot is None:
            return
        try:
            self.torque(False)
        finally:
            if hasattr(self._bot, "shutdown"):
                self._bot.shutdown()
            self._bot = None


BACKENDS: dict[str, type[ArmBackend]] = {
    "mock": MockBackend,
    "dynamixel": DynamixelBackend,
    "interbotix": InterbotixBackend,
}


def make_backend(name: str, **kwargs) -> ArmBackend:
    """Build a backend by name ("mock", "dynamixel", "interbotix"); kwargs go to its constructor."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown arm backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None
    return cls(**kwargs)
