"""`gymnast sft`: supervised fine-tuning on action tokens.

Each sample is one frame and the chunk of K actions that followed it (chunks running past an
episode's end repeat its last action). Cross-entropy on the K*A tokens, with random-shift
crops and colour jitter. Checkpoints keep the ActionSpec's statistics with the weights;
an interrupted run resumes from `out/train_state.pt`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset, IndexEntry
from gymnast_core.episode import Episode
from gymnast_core.names import DATA, SFT_POLICY
from gymnast_core.resume import record_config, rewind_rows
from gymnast_core.torch_files import load_torch, save_torch
from gymnast_core.video import resize_frames
from gymnast_policy.augment import color_jitter, random_shift_crop
from gymnast_policy.base import TokenPolicy
from gymnast_policy.checkpoint import build_policy, load_policy, save_policy
from gymnast_policy.compact_vla import CompactVLAConfig


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning of the compact VLA on demonstrations."""

    dataset: str = DATA
    # Policy checkpoint folder (policy.json + weights.pt); train_state.pt for resuming.
    out: str = SFT_POLICY
    # Episode sources used as demonstrations.
    sources: tuple[str, ...] = ("expert",)
    # Demonstrations per task (first N by key); 0 = all. Few demos and steps on purpose: they leave
    # the policy room that RL can show (docs/policy/report.md).
    demos_per_task: int = 5
    policy: CompactVLAConfig = field(default_factory=CompactVLAConfig)
    # Start from this policy checkpoint instead of fresh weights ('' = fresh; Iter-SFT sets it).
    init: str = ""
    # A second dataset (e.g. judge-filtered dream rollouts) mixed 1:1 with the demos ('' = none).
    mix_dataset: str = ""
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    # Random-shift crop padding in pixels and colour-jitter strength.
    crop_pad: int = 4
    jitter: float = 0.2
    max_minutes: float = 15.0
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"demos_per_task": 0, "steps": 1, "batch_size": 1, "checkpoint_every": 1, "threads": 1})
        if self.lr <= 0:
            yield "lr", "must be positive"


def select_demos(dataset: EpisodeDataset, sources: tuple[str, ...], per_task: int) -> list[IndexEntry]:
    by_task: dict[str, list[IndexEntry]] = defaultdict(list)
    for entry in sorted(dataset.entries, key=lambda e: e.key):
        if entry.source in sources:
            by_task[entry.task].append(entry)
    chosen = [e for entries in by_task.values() for e in (entries[:per_task] if per_task else entries)]
    if not chosen:
        raise ValueError(f"{dataset.root}: no episodes from sources {sources}")
    return chosen


class ChunkSamples:
    """(frame, instruction, action chunk) for every step of every episode, in memory."""

    def __init__(self, episodes: list[Episode], chunk_size: int, image_size: int):
        self.frames, self.chunks, self.instructions = [], [], []
        for ep in episodes:
            steps = ep.num_steps
            index = np.minimum(np.arange(steps)[:, None] + np.arange(chunk_size)[None], steps - 1)
            self.frames.append(resize_frames(ep.frames[:steps], image_size))
            self.chunks.append(ep.actions[index])
            self.instructions += [ep.instruction] * steps
        self.frames, self.chunks = np.concatenate(self.frames), np.concatenate(self.chunks)

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, list[str], np.ndarray]:
        return torch.from_numpy(self.frames[index]), [self.instructions[i] for i in index], self.chunks[index]


def sft_loss(policy: TokenPolicy, frames: torch.Tensor, instructions: list[str], chunks: np.ndarray) -> torch.Tensor:
    tokens = torch.from_numpy(policy.tokenizer.encode(chunks))
    logits = policy.logits(policy.check_inputs(frames, instructions), instructions)
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten().to(logits.device))


def train_sft(config: SFTConfig) -> Path:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    state_path = out / "train_state.pt"
    record_config(out, config, "gymnast sft", resuming=state_path.exists())
    dataset = EpisodeDataset.open(config.dataset)
    if dataset.action_spec.stats is None:
        raise ValueError(f"{dataset.root}: the dataset has no action statistics; run dataset.compute_stats()")
    policy = load_policy(config.init) if config.init else build_policy({"backbone": "compact", **config.policy.__dict__},
                                                                       dataset.action_spec)
    demos = select_demos(dataset, config.sources, config.demos_per_task)
    samples = ChunkSamples([dataset.load(e) for e in demos], policy.chunk_size, policy.image_size)
    mixed = None
    if config.mix_dataset:
        extra = EpisodeDataset.open(config.mix_dataset)
        if not len(extra):
            raise ValueError(f"{extra.root}: the dataset to mix in is empty")
        mixed = ChunkSamples([extra.load(e) for e in extra.entries], policy.chunk_size, policy.image_size)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    rng, generator = np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed)
    step, elapsed = 0, 0.0
    if state_path.exists():
        state = load_torch(state_path, "SFT training state")
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, elapsed = state["step"], state["elapsed"]
        rng.bit_generator.state = state["rng"]
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming {state_path} at step {step}")
    rewind_rows(out / "metrics.jsonl", "step", step)

    def checkpoint() -> None:
        save_policy(policy, out, {"sft": {"step": step, "demos": len(demos), "samples": len(samples)}})
        save_torch(state_path, {"policy": policy.state_dict(), "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict(), "step": step, "elapsed": elapsed,
                                "rng": rng.bit_generator.state, "generator": generator.get_state(),
                                "torch_rng": torch.get_rng_state()})

    print(f"sft: {len(demos)} demos, {len(samples)} samples, "
          f"{sum(p.numel() for p in policy.parameters() if p.requires_grad) / 1e6:.2f}M trainable parameters")
    policy.train()
    progress = tqdm(total=config.steps, initial=step, desc="sft", unit="step")
    while step < config.steps and not (config.max_minutes and elapsed >= 60 * config.max_minutes):
        started = time.perf_counter()
        if mixed is None:
            frames, instructions, chunks = samples.batch(rng.integers(0, len(samples), config.batch_size))
        else:  # half demos, half mixed-in episodes
            half = config.batch_size // 2
            a = samples.batch(rng.integers(0, len(samples), config.batch_size - half))
            b = mixed.batch(rng.integers(0, len(mixed), half))
            frames, instructions, chunks = torch.cat([a[0], b[0]]), a[1] + b[1], np.concatenate([a[2], b[2]])
        frames = color_jitter(random_shift_crop(frames, config.crop_pad, generator), config.jitter, generator)
        loss = sft_loss(policy, frames, instructions, chunks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        elapsed += time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.3f}")
        if step % config.checkpoint_every == 0:
            checkpoint()
            with open(out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"step": step, "loss": loss.item(), "minutes": elapsed / 60}) + "\n")
    checkpoint()
    progress.close()
    return out


def main(config: SFTConfig) -> None:
    print(f"policy: {train_sft(config)}")
