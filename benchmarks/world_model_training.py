"""World-model training step time, fp32 vs bf16 autocast, measured side by side in one run.

Times full optimiser steps (loss, backward, AdamW) of the CPU-default world model on batches
of real clips, alternating the two precisions step by step so a noisy shared machine slows
both alike; prints the medians and their ratio (no thresholds).

Usage: .venv/bin/python benchmarks/world_model_training.py [--dataset outputs/default/data]
       [--steps 20] [--self_forcing 0.5] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gymnast_core.dataset import EpisodeDataset
from gymnast_world_model.data import ClipSampler, split_entries
from gymnast_world_model.world_model import CpuDefaultConfig, WorldModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="outputs/default/data")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per precision, after 2 warm-up steps each")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--self_forcing", type=float, default=CpuDefaultConfig.self_forcing)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = EpisodeDataset.open(args.dataset)
    config = CpuDefaultConfig(self_forcing=args.self_forcing)
    models, optimizers = {}, {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        models[precision] = WorldModel(config, dataset.action_spec).to(device).train()
        optimizers[precision] = torch.optim.AdamW(models[precision].dynamics.parameters(), lr=1e-3)
    train_entries, _ = split_entries(dataset, 0.1)
    sampler = ClipSampler(dataset, train_entries, models["fp32"].clip_length, config.image_size, models["fp32"].clip_padding)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for step in range(args.steps + 2):
        batch = sampler.sample(args.batch, rng)
        for precision, model in models.items():
            started = time.perf_counter()
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                loss = model.loss(batch)
            optimizers[precision].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[precision].step()
            if step >= 2:
                times[precision].append(time.perf_counter() - started)
    fp32, bf16 = (float(np.median(times[p])) for p in ("fp32", "bf16"))
    print(f"cpu-default world model, {models['fp32'].num_parameters() / 1e6:.2f}M params, batch {args.batch}, "
          f"self-forcing {args.self_forcing}, {args.threads} threads, device {device}")
    print(f"  fp32 : {fp32:.3f} s/step")
    print(f"  bf16 : {bf16:.3f} s/step (autocast)")
    print(f"  ratio: {fp32 / bf16:.2f}x more steps per second with bf16")


if __name__ == "__main__":
    main()
