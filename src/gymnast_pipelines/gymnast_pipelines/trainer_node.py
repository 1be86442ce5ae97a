"""Test-time training as a ROS 2 node: TrainInScene grabs the current camera frame, runs GRPO in the
dream from it (in-process and batched; no message passing on the training path) and hands the new
checkpoint to the policy node, which hot-reloads it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rclpy.action import ActionServer, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from gymnast_core.names import (IMAGE_TOPIC, POLICY_CHECKPOINT_TOPIC, SCENE_TRAINING, SHIPPED_JUDGE, SHIPPED_POLICY,
                                SHIPPED_WORLD_MODEL, TRAIN_IN_SCENE_ACTION)
from gymnast_core.ros_msgs import MessageError, image_to_array
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_core.task import Task
from gymnast_interfaces.action import TrainInScene
from gymnast_policy.checkpoint import load_policy, save_policy
from gymnast_policy.grpo import CpuGRPOConfig, GRPOConfig, GRPOTrainer
from gymnast_policy.policy_node import LATCHED
from gymnast_reward.judges import JudgeConfig, make_judge
from gymnast_world_model.dream_env import DreamConfig


@dataclass(frozen=True)
class TrainerNodeConfig:
    # The policy to start from until the policy node announces another on /gymnast/policy/checkpoint.
    policy: str = SHIPPED_POLICY
    dream: DreamConfig = field(default_factory=lambda: DreamConfig(checkpoint=SHIPPED_WORLD_MODEL))
    judge: JudgeConfig = field(default_factory=lambda: replace(JudgeConfig(), path=SHIPPED_JUDGE))
    # One scene is one task: every update is one group of rollouts from the grabbed frame.
    grpo: GRPOConfig = field(default_factory=lambda: CpuGRPOConfig(tasks_per_update=1, group_size=8, horizon=20))
    updates: int = 4
    out: str = SCENE_TRAINING
    image_topic: str = IMAGE_TOPIC


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer")
        self.config = declare_config(self, TrainerNodeConfig())
        self.policy_path = self.config.policy
        self._frame: np.ndarray | None = None
        self._busy = False
        inputs = ReentrantCallbackGroup()
        self.create_subscription(Image, self.config.image_topic, self.on_image, qos_profile_sensor_data, callback_group=inputs)
        self.create_subscription(String, POLICY_CHECKPOINT_TOPIC, self.on_checkpoint, LATCHED, callback_group=inputs)
        self.checkpoint_pub = self.create_publisher(String, POLICY_CHECKPOINT_TOPIC, LATCHED)
        self.env = self.config.dream.make_env()
        self.judge = make_judge(self.config.judge)
        ActionServer(self, TrainInScene, TRAIN_IN_SCENE_ACTION, execute_callback=self.execute,
                     goal_callback=self.on_goal, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"ready to train in the dream of {self.config.dream.checkpoint} "
                               f"with the {self.judge.name} judge")

    def on_image(self, msg: Image) -> None:
        try:
            self._frame = image_to_array(msg)
        except MessageError as exc:
            self.get_logger().error(f"rejected image: {exc}", throttle_duration_sec=1.0)

    def on_checkpoint(self, msg: String) -> None:
        self.policy_path = msg.data

    def on_goal(self, goal: TrainInScene.Goal) -> GoalResponse:
        problem = ("training is already running" if self._busy else
                   "no camera frame yet" if self._frame is None else
                   "empty instruction" if not goal.instruction.strip() else None)
        if problem:
            self.get_logger().error(f"rejected TrainInScene goal: {problem}")
            return GoalResponse.REJECT
        self._busy = True
        return GoalResponse.ACCEPT

    def execute(self, goal_handle) -> TrainInScene.Result:
        goal: TrainInScene.Goal = goal_handle.request
        try:
            return self.train(goal_handle, goal)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            self.get_logger().error(f"TrainInScene failed: {exc}")
            goal_handle.abort()
            return TrainInScene.Result(message=str(exc))
        finally:
            self._busy = False

    def train(self, goal_handle, goal: TrainInScene.Goal) -> TrainInScene.Result:
        grpo = replace(self.config.grpo, group_size=goal.group_size or self.config.grpo.group_size,
                       horizon=goal.horizon or self.config.grpo.horizon)
        updates = goal.updates or self.config.updates
        scene = Task(goal.instruction, initial_frame=self._frame.copy())
        policy = load_policy(self.policy_path)
        trainer = GRPOTrainer(policy, self.env, self.judge, grpo)
        self.get_logger().info(f"training {goal.instruction!r} from {self.policy_path}: {updates} updates x "
                               f"{grpo.group_size} dreams of {grpo.horizon} steps")
        success = []
        for update in range(updates):
            stats = trainer.update([scene] * grpo.tasks_per_update)
            success.append(stats["success"])
            goal_handle.publish_feedback(TrainInScene.Feedback(update=update + 1, total=updates, dream_success=stats["success"]))
        slug = re.sub(r"[^a-z0-9]+", "-", goal.instruction.lower()).strip("-")[:40]
        folder = save_policy(policy, Path(self.config.out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}",
                             extra={"trained_in_scene": {"instruction": goal.instruction, "from": self.policy_path,
                                                         "updates": updates, "dream_success": success}})
        self.checkpoint_pub.publish(String(data=str(folder)))
        goal_handle.succeed()
        self.get_logger().info(f"new checkpoint {folder}; dream success {success[0]:.2f} -> {success[-1]:.2f}")
        return TrainInScene.Result(checkpoint=str(folder), dream_success_before=success[0], dream_success_after=success[-1])


def main(args: list[str] | None = None) -> None:
    spin_node(TrainerNode, args)


if __name__ == "__main__":
    main()
