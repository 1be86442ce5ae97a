"""Bridge actions to WidowX joint commands: validation, the workspace clamp and the commanded target.

An action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` is a base-frame delta of the end
effector (``kinematics.apply_delta``) and an absolute gripper command, 1 open and 0 closed.
Plain Python (no rclpy); tests in test/gymnast_robot/test_arm_target.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_robot.kinematics import (HOME_JOINTS, apply_delta, clip_joints, forward_kinematics, inverse_kinematics,
                                      pose_to_xyzrpy, read_only_array, xyzrpy_to_pose)


ACTION_NAMES = BRIDGE_ACTION_SPEC.names
ACTION_LOW = read_only_array(BRIDGE_ACTION_SPEC.low)
ACTION_HIGH = read_only_array(BRIDGE_ACTION_SPEC.high)
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
