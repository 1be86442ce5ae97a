"""WidowX 250 6-DOF (wx250s): kinematics, Bridge action semantics and hardware backends.

Plain Python (no rclpy), so ROS nodes can wrap it and tests run without ROS.

Conventions (pinned by test/gymnast_robot/test_widowx.py):

* Space frame = ``wx250s/base_link``: x forward, y left, z up. The end effector is
  ``wx250s/ee_gripper_link``; at zero joints it sits at ``HOME_EE_POSE`` (identity rotation),
  so the gripper's approach axis is base +x.
* Pose 6-vector ``[x, y, z, roll, pitch, yaw]`` with
  ``R = Rotation.from_euler("xyz", [roll, pitch, yaw])``: extrinsic rotations about the base
  x, then y, then z axes, i.e. ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (ROS RPY). Near
  pitch = +-pi/2 (gripper pointing straight down) roll and yaw are degenerate.
* A Bridge action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` is a delta in the BASE frame:
  ``p_new = p + [dx, dy, dz]`` and ``R_new = R_delta @ R`` with
  ``R_delta = Rotation.from_euler("xyz", [droll, dpitch, dyaw])`` (pre-multiplied, so it rotates
  about base axes through the end-effector point). With the gripper pointing forward a pure
  droll spins it about its own approach axis (wrist joints, never the waist).
  ``gripper`` is absolute: 1 open, 0 closed.
"""

from __future__ import annotations

import abc
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC

# --------------------------------------------------------------------------- geometry

ROBOT_MODEL = "wx250s"
BASE_FRAME = "wx250s/base_link"
EE_FRAME = "wx250s/ee_gripper_link"
JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
FINGER_NAMES = ("left_finger", "right_finger")


def _frozen(array) -> np.ndarray:
    """Module-level arrays are read-only so no caller can corrupt the robot model by accident."""
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


# Joint axes at zero joints in the base frame: (unit direction w, a point q on the axis).
# Interbotix mr_descriptions for wx250s.
_JOINT_AXES = (
    ((0, 0, 1), (0, 0, 0)),  # waist
    ((0, 1, 0), (0, 0, 0.11065)),  # shoulder
    ((0, 1, 0), (0.04975, 0, 0.36065)),  # elbow
    ((1, 0, 0), (0, 0, 0.36065)),  # forearm_roll
    ((0, 1, 0), (0.29975, 0, 0.36065)),  # wrist_angle
    ((1, 0, 0), (0, 0, 0.36065)),  # wrist_rotate
)
# Space-frame screw axes, one row [w, v] per joint, v = -w x q (a pure rotation about the axis).
SCREW_AXES = _frozen([[*w, *np.cross(q, w)] for w, q in _JOINT_AXES])
# End-effector pose at zero joints (the "M" of product-of-exponentials).
HOME_EE_POSE = _frozen([[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1]])

JOINT_LOWER = _frozen(np.deg2rad([-180, -108, -123, -180, -100, -180]))
JOINT_UPPER = _frozen(np.deg2rad([180, 114, 92, 180, 123, 180]))
FINGER_LIMITS = (0.015, 0.037)  # metres, per finger: (closed, open)

SLEEP_JOINTS = _frozen([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
# Bridge start pose: gripper pointing forward at ~[0.3, 0, 0.15]; joints found by IK (test pins them).
START_POSE6 = _frozen([0.3, 0.0, 0.15, 0.0, 0.0, 0.0])
HOME_JOINTS = _frozen([0.0, -0.1410, 1.1775, 0.0, -1.0366, 0.0])


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _screw_exp(screw: np.ndarray, theta: float) -> np.ndarray:
    """exp([S] theta) for a revolute screw with unit w (Rodrigues; cheaper than a general expm)."""
    w, v = screw[:3], screw[3:]
    W = _skew(w)
    s, c = math.sin(theta), math.cos(theta)
    T = np.eye(4)
    T[:3, :3] = np.eye(3) + s * W + (1 - c) * W @ W
    T[:3, 3] = (theta * np.eye(3) + (1 - c) * W + (theta - s) * W @ W) @ v
    return T


def _as_joints(joints) -> np.ndarray:
    q = np.asarray(joints, dtype=np.float64)
    if q.shape != (6,):
        raise ValueError(f"expected 6 joint angles ({', '.join(JOINT_NAMES)}), got shape {q.shape}")
    return q


def clip_joints(joints) -> np.ndarray:
    return np.clip(_as_joints(joints), JOINT_LOWER, JOINT_UPPER)


def _fk_with_jacobian(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EE pose and the 6x6 Jacobian mapping joint rates to [angular velocity; EE-point velocity], base frame."""
    T = np.eye(4)
    J = np.empty((6, 6))
    for i, (screw, theta) in enumerate(zip(SCREW_AXES, q)):
        R, p = T[:3, :3], T[:3, 3]
        w = R @ screw[:3]
        J[:3, i] = w
        J[3:, i] = R @ screw[3:] + np.cross(p, w)  # space-Jacobian linear part
        T = T @ _screw_exp(screw, theta)
    T = T @ HOME_EE_POSE
    # Velocity of the EE point: v_s + w x p (the space twist is referred to the base origin).
    J[3:] += np.cross(J[:3].T, T[:3, 3]).T
    return T, J


def forward_kinematics(joints) -> np.ndarray:
    """4x4 pose of ``wx250s/ee_gripper_link`` in ``wx250s/base_link`` (product of exponentials)."""
    T = np.eye(4)
    for screw, theta in zip(SCREW_AXES, _as_joints(joints)):
        T = T @ _screw_exp(screw, theta)
    return T @ HOME_EE_POSE


def _pose_error(target: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[rotation vector of R_target R^T; p_target - p], both in the base frame."""
    rot = Rotation.from_matrix(target[:3, :3] @ T[:3, :3].T).as_rotvec()
    return np.concatenate([rot, target[:3, 3] - T[:3, 3]])


def inverse_kinematics(
    target,
    seed,
    *,
    pos_tol: float = 1e-3,
    rot_tol: float = 1e-2,
    max_iters: int = 100,
    damping: float = 1e-2,
    max_step: float = 0.3,
) -> tuple[np.ndarray, bool]:
    """Joints reaching ``target`` (4x4) by damped-least-squares Newton steps from ``seed``.

    Joints stay within limits throughout. Returns ``(joints, ok)``; ``ok`` is False when the
    final error exceeds ``pos_tol`` metres or ``rot_tol`` radians (unreachable, limits, or a
    bad seed). Seed with the last joint command so successive solutions stay on one branch.
    """
    target = np.asarray(target, dtype=np.float64)
    q = clip_joints(seed)
    for _ in range(max_iters):
        T, J = _fk_with_jacobian(q)
        err = _pose_error(target, T)
        # Iterate well past the tolerances: it costs microseconds and leaves no bias to accumulate.
        if np.linalg.norm(err[3:]) < pos_tol * 1e-2 and np.linalg.norm(err[:3]) < rot_tol * 1e-2:
            break
        # Damping keeps steps bounded near singularities (e.g. forearm_roll || wrist_rotate).
        dq = J.T @ np.linalg.solve(J @ J.T + damping**2 * np.eye(6), err)
        dq *= min(1.0, max_step / max(np.abs(dq).max(), 1e-12))
        q = np.clip(q + dq, JOINT_LOWER, JOINT_UPPER)
    err = _pose_error(target, forward_kinematics(q))
    return q, bool(np.linalg.norm(err[3:]) <= pos_tol and np.linalg.norm(err[:3]) <= rot_tol)


# --------------------------------------------------------------------------- poses and actions


def pose_to_xyzrpy(pose) -> np.ndarray:
    """4x4 -> [x, y, z, roll, pitch, yaw] (extrinsic "xyz" Euler angles, see module docstring)."""
    pose = np.asarray(pose, dtype=np.float64)
    with warnings.catch_warnings():  # gimbal lock is documented, not worth a warning per step
        warnings.simplefilter("ignore", UserWarning)
        rpy = Rotation.from_matrix(pose[:3, :3]).as_euler("xyz")
    return np.concatenate([pose[:3, 3], rpy])


def xyzrpy_to_pose(pose6) -> np.ndarray:
    """[x, y, z, roll, pitch, yaw] -> 4x4."""
    pose6 = np.asarray(pose6, dtype=np.float64)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", pose6[3:6]).as_matrix()
    T[:3, 3] = pose6[:3]
    return T


def apply_delta(pose, delta6) -> np.ndarray:
    """Bridge semantics: translate by delta[:3] and pre-multiply by from_euler("xyz", delta[3:]) (base frame)."""
    pose, delta6 = np.asarray(pose, dtype=np.float64), np.asarray(delta6, dtype=np.float64)
    out = pose.copy()
    out[:3, 3] += delta6[:3]
    out[:3, :3] = Rotation.from_euler("xyz", delta6[3:6]).as_matrix() @ pose[:3, :3]
    return out


ACTION_NAMES = BRIDGE_ACTION_SPEC.names
ACTION_LOW = _frozen(BRIDGE_ACTION_SPEC.low)
ACTION_HIGH = _frozen(BRIDGE_ACTION_SPEC.high)
_BOUND_SLACK = 1e-6  # float32 policy outputs of exactly +-0.05 round to just outside


def validate_action(action) -> np.ndarray:
    """Return the action as float64 (7,) or raise ValueError naming the offending dimension."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (7,):
        raise ValueError(f"action must have shape (7,) [{', '.join(ACTION_NAMES)}], got shape {a.shape}")
    for i, (name, value, lo, hi) in enumerate(zip(ACTION_NAMES, a, ACTION_LOW, ACTION_HIGH)):
        if not math.isfinite(value):
            raise ValueError(f"action[{i}] ({name}) is not finite: {value}")
        if not lo - _BOUND_SLACK <= value <= hi + _BOUND_SLACK:
            raise ValueError(f"action[{i}] ({name}) = {value:.4g} is outside the Bridge bounds [{lo:g}, {hi:g}]")
    return a


@dataclass(frozen=True)
class Workspace:
    """Box on the EE position (base frame, metres) plus a bound on |roll| (Bridge's safety clamp)."""

    low: tuple[float, float, float] = (0.1, -0.15, -0.1)
    high: tuple[float, float, float] = (0.45, 0.25, 0.18)
    max_abs_roll: float = 1.57

    def clamp(self, pose6) -> tuple[np.ndarray, bool]:
        """Clamp [x, y, z, roll, pitch, yaw] into the workspace; ``violated`` says whether anything moved."""
        pose6 = np.asarray(pose6, dtype=np.float64)
        clamped = pose6.copy()
        clamped[:3] = np.clip(pose6[:3], self.low, self.high)
        clamped[3] = np.clip(pose6[3], -self.max_abs_roll, self.max_abs_roll)
        return clamped, bool(np.any(clamped != pose6))

    def clamp_pose(self, pose) -> tuple[np.ndarray, bool]:
        """Same on a 4x4; the rotation is rebuilt from Euler angles only when roll had to be clamped."""
        pose6 = pose_to_xyzrpy(pose)
        clamped6, violated = self.clamp(pose6)
        out = np.array(pose, dtype=np.float64)
        out[:3, 3] = clamped6[:3]
        if clamped6[3] != pose6[3]:
            out[:3, :3] = xyzrpy_to_pose(clamped6)[:3, :3]
        return out, violated


BRIDGE_WORKSPACE = Workspace()


@dataclass(frozen=True)
class JointCommand:
    """What one action turned into: send ``joints`` and ``gripper`` to an ArmBackend."""

    joints: np.ndarray  # (6,) radians, JOINT_NAMES order
    gripper: float  # 1 open .. 0 closed
    target: np.ndarray  # 4x4 commanded EE target after clamping (the pose the joints reach)
    workspace_violation: bool  # the accumulated target left the workspace and was clamped
    ik_ok: bool  # False: the previous joint command was kept (motion stopped)
    reason: str = ""  # human-readable note when something was clamped or refused


class ArmTarget:
    """Turns Bridge actions into joint commands.

    Actions accumulate onto the COMMANDED EE target, never the re-measured pose: measured
    poses sag under gravity and servo error, and integrating them would drift. IK is seeded
    with the last joint command so solutions stay on one branch.

    Gripper: absolute, 1 open / 0 closed. With ``gripper_threshold`` (default 0.5) the
    command is binarised (>= threshold -> 1.0 open, else 0.0 closed), as Bridge policies'
    continuous outputs hover mid-range; ``gripper_threshold=None`` passes it proportionally.

    ``max_joint_step`` (rad) refuses IK solutions that jump (branch flips, or a start pose far
    outside the workspace being clamped back in one step); reset to a start pose first.
    """

    def __init__(
        self,
        joints=HOME_JOINTS,
        *,
        workspace: Workspace = BRIDGE_WORKSPACE,
        gripper: float = 1.0,
        gripper_threshold: float | None = 0.5,
        max_joint_step: float = 1.0,
    ):
        self.workspace = workspace
        self.gripper_threshold = gripper_threshold
        self.max_joint_step = max_joint_step
        self.reset(joints, gripper)

    def reset(self, joints, gripper: float | None = None) -> None:
        """Re-anchor the target at the measured joints (episode start, after recovery or teleop)."""
        self._joints = clip_joints(joints)
        self._target = forward_kinematics(self._joints)
        if gripper is not None:
            self._gripper = float(np.clip(gripper, 0.0, 1.0))

    @property
    def target(self) -> np.ndarray:
        return self._target.copy()

    @property
    def joints(self) -> np.ndarray:
        return self._joints.copy()

    @property
    def gripper(self) -> float:
        return self._gripper

    def apply(self, action) -> JointCommand:
        a = validate_action(action)
        if self.gripper_threshold is None:
            self._gripper = float(a[6])
        else:
            self._gripper = 1.0 if a[6] >= self.gripper_threshold else 0.0
        # A violation stops motion at the boundary: the clamped target is what gets stored.
        target, violated = self.workspace.clamp_pose(apply_delta(self._target, a[:6]))
        joints, ok = inverse_kinematics(target, self._joints)
        reasons = ["target clamped to the workspace"] if violated else []
        if ok and np.abs(joints - self._joints).max() > self.max_joint_step:
            ok = False
            reasons.append(f"IK solution jumps more than {self.max_joint_step} rad; holding position")
        elif not ok:
            reasons.append("IK did not converge (unreachable or at joint limits); holding position")
        if ok:
            self._joints, self._target = joints, target
        return JointCommand(self.joints, self._gripper, self.target, violated, ok, "; ".join(reasons))


# --------------------------------------------------------------------------- backends


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
