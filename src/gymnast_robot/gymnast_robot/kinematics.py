"""WidowX 250 6-DOF (wx250s) kinematics: frames, joint limits, forward and inverse kinematics,
and the pose conventions that Bridge actions use.

Plain Python (no rclpy), so ROS nodes can wrap it and tests run without ROS.

Conventions (pinned by test/gymnast_robot/test_kinematics.py):

* Space frame = ``wx250s/base_link``: x forward, y left, z up. The end effector is
  ``wx250s/ee_gripper_link``; at zero joints it sits at ``HOME_EE_POSE`` (identity rotation),
  so the gripper's approach axis is base +x.
* Pose 6-vector ``[x, y, z, roll, pitch, yaw]`` with
  ``R = Rotation.from_euler("xyz", [roll, pitch, yaw])``: extrinsic rotations about the base
  x, then y, then z axes, i.e. ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (ROS RPY). Near
  pitch = +-pi/2 (gripper pointing straight down) roll and yaw are degenerate.
* A Bridge delta ``[dx, dy, dz, droll, dpitch, dyaw]`` is applied in the BASE frame
  (``apply_delta``): ``p_new = p + [dx, dy, dz]`` and ``R_new = R_delta @ R`` with
  ``R_delta = Rotation.from_euler("xyz", [droll, dpitch, dyaw])`` (pre-multiplied, so it rotates
  about base axes through the end-effector point). With the gripper pointing forward a pure
  droll spins it about its own approach axis (wrist joints, never the waist).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.spatial.transform import Rotation


ROBOT_MODEL = "wx250s"
BASE_FRAME = "wx250s/base_link"
EE_FRAME = "wx250s/ee_gripper_link"
JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
FINGER_NAMES = ("left_finger", "right_finger")


def read_only_array(array) -> np.ndarray:
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
SCREW_AXES = read_only_array([[*w, *np.cross(q, w)] for w, q in _JOINT_AXES])
# End-effector pose at zero joints (the "M" of product-of-exponentials).
HOME_EE_POSE = read_only_array([[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1]])

JOINT_LOWER = read_only_array(np.deg2rad([-180, -108, -123, -180, -100, -180]))
JOINT_UPPER = read_only_array(np.deg2rad([180, 114, 92, 180, 123, 180]))
FINGER_LIMITS = (0.015, 0.037)  # metres, per finger: (closed, open)

SLEEP_JOINTS = read_only_array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
# Bridge start pose: gripper pointing forward at ~[0.3, 0, 0.15]; joints found by IK (test pins them).
START_POSE6 = read_only_array([0.3, 0.0, 0.15, 0.0, 0.0, 0.0])
HOME_JOINTS = read_only_array([0.0, -0.1410, 1.1775, 0.0, -1.0366, 0.0])


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
