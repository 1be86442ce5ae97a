"""Dream throughput, measured side by side in one run (no thresholds: ratios are printed).

1. Frames per second of the CPU-default world model at batch 1 vs batch 32.
2. A spatio-temporal DiT with vs without its temporal KV cache at horizons 10 and 40: the
   per-frame cost at horizon 40 relative to horizon 10.

Usage: .venv/bin/python benchmarks/dream_throughput.py [--checkpoint PATH] [--dit-config cpu-dit]
       [--device cuda] [--dit-batch 8]
Untrained weights time the same as trained ones; a checkpoint is optional. `--dit-config
worldgym-600m --dit-codec pixel-unshuffle` times the 600M trunk on its 32x32 latent grid without
the SD3 VAE weights (which cannot be downloaded here).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gymnast_core.action_spec import ActionSpec, NormStats
from gymnast_world_model.dream_env import DreamEnv
from gymnast_world_model.world_model import CpuDefaultConfig, WorldModel, WorldModelConfig, load_world_model

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
    parser.add_argument("--dit-config", default="cpu-dit", help="a registered world-model config with trunk 'dit'")
    parser.add_argument("--dit-codec", default="", help="override the DiT config's codec, e.g. pixel-unshuffle")
    parser.add_argument("--dit-batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    # The dream runs in fp32 on the CPU (DreamEnv has no autocast); bf16 autocast is timed on CUDA.
    use_bf16 = device.type == "cuda"
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=use_bf16)
    print(f"device: {torch.cuda.get_device_name(device) if use_bf16 else 'cpu'}, bf16 autocast: {use_bf16}")

    model = load_world_model(args.checkpoint) if args.checkpoint else WorldModel(CpuDefaultConfig(), SPEC)
    env = DreamEnv(model.eval().to(device), sampling_steps=4)
    with autocast:
        one, many = seconds_per_frame(env, 1, 10), seconds_per_frame(env, 32, 10)
    print(f"[batching] {model.config.trunk}, {model.num_parameters() / 1e6:.2f}M params, 4 DDIM steps, 64 px")
    print(f"  batch 1 : {1 / one:8.1f} frames/s")
    print(f"  batch 32: {32 / many:8.1f} frames/s")
    print(f"  ratio   : {(32 / many) / (1 / one):8.1f}x more frames/s at batch 32")

    dit_config = WorldModelConfig.get_choice_class(args.dit_config)()
    if args.dit_codec:
        # Same latent grid as the configured codec: an 8x-down VAE becomes an 8x unshuffle.
        dit_config.codec, dit_config.downsample = args.dit_codec, 8 if dit_config.codec == "sd3-vae" else dit_config.downsample
    dit = WorldModel(dit_config, SPEC).eval().to(device)
    print(f"\n[kv cache] {args.dit_config} spatio-temporal DiT, {dit.num_parameters() / 1e6:.1f}M params, "
          f"{dit_config.image_size} px, batch {args.dit_batch}, 4 DDIM steps, context window 40")
    results = {}
    for cached in (True, False):
        dit.dynamics.use_kv_cache = cached
        dit_env = DreamEnv(dit, sampling_steps=4, context_window=40)
        for horizon in (10, 40):
            with autocast:
                results[cached, horizon] = seconds_per_frame(dit_env, args.dit_batch, horizon, repeats=1)
    for cached in (True, False):
        label = "with cache   " if cached else "without cache"
        h10, h40 = results[cached, 10], results[cached, 40]
        print(f"  {label}: {1000 * h10:7.1f} ms/frame at horizon 10, {1000 * h40:7.1f} ms/frame at horizon 40, "
              f"ratio 40/10 = {h40 / h10:.2f}")
    for horizon in (10, 40):
        print(f"  cache speed-up at horizon {horizon}: {results[False, horizon] / results[True, horizon]:.2f}x")


if __name__ == "__main__":
    main()
