"""Dream throughput, measured side by side in one run (no thresholds: ratios are printed).

1. Frames per second of the CPU-default world model at batch 1 vs batch 32.
2. A spatio-temporal DiT with vs without its temporal KV cache at horizons 10 and 40: the
   per-frame cost at horizon 40 relative to horizon 10.

Usage: .venv/bin/python benchmarks/dream_throughput.py [--checkpoint PATH] [--dit-width 192]
Untrained weights time the same as trained ones; a checkpoint is optional.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gymnast_core.action_spec import ActionSpec, NormStats
from gymnast_world_model.dream_env import DreamEnv
from gymnast_world_model.world_model import CpuDefaultConfig, CpuDiTConfig, WorldModel, load_world_model

SPEC = ActionSpec(("dx", "dy", "dz", "gripper"), (-1,) * 4, (1,) * 4, gripper_index=3, gripper_open=-1, gripper_closed=1,
                  stats=NormStats((-1,) * 4, (1,) * 4, (0,) * 4, (1,) * 4))


def seconds_per_frame(env: DreamEnv, batch: int, horizon: int, repeats: int = 2) -> float:
    """Median wall time per generated frame (per rollout step, whole batch) over `repeats` rollouts."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (batch, env.image_size, env.image_size, 3), dtype=np.uint8)
    times = []
    for _ in range(repeats):
        env.reset_frames(frames, ["x"] * batch)
        started = time.perf_counter()
        for _ in range(horizon):
            env.step(rng.uniform(-1, 1, (batch, 4)).astype(np.float32))
        times.append((time.perf_counter() - started) / horizon)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="CPU-default world model checkpoint (optional)")
    parser.add_argument("--dit-width", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load_world_model(args.checkpoint) if args.checkpoint else WorldModel(CpuDefaultConfig(), SPEC).eval()
    env = DreamEnv(model, sampling_steps=4)
    one, many = seconds_per_frame(env, 1, 10), seconds_per_frame(env, 32, 10)
    print(f"[batching] {model.config.trunk}, {model.num_parameters() / 1e6:.2f}M params, 4 DDIM steps, 64 px")
    print(f"  batch 1 : {1 / one:8.1f} frames/s")
    print(f"  batch 32: {32 / many:8.1f} frames/s")
    print(f"  ratio   : {(32 / many) / (1 / one):8.1f}x more frames/s at batch 32")

    dit = WorldModel(CpuDiTConfig(width=args.dit_width), SPEC).eval()
    print(f"\n[kv cache] spatio-temporal DiT, {dit.num_parameters() / 1e6:.2f}M params, batch 8, 4 DDIM steps, "
          "context window 40")
    results = {}
    for cached in (True, False):
        dit.dynamics.use_kv_cache = cached
        dit_env = DreamEnv(dit, sampling_steps=4, context_window=40)
        for horizon in (10, 40):
            results[cached, horizon] = seconds_per_frame(dit_env, 8, horizon, repeats=1)
    for cached in (True, False):
        label = "with cache   " if cached else "without cache"
        h10, h40 = results[cached, 10], results[cached, 40]
        print(f"  {label}: {1000 * h10:7.1f} ms/frame at horizon 10, {1000 * h40:7.1f} ms/frame at horizon 40, "
              f"ratio 40/10 = {h40 / h10:.2f}")
    for horizon in (10, 40):
        print(f"  cache speed-up at horizon {horizon}: {results[False, horizon] / results[True, horizon]:.2f}x")


if __name__ == "__main__":
    main()
