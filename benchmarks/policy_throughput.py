"""Policy inference throughput on this CPU, measured side by side in one run.

Queries per second at batch 1 and batch 32 for the compact VLA and a tiny Hugging Face
backbone (PaliGemma-style, random weights saved locally), and the latency of one 5-action
chunk against the 0.2 s control period.

Usage: .venv/bin/python benchmarks/policy_throughput.py [--policy outputs/default/policy_sft]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, NormStats
from gymnast_policy.checkpoint import load_policy
from gymnast_policy.compact_vla import CompactVLA, CompactVLAConfig
from gymnast_policy.hf_vla import HFVLAPolicy
from gymnast_policy.tiny_checkpoints import save_tiny_paligemma


def queries_per_second(policy, batch: int, repeats: int = 5) -> tuple[float, float]:
    """(queries/s, median seconds per call) of greedy `act` at a batch size."""
    frames = np.random.default_rng(0).integers(0, 256, (batch, policy.image_size, policy.image_size, 3), dtype=np.uint8)
    instructions = ["open the drawer"] * batch
    policy.act(frames, instructions, 0)  # warm-up (text-embedding cache, allocator)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        policy.act(frames, instructions, 0)
        times.append(time.perf_counter() - started)
    median = float(np.median(times))
    return batch / median, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="", help="trained compact VLA checkpoint folder (optional)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(np.random.default_rng(0).uniform(-0.05, 0.05, (100, 7))))
    policies = {"compact VLA": load_policy(args.policy) if args.policy else CompactVLA(CompactVLAConfig(), spec).eval()}
    with tempfile.TemporaryDirectory() as tmp:
        save_tiny_paligemma(Path(tmp) / "paligemma")
        policies["tiny HF (PaliGemma)"] = HFVLAPolicy(Path(tmp) / "paligemma", spec, chunk_size=5, image_size=32).eval()
        period = BRIDGE_ACTION_SPEC.period
        print(f"{'backbone':<22} {'params':>8} {'q/s @1':>8} {'q/s @32':>8} {'ratio':>6} {'chunk latency':>14} {'/ 0.2 s':>8}")
        for name, policy in policies.items():
            params = sum(p.numel() for p in policy.parameters()) / 1e6
            qps1, latency = queries_per_second(policy, 1)
            qps32, _ = queries_per_second(policy, 32)
            print(f"{name:<22} {params:>7.2f}M {qps1:>8.1f} {qps32:>8.1f} {qps32 / qps1:>5.1f}x {1000 * latency:>11.1f} ms "
                  f"{latency / period:>7.2f}")
    print("latency / 0.2 s < 1 means one chunk (5 actions = 1 s of motion) is ready well within one control period")


if __name__ == "__main__":
    main()
