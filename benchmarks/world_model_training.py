"""World-model training step time of two variants, measured side by side in one run.

Times full optimiser steps (loss, backward, AdamW) of the CPU-default world model on batches
of real clips, alternating the two variants step by step so a noisy shared machine slows
both alike; prints the medians and their ratio (no thresholds). `--compare`:

- `precision`: fp32 vs bf16 autocast;
- `action_history`: conditioning on the last action vs the last three (bf16).

Usage: .venv/bin/python benchmarks/world_model_training.py [--compare precision] [--dataset outputs/default/data]
       [--steps 20] [--self_forcing 0.5] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from gymnast_core.dataset import EpisodeDataset
from gymnast_world_model.data import ClipSampler, split_entries
from gymnast_world_model.world_model import CpuDefaultConfig, WorldModel


def variants(compare: str, base: CpuDefaultConfig) -> dict[str, tuple[CpuDefaultConfig, bool]]:
    """Name -> (model config, bf16 autocast) of the two variants timed against each other."""
    if compare == "precision":
        return {"fp32": (base, False), "bf16": (base, True)}
    return {"last action": (replace(base, action_history=0), True),
            "last three actions": (replace(base, action_history=2), True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=("precision", "action_history"), default="precision")
    parser.add_argument("--dataset", default="outputs/default/data")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant, after 2 warm-up steps each")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--self_forcing", type=float, default=CpuDefaultConfig.self_forcing)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = EpisodeDataset.open(args.dataset)
    runs = variants(args.compare, CpuDefaultConfig(self_forcing=args.self_forcing))
    models, optimizers = {}, {}
    for name, (config, _) in runs.items():
        torch.manual_seed(0)
        models[name] = WorldModel(config, dataset.action_spec).to(device).train()
        optimizers[name] = torch.optim.AdamW(models[name].dynamics.parameters(), lr=1e-3)
    first = next(iter(models.values()))  # both variants train on clips of the same length
    train_entries, _ = split_entries(dataset, 0.1)
    sampler = ClipSampler(dataset, train_entries, first.clip_length, first.config.image_size, first.clip_padding)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(args.steps + 2):
        batch = sampler.sample(args.batch, rng)
        for name, model in models.items():
            started = time.perf_counter()
            with torch.autocast(device.type, torch.bfloat16, enabled=runs[name][1]):
                loss = model.loss(batch)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            if step >= 2:
                times[name].append(time.perf_counter() - started)
    (a, a_time), (b, b_time) = ((name, float(np.median(t))) for name, t in times.items())
    print(f"cpu-default world model, batch {args.batch}, self-forcing {args.self_forcing}, {args.threads} threads, "
          f"device {device}; medians of {args.steps} steps each")
    for name, seconds in ((a, a_time), (b, b_time)):
        print(f"  {name:<20}: {seconds:.3f} s/step, {models[name].num_parameters() / 1e6:.3f}M params")
    print(f"  ratio: {a_time / b_time:.2f}x more steps per second with {b} than with {a}")


if __name__ == "__main__":
    main()
