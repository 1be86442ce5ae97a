"""`gymnast train-world-model`: AdamW + EMA, bf16 autocast, atomic checkpoints, resume.

The run stops at `steps` or after `max_minutes` of training time, whichever comes first;
training time is accumulated across resumed runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from gymnast_core.names import DATA, WORLD_MODEL_DIR
from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.resume import record_config, rewind_rows
from gymnast_world_model.data import ClipSampler, split_entries
from gymnast_world_model.world_model import (
    CpuDefaultConfig,
    WorldModel,
    WorldModelConfig,
    read_checkpoint,
    resolve_device,
    save_checkpoint,
)


@dataclass(frozen=True)
class TrainWorldModelConfig:
    """Train the action-conditioned video world model on a dataset's episodes."""

    dataset: str = DATA
    # Run folder: checkpoint.pt, metrics.jsonl, samples/.
    out: str = WORLD_MODEL_DIR
    model: WorldModelConfig = field(default_factory=CpuDefaultConfig)
    # What 2 CPU cores finish within max_minutes in bf16, so the one-cycle schedule completes
    # (docs/world_model/report.md).
    steps: int = 7300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.02
    betas: tuple[float, float] = (0.9, 0.99)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    # Wall-clock budget of training (minutes, accumulated over resumes); 0 = no limit.
    max_minutes: float = 29.0
    # Fraction of episodes held out (by key) for validation and evaluation.
    holdout_fraction: float = 0.1
    val_every: int = 500
    checkpoint_every: int = 200
    # bf16 autocast, on the CPU too: more steps in the same budget (benchmarks/world_model_training.py).
    bf16: bool = True
    seed: int = 0
    threads: int = 2
    # 'auto' = CUDA when available, else CPU.
    device: str = "auto"

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"steps": 1, "batch_size": 1, "val_every": 1, "checkpoint_every": 1, "threads": 1})
        if not 0 <= self.holdout_fraction < 1:
            yield "holdout_fraction", "must lie in [0, 1)"


def train_world_model(config: TrainWorldModelConfig) -> Path:
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    ckpt_path = out / "checkpoint.pt"
    record_config(out, config, "gymnast train-world-model", resuming=ckpt_path.exists())
    dataset = EpisodeDataset.open(config.dataset)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = WorldModel(config.model, dataset.action_spec).to(device)
    optimizer = torch.optim.AdamW(model.dynamics.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.03)
    ema = AveragedModel(model.dynamics, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    step, elapsed = 0, 0.0
    rng = np.random.default_rng(config.seed)
    if ckpt_path.exists():
        state = read_checkpoint(ckpt_path)
        model.dynamics.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        ema.n_averaged.fill_(state["ema_n_averaged"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, elapsed = state["step"], state["elapsed"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming {ckpt_path} at step {step} ({elapsed / 60:.1f} min trained)")
    rewind_rows(out / "metrics.jsonl", "step", step)

    train_entries, held_out = split_entries(dataset, config.holdout_fraction)
    train = ClipSampler(dataset, train_entries, model.clip_length, config.model.image_size, model.clip_padding)
    val = ClipSampler(dataset, held_out or train_entries[:8], model.clip_length, config.model.image_size, model.clip_padding)
    val_batch = val.sample(64, np.random.default_rng(12345))

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, model, ema.module, {
            "ema_n_averaged": int(ema.n_averaged), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "elapsed": elapsed, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "holdout_fraction": config.holdout_fraction, "dataset": str(Path(config.dataset).resolve()),
        })

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    print(f"world model: {config.model.trunk}, {model.num_parameters() / 1e6:.2f}M parameters, "
          f"{len(train_entries)} train / {len(held_out)} held-out episodes")
    progress = tqdm(total=config.steps, initial=step, desc="train-world-model", unit="step")
    model.train()
    while step < config.steps and not (config.max_minutes and elapsed >= 60 * config.max_minutes):
        started = time.perf_counter()
        with autocast:
            loss = model.loss(train.sample(config.batch_size, rng))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.dynamics.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model.dynamics)
        step += 1
        elapsed += time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}", minutes=f"{elapsed / 60:.1f}")
        if step % config.val_every == 0 or step == config.steps:
            with torch.no_grad(), autocast:
                torch.manual_seed(0)
                val_loss = model.loss(val_batch).item()
            record = {"step": step, "train_loss": loss.item(), "val_loss": val_loss, "minutes": elapsed / 60}
            with open(out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            progress.write(f"step {step}: train {loss.item():.4f}  val {val_loss:.4f}")
        if step % config.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    progress.close()
    return ckpt_path


def main(config: TrainWorldModelConfig) -> None:
    print(f"checkpoint: {train_world_model(config)}")
