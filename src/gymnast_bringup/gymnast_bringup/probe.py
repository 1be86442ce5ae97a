"""A client for a running gymnast graph: records topics with arrival times, sends the operator
heartbeat and calls services and actions. The graph tests and benchmarks/graph_latency.py use it."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Empty
from std_srvs.srv import SetBool, Trigger

from gymnast_core.names import (ACTION_CHUNK_TOPIC, ACTION_TOPIC, DREAM_RESET_SERVICE, ESTOP_TOPIC, HEARTBEAT_TOPIC,
                                IMAGE_TOPIC, JOINT_STATES_TOPIC, JUDGE_SERVICE, POLICY_STATUS_TOPIC, RUN_POLICY_ACTION,
                                TRAIN_IN_SCENE_ACTION)
from gymnast_core.ros_env import loopback_ros_env
from gymnast_interfaces.action import RunPolicy, TrainInScene
from gymnast_interfaces.msg import ActionChunk, PolicyStatus
from gymnast_interfaces.srv import Judge, ResetFromImage

TOPICS = {
    IMAGE_TOPIC: Image,
    ACTION_TOPIC: ActionChunk,
    ACTION_CHUNK_TOPIC: ActionChunk,
    POLICY_STATUS_TOPIC: PolicyStatus,
    JOINT_STATES_TOPIC: JointState,
}


class GraphProbe(Node):
    def __init__(self, heartbeat_rate: float = 10.0, context=None):
        super().__init__("gymnast_probe", context=context)
        self.received: dict[str, list[tuple[float, Any]]] = {topic: [] for topic in TOPICS}
        self._lock = threading.Lock()
        for topic, msg_type in TOPICS.items():
            qos = qos_profile_sensor_data if msg_type is Image else 10
            self.create_subscription(msg_type, topic, lambda msg, topic=topic: self._record(topic, msg), qos)
        self.heartbeat_on = False
        self.heartbeat_pub = self.create_publisher(Empty, HEARTBEAT_TOPIC, 10)
        self.estop_pub = self.create_publisher(Bool, ESTOP_TOPIC, 10)
        self.image_pub = self.create_publisher(Image, IMAGE_TOPIC, 10)
        self.action_pub = self.create_publisher(ActionChunk, ACTION_TOPIC, 10)
        # Its own callback group, so the second executor thread sends it while the first is busy
        # recording a burst of images: a heartbeat queued behind them reads as the operator gone.
        self.create_timer(1.0 / heartbeat_rate, lambda: self.heartbeat_on and self.heartbeat_pub.publish(Empty()),
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.run_policy = ActionClient(self, RunPolicy, RUN_POLICY_ACTION)
        self.train_in_scene = ActionClient(self, TrainInScene, TRAIN_IN_SCENE_ACTION)
        self.judge = self.create_client(Judge, JUDGE_SERVICE)
        self.reset_dream = self.create_client(ResetFromImage, DREAM_RESET_SERVICE)
        self.recorder_start = self.create_client(Trigger, "/recorder/start")
        self.recorder_stop = self.create_client(SetBool, "/recorder/stop")

    def _record(self, topic: str, msg) -> None:
        with self._lock:
            self.received[topic].append((time.monotonic(), msg))

    def since(self, topic: str, start: float, end: float = float("inf")) -> list[tuple[float, Any]]:
        with self._lock:
            return [(t, m) for t, m in self.received[topic] if start <= t < end]

    def stamped_after(self, topic: str, wall_time: float) -> list:
        """Messages on `topic` whose header stamp (the publisher's clock) is later than `wall_time`
        (time.time()). Unlike arrival times, stamps do not move when this process is slow to receive."""
        with self._lock:
            return [m for _, m in self.received[topic]
                    if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 > wall_time]

    def rate(self, topic: str, start: float, end: float) -> float:
        """Messages per second on `topic` between two monotonic times."""
        return len(self.since(topic, start, end)) / (end - start)

    @staticmethod
    def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    @staticmethod
    def result(future, timeout: float, what: str):
        GraphProbe.wait_until(future.done, timeout, what)
        return future.result()

    def wait_for_dream_graph(self, timeout: float) -> None:
        """Until every server of the dream graph is up: a node still loading its models competes for the CPU."""
        for client in (self.reset_dream, self.judge, self.recorder_start):
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        for client in (self.run_policy, self.train_in_scene):
            if not client.wait_for_server(timeout_sec=timeout):
                raise TimeoutError(f"action server {client._action_name} not available after {timeout:.0f} s")

    def call(self, client, request, timeout: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        return self.result(client.call_async(request), timeout, client.srv_name)

    def send_goal(self, client: ActionClient, goal, timeout: float = 30.0, feedback=None):
        if not client.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f"action server {client._action_name} not available after {timeout:.0f} s")
        return self.result(client.send_goal_async(goal, feedback_callback=feedback), timeout, "goal response")


class ProbeRunner:
    """GraphProbe spinning in a background thread, in its own rclpy context: `with ProbeRunner() as probe:`."""

    def __enter__(self) -> GraphProbe:
        loopback_ros_env()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.probe = GraphProbe(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        return self.probe

    def __exit__(self, *exc) -> None:
        self.executor.shutdown()
        self.probe.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)
