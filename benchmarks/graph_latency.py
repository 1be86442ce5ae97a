"""Closed-loop control rate and camera-to-action latency of the dream graph, measured live.

Starts the dream graph as processes (`gymnast launch dream`'s launcher), restarts the dream from
an image, runs the policy node for `--seconds` with the operator heartbeat, and prints, side by
side: the executed action rate against the 5 Hz target, gaps in the action stream, the camera
frame -> action chunk latency against the control period and the chunk's duration, the camera
frame -> first executed action of its chunk, and the policy node's own inference latency.

Usage: .venv/bin/python benchmarks/graph_latency.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from gymnast_bringup.graph import start_graph, stop_graph
from gymnast_bringup.probe import ProbeRunner
from gymnast_core.ros_env import loopback_ros_env
from gymnast_core.ros_msgs import array_to_image
from gymnast_interfaces.action import RunPolicy
from gymnast_interfaces.srv import ResetFromImage

PERIOD = 0.2


def stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    loopback_ros_env(domain_id=random.randint(1, 101))
    logs = Path(tempfile.mkdtemp(prefix="graph_latency_"))
    processes = start_graph("dream", log_dir=logs)
    try:
        with ProbeRunner() as probe:
            probe.wait_for_dream_graph(180)
            frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
            reset = probe.call(probe.reset_dream, ResetFromImage.Request(image=array_to_image(frame), instruction="push the puck"), 180)
            assert reset.success, reset.message
            probe.heartbeat_on = True
            probe.wait_until(lambda: probe.heartbeat_pub.get_subscription_count() > 0, 30, "the policy node")
            time.sleep(0.5)
            handle = probe.send_goal(probe.run_policy, RunPolicy.Goal(instruction="push the puck", max_duration=args.seconds + 2))
            assert handle.accepted, f"goal rejected; see {logs}/policy.log"
            start = time.monotonic()
            probe.wait_until(lambda: probe.since("/wx250s/commands/ee_delta", start), 30, "the first action")
            window = time.monotonic()
            time.sleep(args.seconds)
            end = time.monotonic()
            wall_offset = time.time() - time.monotonic()
            actions = [t for t, _ in probe.since("/wx250s/commands/ee_delta", window, end)]
            chunks = probe.since("/gymnast/action_chunk", window, end)
            statuses = [m for _, m in probe.since("/gymnast/policy/status", window, end) if m.state == "running"]
            result = handle.get_result_async()
            if result.done():
                raise RuntimeError(f"the run ended early: {result.result().result.reason}; see {logs}/policy.log")
            probe.result(handle.cancel_goal_async(), 10, "cancel")
    finally:
        stop_graph(processes)

    gaps = np.diff(actions)
    latency = np.array([t + wall_offset - stamp_seconds(m.header.stamp) for t, m in chunks])
    # Camera -> action: from the frame's stamp to the first action executed after its chunk arrived.
    first_actions = [next((a for a in actions if a >= t), None) for t, _ in chunks]
    to_action = np.array([a + wall_offset - stamp_seconds(m.header.stamp)
                          for a, (_, m) in zip(first_actions, chunks) if a is not None])
    chunk_duration = chunks[0][1].horizon * PERIOD
    rate = len(actions) / (end - window)
    print(f"dream graph, {args.seconds:.0f} s closed loop on this machine ({len(actions)} actions, {len(chunks)} chunks)")
    print(f"  control rate            {rate:6.2f} Hz   target {1 / PERIOD:.2f} Hz   ratio {rate * PERIOD:.3f}")
    print(f"  action interval         median {np.median(gaps):.3f} s   max {gaps.max():.3f} s   "
          f"(period {PERIOD:.3f} s; held ticks {max(0, round((end - window) / PERIOD) - len(actions))})")
    print(f"  camera -> chunk         median {np.median(latency):.3f} s   p95 {np.percentile(latency, 95):.3f} s   "
          f"= {np.median(latency) / PERIOD:.2f} control periods, {np.median(latency) / chunk_duration:.2f} of a chunk")
    print(f"  camera -> action        median {np.median(to_action):.3f} s   p95 {np.percentile(to_action, 95):.3f} s   "
          f"= {np.median(to_action) / PERIOD:.2f} control periods")
    if statuses:
        print(f"  policy inference (node) median {np.median([s.inference_latency for s in statuses]):.3f} s")


if __name__ == "__main__":
    main()
