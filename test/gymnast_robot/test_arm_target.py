"""Bridge actions to joint commands: base-frame deltas on the commanded target, the workspace, validation, the gripper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gymnast_robot import arm_target, kinematics


def _action(**kw) -> np.ndarray:
    a = np.zeros(7)
    a[6] = 1.0
    for name, value in kw.items():
        a[arm_target.ACTION_NAMES.index(name)] = value
    return a


def test_home_joints_reach_the_bridge_start_pose_and_sleep_is_within_limits():
    np.testing.assert_allclose(kinematics.pose_to_xyzrpy(kinematics.forward_kinematics(kinematics.HOME_JOINTS)), kinematics.START_POSE6, atol=1e-3)
    assert not arm_target.BRIDGE_WORKSPACE.clamp(kinematics.START_POSE6)[1]
    assert np.all((kinematics.SLEEP_JOINTS >= kinematics.JOINT_LOWER) & (kinematics.SLEEP_JOINTS <= kinematics.JOINT_UPPER))
    np.testing.assert_allclose(np.rad2deg(kinematics.JOINT_LOWER[1:3]), [-108, -123])


def test_a_stream_of_actions_stays_on_target_with_ik_seeded_from_the_last_command():
    rng = np.random.default_rng(2)
    arm = arm_target.ArmTarget(kinematics.HOME_JOINTS)
    for _ in range(25):
        a = np.concatenate([rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05, 3), [1.0]])
        cmd = arm.apply(a)
        assert cmd.ik_ok, cmd.reason
        reached = kinematics.forward_kinematics(cmd.joints)
        assert np.linalg.norm(reached[:3, 3] - cmd.target[:3, 3]) < 1e-3


@pytest.mark.parametrize("name, axis", [("droll", 0), ("dpitch", 1), ("dyaw", 2)])
def test_rotation_deltas_premultiply_about_base_axes_around_the_gripper(name, axis):
    d = 0.2
    arm = arm_target.ArmTarget(kinematics.HOME_JOINTS)  # home orientation: gripper points along base +x
    before = kinematics.forward_kinematics(kinematics.HOME_JOINTS)
    cmd = arm.apply(_action(**{name: d}))
    assert cmd.ik_ok and not cmd.workspace_violation
    after = kinematics.forward_kinematics(cmd.joints)
    rot = np.zeros(3)
    rot[axis] = d
    expected = Rotation.from_rotvec(rot).as_matrix() @ before[:3, :3]
    assert Rotation.from_matrix(after[:3, :3] @ expected.T).magnitude() < 1e-2
    assert np.linalg.norm(after[:3, 3] - before[:3, 3]) < 1e-3
    if name == "droll":
        # Roll about the approach axis is a wrist motion; a yawing waist is the classic frame bug.
        dq = cmd.joints - kinematics.HOME_JOINTS
        assert abs(dq[0]) < 1e-3
        assert abs(dq[3] + dq[5]) == pytest.approx(d, abs=1e-2)
    if name == "dyaw":
        # Yawing about the fingertips swings the wrist centre the other way; the waist follows it.
        wrist_centre = after[:3, 3] - after[:3, 0] * (kinematics.HOME_EE_POSE[0, 3] - 0.29975)
        assert cmd.joints[0] == pytest.approx(np.arctan2(wrist_centre[1], wrist_centre[0]), abs=1e-3)
        assert cmd.joints[0] < 0


def test_translation_deltas_are_in_the_base_frame_and_targets_accumulate():
    arm = arm_target.ArmTarget(kinematics.HOME_JOINTS)
    arm.apply(_action(dx=0.02, dy=-0.01, dz=-0.03))
    cmd = arm.apply(_action(dx=0.02, dy=-0.01, dz=-0.03))
    np.testing.assert_allclose(cmd.target[:3, 3], kinematics.START_POSE6[:3] + [0.04, -0.02, -0.06], atol=1e-3)
    np.testing.assert_allclose(kinematics.forward_kinematics(cmd.joints)[:3, 3], cmd.target[:3, 3], atol=1e-3)


def test_workspace_violation_stops_at_the_boundary_without_raising():
    arm = arm_target.ArmTarget(kinematics.HOME_JOINTS)  # z = 0.15; the ceiling is 0.18
    cmd = arm.apply(_action(dz=0.05))
    assert cmd.workspace_violation and cmd.ik_ok and "workspace" in cmd.reason
    assert cmd.target[2, 3] == pytest.approx(0.18)
    again = arm.apply(_action(dz=0.05))
    assert again.workspace_violation
    np.testing.assert_allclose(again.joints, cmd.joints, atol=1e-6)
    back = arm.apply(_action(dz=-0.05))
    assert not back.workspace_violation and back.target[2, 3] == pytest.approx(0.13)


def test_workspace_clamps_roll_and_position():
    clamped, violated = arm_target.BRIDGE_WORKSPACE.clamp([0.5, 0.0, 0.0, 2.0, 0.1, 0.2])
    assert violated
    np.testing.assert_allclose(clamped, [0.45, 0.0, 0.0, 1.57, 0.1, 0.2])
    assert arm_target.BRIDGE_WORKSPACE.clamp(kinematics.START_POSE6)[1] is False


def test_ik_failure_keeps_the_previous_joint_command():
    arm = arm_target.ArmTarget(kinematics.HOME_JOINTS, workspace=arm_target.Workspace(high=(2.0, 2.0, 2.0)))
    previous = arm.joints
    for _ in range(30):
        cmd = arm.apply(_action(dx=0.05))
        if not cmd.ik_ok:
            break
        previous = cmd.joints
    assert not cmd.ik_ok and "IK" in cmd.reason
    np.testing.assert_array_equal(cmd.joints, previous)
    np.testing.assert_allclose(kinematics.forward_kinematics(previous), cmd.target, atol=1e-3)


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
        arm_target.ArmTarget().apply(action)


def test_gripper_is_absolute_and_binarised_by_default():
    arm = arm_target.ArmTarget()
    assert arm.apply(_action(gripper=0.4)).gripper == 0.0
    assert arm.apply(_action(gripper=0.6)).gripper == 1.0
    assert arm_target.ArmTarget(gripper_threshold=None).apply(_action(gripper=0.4)).gripper == pytest.approx(0.4)
    np.testing.assert_allclose(arm_target.validate_action(np.float32([0.05, 0, 0, 0, 0, 0, 1])), [0.05, 0, 0, 0, 0, 0, 1])
