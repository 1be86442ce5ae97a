"""The VLA policy as a ROS 2 node: camera in, one action per control period out.

The same node drives the real arm or the dream: both take the action topic and
publish the image topic. Motion happens only inside a RunPolicy goal and only while an
operator heartbeat is fresh; cancel, e-stop and heartbeat loss end the goal before the next
control tick. Inference runs in its own callback group, ahead of the control loop, and
consecutive chunks are joined by `ChunkScheduler`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Empty, String

from gymnast_core.names import (ACTION_CHUNK_TOPIC, ACTION_TOPIC, ESTOP_TOPIC, HEARTBEAT_TOPIC, IMAGE_TOPIC,
                                POLICY_CHECKPOINT_TOPIC, POLICY_STATUS_TOPIC, RUN_POLICY_ACTION, SHIPPED_POLICY)
from gymnast_core.ros_msgs import MessageError, chunk_to_msg, image_to_array
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_core.video import resize_frames
from gymnast_interfaces.action import RunPolicy
from gymnast_interfaces.msg import ActionChunk, PolicyStatus
from gymnast_policy.checkpoint import load_policy
from gymnast_policy.chunking import ChunkScheduler

# Late subscribers (a policy node restarted after the trainer finished) still get the last checkpoint.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass(frozen=True)
class PolicyNodeConfig:
    checkpoint: str = SHIPPED_POLICY
    device: str = "cpu"
    # 0 = greedy, as in evaluation.
    temperature: float = 0.0
    # Heartbeats older than this stop motion.
    heartbeat_timeout: float = 0.5
    # ACT's temporal-ensembling weight decay; 0 = plain average of overlapping chunks.
    ensemble_decay: float = 0.1
    # Ask for the next chunk when fewer than this many future actions are covered.
    replan_margin: int = 2
    # A frame older than this is not used for inference (the camera stalled).
    max_image_age: float = 1.0
    frame_id: str = "wx250s/base_link"
    image_topic: str = IMAGE_TOPIC
    action_topic: str = ACTION_TOPIC
    status_rate: float = 2.0


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy")
        self.config = declare_config(self, PolicyNodeConfig())
        self.policy = load_policy(self.config.checkpoint, self.config.device)
        self.checkpoint = self.config.checkpoint
        self.period = self.policy.action_spec.period
        self.scheduler = ChunkScheduler(self.config.ensemble_decay, self.policy.action_spec.gripper_index)
        self._policy_lock = threading.Lock()
        self._image: tuple[np.ndarray, object, float, int] | None = None  # frame, stamp, arrival time, tick
        self._used_image_at = 0.0
        self._heartbeat_at = float("-inf")
        self._estop = False
        self._goal_lock = threading.Lock()
        self._running: RunPolicy.Goal | None = None
        # Control ticks since start, never reset: chunks and frames are placed on this one clock.
        self.tick = 0
        self.executed = 0
        self.latency = 0.0
        self.rate = 0.0

        inference = MutuallyExclusiveCallbackGroup()
        inputs = ReentrantCallbackGroup()
        self.create_subscription(Image, self.config.image_topic, self.on_image, qos_profile_sensor_data, callback_group=inputs)
        self.create_subscription(Empty, HEARTBEAT_TOPIC, self.on_heartbeat, 10, callback_group=inputs)
        self.create_subscription(Bool, ESTOP_TOPIC, self.on_estop, 10, callback_group=inputs)
        self.create_subscription(String, POLICY_CHECKPOINT_TOPIC, self.on_checkpoint, LATCHED, callback_group=inference)
        self.action_pub = self.create_publisher(ActionChunk, self.config.action_topic, 10)
        self.chunk_pub = self.create_publisher(ActionChunk, ACTION_CHUNK_TOPIC, 10)
        self.status_pub = self.create_publisher(PolicyStatus, POLICY_STATUS_TOPIC, 10)
        self.create_timer(min(self.period / 10, 0.02), self.infer_if_needed, callback_group=inference)
        self.create_timer(1.0 / self.config.status_rate, self.publish_status, callback_group=inputs)
        ActionServer(self, RunPolicy, RUN_POLICY_ACTION, execute_callback=self.execute,
                     goal_callback=self.on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
                     callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f"policy {self.checkpoint} ({self.policy.action_spec.dim}-D actions at "
                               f"{1 / self.period:.1f} Hz) waiting for a RunPolicy goal")

    # Inputs ----------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        try:
            frame = image_to_array(msg)
        except MessageError as exc:
            self.get_logger().error(f"rejected image on {self.config.image_topic}: {exc}", throttle_duration_sec=1.0)
            return
        self._image = (frame, msg.header.stamp, time.monotonic(), self.tick)

    def on_heartbeat(self, _: Empty) -> None:
        self._heartbeat_at = time.monotonic()

    def on_estop(self, msg: Bool) -> None:
        if msg.data and not self._estop:
            self.get_logger().warning("e-stop: motion stopped until the e-stop is released")
        self._estop = bool(msg.data)

    def on_checkpoint(self, msg: String) -> None:
        """Hot reload: load beside the running policy, then swap; the control loop never waits on disk."""
        if msg.data == self.checkpoint:
            return
        try:
            policy = load_policy(msg.data, self.config.device)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            self.get_logger().error(f"keeping {self.checkpoint}: cannot load {msg.data}: {exc}")
            return
        if policy.action_spec.names != self.policy.action_spec.names:
            self.get_logger().error(f"keeping {self.checkpoint}: {msg.data} acts in {policy.action_spec.names}, "
                                    f"not {self.policy.action_spec.names}")
            return
        with self._policy_lock:
            self.policy, self.checkpoint = policy, msg.data
        self.get_logger().info(f"hot-reloaded policy weights from {msg.data}")

    def heartbeat_fresh(self) -> bool:
        return time.monotonic() - self._heartbeat_at <= self.config.heartbeat_timeout

    # Inference (its own callback group) ------------------------------------------------------
    def infer_if_needed(self) -> None:
        if self._running is None or self._image is None:
            return
        frame, stamp, arrived, frame_tick = self._image
        if arrived <= self._used_image_at or time.monotonic() - arrived > self.config.max_image_age:
            return
        if self.scheduler.covered_until() - self.tick > self.config.replan_margin:
            return
        started = time.monotonic()
        with self._policy_lock:
            policy = self.policy
        chunk = policy.act(resize_frames(frame, policy.image_size)[None], [self._running.instruction],
                           self.config.temperature).actions[0]
        self.latency = time.monotonic() - arrived
        self._used_image_at = arrived
        # The chunk starts at the tick its frame was seen at; ticks already past are dropped.
        self.scheduler.add(chunk, frame_tick)
        self.chunk_pub.publish(chunk_to_msg(chunk, policy.action_spec.names, self.period, stamp, self.config.frame_id))
        self.get_logger().debug(f"chunk in {time.monotonic() - started:.3f} s")

    # RunPolicy -------------------------------------------------------------------------------
    def on_goal(self, goal: RunPolicy.Goal) -> GoalResponse:
        problem = ("another goal is running" if self._running is not None else
                   "e-stop is engaged" if self._estop else
                   "no operator heartbeat on /gymnast/heartbeat" if not self.heartbeat_fresh() else
                   "empty instruction" if not goal.instruction.strip() else None)
        if problem:
            self.get_logger().error(f"rejected RunPolicy goal: {problem}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def execute(self, goal_handle) -> RunPolicy.Result:
        goal: RunPolicy.Goal = goal_handle.request
        with self._goal_lock:
            self._running, self.executed = goal, 0
            self.scheduler.clear()
        self.get_logger().info(f"running {goal.instruction!r}")
        started = next_tick = time.monotonic()
        executed: list[float] = []
        reason, message = RunPolicy.Result.MAX_STEPS, ""
        try:
            while True:
                stop = self.stop_reason(goal_handle, goal, started, len(executed))
                if stop:
                    reason = stop
                    break
                action = self.scheduler.next_action(self.tick)
                if action is not None:  # no chunk yet: hold still rather than guess
                    self.action_pub.publish(chunk_to_msg(action, self.policy.action_spec.names, self.period,
                                                         self.get_clock().now().to_msg(), self.config.frame_id))
                    executed.append(time.monotonic())
                    self.executed = len(executed)
                    self.rate = (len(executed[-10:]) - 1) / (executed[-1] - executed[-10:][0]) if len(executed) > 1 else 0.0
                    feedback = RunPolicy.Feedback(step=len(executed), inference_latency=self.latency, control_rate=self.rate)
                    goal_handle.publish_feedback(feedback)
                self.tick += 1
                next_tick += self.period
                time.sleep(max(0.0, next_tick - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - the goal must end with a reason, never hang
            reason, message = RunPolicy.Result.ERROR, f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"RunPolicy failed: {message}")
        finally:
            with self._goal_lock:
                self._running = None
                self.scheduler.clear()
        result = RunPolicy.Result(reason=reason, steps=len(executed), message=message)
        if reason == RunPolicy.Result.CANCELED:
            goal_handle.canceled()
        elif reason in (RunPolicy.Result.MAX_STEPS, RunPolicy.Result.TIMEOUT):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self.get_logger().info(f"RunPolicy ended: {reason} after {len(executed)} actions")
        return result

    def stop_reason(self, goal_handle, goal: RunPolicy.Goal, started: float, executed: int) -> str | None:
        if goal_handle.is_cancel_requested:
            return RunPolicy.Result.CANCELED
        if self._estop:
            return RunPolicy.Result.ESTOP
        if not self.heartbeat_fresh():
            self.get_logger().warning("operator heartbeat lost: stopping")
            return RunPolicy.Result.HEARTBEAT_LOST
        if goal.max_steps and executed >= goal.max_steps:
            return RunPolicy.Result.MAX_STEPS
        if goal.max_duration and time.monotonic() - started >= goal.max_duration:
            return RunPolicy.Result.TIMEOUT
        return None

    def publish_status(self) -> None:
        goal = self._running
        state = PolicyStatus.STOPPED if self._estop else PolicyStatus.RUNNING if goal else PolicyStatus.IDLE
        msg = PolicyStatus(state=state, instruction=goal.instruction if goal else "", inference_latency=float(self.latency),
                           control_rate=float(self.rate), checkpoint=str(Path(self.checkpoint)), step=self.executed if goal else 0)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)


def main(args: list[str] | None = None) -> None:
    spin_node(PolicyNode, args)


if __name__ == "__main__":
    main()
