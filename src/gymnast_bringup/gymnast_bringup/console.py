"""Operator commands for a running graph: `gymnast run-policy` and `gymnast train-in-scene`.

`run-policy` is also the operator's dead-man switch: it sends the heartbeat while it runs, so
closing it (or losing its machine) stops the arm; Ctrl-C cancels the goal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm import tqdm

from gymnast_bringup.probe import ProbeRunner
from gymnast_interfaces.action import RunPolicy, TrainInScene


@dataclass(frozen=True)
class RunPolicyConfig:
    instruction: str = ""
    # Stop after this many actions / seconds (0 = until Ctrl-C).
    max_steps: int = 0
    max_duration: float = 0.0
    timeout: float = 30.0


@dataclass(frozen=True)
class TrainInSceneConfig:
    instruction: str = ""
    # 0 = the trainer node's defaults.
    updates: int = 0
    group_size: int = 0
    horizon: int = 0
    timeout: float = 30.0


def run_policy(config: RunPolicyConfig) -> None:
    if not config.instruction.strip():
        raise ValueError("--instruction is required")
    with ProbeRunner() as probe:
        probe.heartbeat_on = True
        probe.wait_until(lambda: probe.heartbeat_pub.get_subscription_count() > 0, config.timeout, "the policy node")
        time.sleep(0.5)  # the goal is refused until the first heartbeats have arrived
        goal = RunPolicy.Goal(instruction=config.instruction, max_steps=config.max_steps, max_duration=config.max_duration)
        with tqdm(desc="actions", unit="step") as bar:
            def show(msg) -> None:
                bar.update(msg.feedback.step - bar.n)
                bar.set_postfix(rate=f"{msg.feedback.control_rate:.1f} Hz", latency=f"{msg.feedback.inference_latency:.3f} s")

            handle = probe.send_goal(probe.run_policy, goal, config.timeout, feedback=show)
            if not handle.accepted:
                raise ValueError("the policy node rejected the goal (e-stop engaged, another goal running or no "
                                 "heartbeat); its log says which")
            future = handle.get_result_async()
            try:
                probe.wait_until(future.done, float("inf"), "the run to end")
            except KeyboardInterrupt:
                probe.result(handle.cancel_goal_async(), config.timeout, "cancel")
                probe.wait_until(future.done, config.timeout, "the run to stop")
    result = future.result().result
    print(f"run-policy: {result.reason} after {result.steps} actions {result.message}".rstrip())


def train_in_scene(config: TrainInSceneConfig) -> None:
    if not config.instruction.strip():
        raise ValueError("--instruction is required")
    with ProbeRunner() as probe, tqdm(desc="GRPO updates in the dream", unit="update") as bar:
        def show(msg) -> None:
            bar.total = msg.feedback.total
            bar.update(msg.feedback.update - bar.n)
            bar.set_postfix(dream_success=f"{msg.feedback.dream_success:.2f}")

        goal = TrainInScene.Goal(instruction=config.instruction, updates=config.updates, group_size=config.group_size,
                                 horizon=config.horizon)
        handle = probe.send_goal(probe.train_in_scene, goal, config.timeout, feedback=show)
        if not handle.accepted:
            raise ValueError("the trainer rejected the goal (busy, or no camera frame yet); its log says which")
        result = probe.result(handle.get_result_async(), float("inf"), "training").result
    if not result.checkpoint:
        raise ValueError(f"training failed: {result.message}")
    print(f"train-in-scene: {result.checkpoint} (dream success {result.dream_success_before:.2f} -> "
          f"{result.dream_success_after:.2f}); the policy node hot-reloads it")
