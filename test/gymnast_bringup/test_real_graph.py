"""The real graph with the mock arm and a video file as the camera: the same policy node that runs
in the dream drives the WidowX driver, and the arm moves."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from rclpy.duration import Duration
from std_msgs.msg import Bool

from gymnast_bringup.graph import default_params_file, graph_nodes, node_command, start_graph, stop_graph
from gymnast_bringup.probe import GraphProbe, ProbeRunner
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, NormStats
from gymnast_core.names import ACTION_TOPIC, IMAGE_TOPIC, JOINT_STATES_TOPIC
from gymnast_core.ros_msgs import chunk_to_msg
from gymnast_core.video import encode_video
from gymnast_interfaces.action import RunPolicy
from gymnast_policy.checkpoint import save_policy
from gymnast_policy.compact_vla import CompactVLA, CompactVLAConfig

pytestmark = pytest.mark.ros
STARTUP = 120.0
# As in test_graph.py: these processes can stall longer than a robot's 0.5 s heartbeat timeout
# and action age; a fresh command is still one stamped within this of its due time.
STALL_TOLERANCE = 2.0


@pytest.fixture(scope="module")
def real_graph(ros_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("real_graph")
    # A Bridge policy (7-D end-effector deltas) with random weights. Its actions span 0.3 of the
    # spec's motion bounds: from the start pose, a full-scale delta can leave the wrist past its
    # joint limit, so IK holds position and the arm rightly does not move.
    bounds = np.array([BRIDGE_ACTION_SPEC.low, BRIDGE_ACTION_SPEC.high])
    bounds[:, :6] *= 0.3
    torch.manual_seed(0)
    spec = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(bounds))
    policy = save_policy(CompactVLA(CompactVLAConfig(width=32, depth=1, heads=2, vision_channels=(8, 16)), spec),
                         out / "bridge_policy")
    frames = np.random.default_rng(0).integers(0, 255, (10, 96, 128, 3), dtype=np.uint8)
    encode_video(out / "camera.mp4", frames, fps=10)
    with pytest.MonkeyPatch.context() as patch:
        for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR"):
            patch.setenv(key, ros_env[key])
        processes = start_graph("real", env=ros_env, log_dir=out / "logs", args=[
            f"camera.device:={out / 'camera.mp4'}", "camera.width:=128", "camera.height:=96", "camera.fps:=15.0",
            "widowx_driver.backend:=mock", f"policy.checkpoint:={policy}", f"recorder.out:={out / 'episodes'}",
            f"policy.heartbeat_timeout:={STALL_TOLERANCE}", f"widowx_driver.max_action_age:={STALL_TOLERANCE}"])
        try:
            with ProbeRunner() as probe:
                yield probe, processes, out
        finally:
            stop_graph(processes)


def joints_at(probe, since: float) -> np.ndarray:
    return np.array(probe.since(JOINT_STATES_TOPIC, since)[-1][1].position[:6])


def test_the_same_policy_node_moves_the_mock_arm(real_graph):
    probe, processes, out = real_graph
    probe.wait_until(lambda: probe.since(JOINT_STATES_TOPIC, 0) and probe.since(IMAGE_TOPIC, 0), STARTUP,
                     "joint states and camera images")
    before = joints_at(probe, 0)
    probe.heartbeat_on = True
    probe.wait_until(lambda: probe.heartbeat_pub.get_subscription_count() > 0, 30, "the policy's heartbeat subscription")
    time.sleep(1.0)  # a few heartbeats in, however slowly the policy node takes them
    handle = probe.send_goal(probe.run_policy, RunPolicy.Goal(instruction="put the spoon in the pot", max_steps=10))
    assert handle.accepted
    result = probe.result(handle.get_result_async(), 60, "RunPolicy result").result
    assert result.reason == RunPolicy.Result.MAX_STEPS and result.steps == 10
    time.sleep(0.5)
    moved = np.abs(joints_at(probe, 0) - before).max()
    assert moved > 1e-3, "the mock arm did not move"
    actions = [m for _, m in probe.since(ACTION_TOPIC, 0)]
    assert len(actions) == 10 and all(list(m.action_names) == list(BRIDGE_ACTION_SPEC.names) for m in actions)


def test_driver_rejects_bad_actions_and_keeps_running(real_graph):
    probe, processes, out = real_graph
    wrong_names = chunk_to_msg(np.zeros(4), ("dx", "dy", "dz", "gripper"), 0.2)
    too_fast = chunk_to_msg(np.array([0.5, 0, 0, 0, 0, 0, 1]), BRIDGE_ACTION_SPEC.names, 0.2)
    nan = chunk_to_msg(np.array([np.nan, 0, 0, 0, 0, 0, 1]), BRIDGE_ACTION_SPEC.names, 0.2)
    for msg in (wrong_names, too_fast, nan):
        probe.action_pub.publish(msg)
    log = out / "logs" / "widowx_driver.log"
    probe.wait_until(lambda: log.read_text().count("rejected action") >= 3, 10, "three rejections in the driver's log")
    text = log.read_text()
    assert "do not match" in text and "out of range" in text and "NaN" in text
    since = time.monotonic()
    probe.wait_until(lambda: probe.since(JOINT_STATES_TOPIC, since), 5, "joint states after the bad actions")
    assert processes["widowx_driver"].poll() is None


def test_the_driver_moves_only_on_fresh_commands_and_never_under_e_stop(real_graph):
    probe, processes, out = real_graph
    log = out / "logs" / "widowx_driver.log"
    step = np.array([0.01, 0, 0, 0, 0, 0, 1])
    now = probe.get_clock().now()

    def settled_joints() -> np.ndarray:
        time.sleep(1.0)  # past the driver's next ticks and the mock arm's motion
        return joints_at(probe, 0)

    def publish(stamp) -> None:
        probe.action_pub.publish(chunk_to_msg(step, BRIDGE_ACTION_SPEC.names, 0.2, stamp.to_msg()))

    before = settled_joints()
    publish(now - Duration(seconds=10 * STALL_TOLERANCE))
    probe.action_pub.publish(chunk_to_msg(step, BRIDGE_ACTION_SPEC.names, 0.2))
    probe.wait_until(lambda: "stale command" in log.read_text() and "unstamped" in log.read_text(), 10,
                     "the driver refusing a stale and an unstamped action")
    np.testing.assert_array_equal(settled_joints(), before)

    probe.wait_until(lambda: probe.estop_pub.get_subscription_count() >= 2, 10, "the driver's e-stop subscription")
    probe.estop_pub.publish(Bool(data=True))
    probe.wait_until(lambda: "e-stop:" in log.read_text(), 10, "the driver taking the e-stop")
    publish(probe.get_clock().now())
    probe.wait_until(lambda: "the e-stop is engaged" in log.read_text(), 10, "the driver refusing under e-stop")
    np.testing.assert_array_equal(settled_joints(), before)

    probe.estop_pub.publish(Bool(data=False))
    probe.wait_until(lambda: "e-stop released" in log.read_text(), 10, "the driver releasing the e-stop")
    publish(probe.get_clock().now())
    assert np.abs(settled_joints() - before).max() > 1e-3, "a fresh action after the release did not move the arm"


def test_a_repeated_ctrl_c_still_turns_the_torque_off(ros_env, tmp_path):
    """Ctrl-C reaches a node from the terminal and again from the launcher: clean-up must finish."""
    driver = next(node for node in graph_nodes("real") if node.name == "widowx_driver")
    log = tmp_path / "widowx_driver.log"
    with log.open("w") as output:
        process = subprocess.Popen(node_command(driver, default_params_file(), {"backend": "mock"}), env=ros_env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        GraphProbe.wait_until(lambda: "mock backend" in log.read_text(), STARTUP, "the driver to start")
        for _ in range(10):
            process.send_signal(signal.SIGINT)
            time.sleep(0.01)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert "torque off" in text and "Traceback" not in text, text
