"""`gymnast train-judge`: train (or refresh) the learned success judge.

Training examples, each a video with the real outcome as its label:
1. real episodes of the dataset (the world model's held-out episodes stay out);
2. dreamed replays of those episodes: their real actions replayed in the world model;
3. the policy's own rollouts in the reality on training initial states (its near-misses),
   and their dreamed replays: this is what the judge sees during RL.
A refresh passes `init` (the previous judge) and the newer policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gymnast_core.dataset import EpisodeDataset, IndexEntry
from gymnast_core.envs.metaworld_env import RealityConfig
from gymnast_policy.augment import color_jitter, random_shift_crop
from gymnast_world_model.data import split_entries
from gymnast_world_model.dream_env import DreamConfig, dream_replay
from gymnast_reward.learned_judge import LearnedJudge, LearnedJudgeConfig, load_learned_judge, save_learned_judge


@dataclass
class LabelledVideos:
    """Videos uint8 [N, T, H, W, 3] with instructions, real outcomes and where each came from."""

    videos: np.ndarray
    instructions: list[str]
    labels: np.ndarray  # bool [N]
    kinds: list[str]

    @staticmethod
    def concat(parts: list["LabelledVideos"]) -> "LabelledVideos":
        parts = [p for p in parts if len(p.labels)]
        return LabelledVideos(np.concatenate([p.videos for p in parts]), sum((p.instructions for p in parts), []),
                              np.concatenate([p.labels for p in parts]), sum((p.kinds for p in parts), []))


def load_real(dataset: EpisodeDataset, entries: list[IndexEntry], kind: str) -> tuple[LabelledVideos, np.ndarray]:
    """Real videos of `entries` (all the same length) and their actions [N, T, A]."""
    unlabelled = [e.key for e in entries if e.success is None]
    if unlabelled:
        raise ValueError(f"{dataset.root}: episodes without a success label cannot train or test a judge: {unlabelled[:3]}")
    episodes = [dataset.load(e) for e in entries]
    lengths = {len(ep.actions) for ep in episodes}
    if len(lengths) != 1:
        raise ValueError(f"{dataset.root}: judge videos must share one length, got lengths {sorted(lengths)}")
    videos = LabelledVideos(np.stack([ep.frames for ep in episodes]), [ep.instruction for ep in episodes],
                            np.array([bool(e.success) for e in entries]), [kind] * len(entries))
    return videos, np.stack([ep.actions for ep in episodes])


def dreamed(dream: DreamConfig, real: LabelledVideos, actions: np.ndarray, kind: str) -> LabelledVideos:
    """The same actions replayed in the world model from the real first frames; same labels."""
    env = dream.make_env()
    videos = dream_replay(env, real.videos[:, 0], actions, real.instructions)
    return LabelledVideos(videos, list(real.instructions), real.labels.copy(), [kind] * len(real.labels))


@dataclass
class TrainJudgeConfig:
    """Train the learned judge on real, dreamed and policy videos labelled with real outcomes."""

    dataset: str = "outputs/default/data"
    dream: DreamConfig = field(default_factory=DreamConfig)
    # Policy whose own rollouts (near-misses) join the training set; '' = none.
    policy: str = "outputs/default/policy_sft"
    policy_episodes_per_task: int = 24
    policy_temperature: float = 1.0
    reality: RealityConfig = field(default_factory=RealityConfig)
    out: str = "outputs/default/judge"
    # A previous judge to refresh from ('' = from scratch).
    init: str = ""
    # Must match the world model's split, so its held-out episodes stay unseen by both.
    holdout_fraction: float = 0.1
    model: LearnedJudgeConfig = field(default_factory=LearnedJudgeConfig)
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2


def gather_training_videos(config: TrainJudgeConfig) -> LabelledVideos:
    from gymnast_policy.evaluate import record_rollouts

    dataset = EpisodeDataset.open(config.dataset)
    train_entries, _ = split_entries(dataset, config.holdout_fraction)
    real, actions = load_real(dataset, train_entries, "real")
    parts = [real]
    if config.dream.checkpoint:
        parts.append(dreamed(config.dream, real, actions, "dream"))
    if config.policy:
        rollouts = record_rollouts(config.policy, config.reality, Path(config.out) / "policy_rollouts" / Path(config.policy).name,
                                   "train", config.policy_episodes_per_task, config.policy_temperature, config.seed)
        policy_real, policy_actions = load_real(rollouts, rollouts.entries, "policy")
        parts.append(policy_real)
        if config.dream.checkpoint:
            parts.append(dreamed(config.dream, policy_real, policy_actions, "policy-dream"))
    return LabelledVideos.concat(parts)


def train_judge(config: TrainJudgeConfig) -> LearnedJudge:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data = gather_training_videos(config)
    judge = load_learned_judge(config.init) if config.init else LearnedJudge(config.model)
    judge.train()
    inputs = judge.inputs(data.videos)  # [N, 3F, S, S] in [-1, 1]
    labels = torch.from_numpy(data.labels.astype(np.float32))
    # Balance the classes: failures dominate the mix, and the false-positive rate matters most.
    positives = float(labels.sum())
    pos_weight = torch.tensor((len(labels) - positives) / max(positives, 1.0))
    optimizer = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    frames_per_video = judge.config.frames
    started = time.monotonic()
    progress = tqdm(range(config.steps), desc="train-judge", unit="step")
    for _ in progress:
        index = torch.randint(0, len(labels), (config.batch_size,), generator=generator)
        x = augment(inputs[index], frames_per_video, generator)
        logits = judge(x, [data.instructions[i] for i in index.tolist()])
        loss = F.binary_cross_entropy_with_logits(logits, labels[index], pos_weight=pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    judge.eval()
    counts = {kind: int(sum(k == kind for k in data.kinds)) for kind in sorted(set(data.kinds))}
    save_learned_judge(judge, config.out, {"trained_on": counts, "positives": int(positives), "steps": config.steps,
                                           "minutes": (time.monotonic() - started) / 60, "policy": config.policy,
                                           "world_model": config.dream.checkpoint, "init": config.init})
    return judge


def augment(x: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """A random shift per frame and one colour jitter per video, on inputs [B, 3F, S, S]."""
    batch, channels, size, _ = x.shape
    as_uint8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    per_frame = as_uint8.view(batch, frames, 3, size, size).permute(0, 1, 3, 4, 2).reshape(batch * frames, size, size, 3)
    shifted = random_shift_crop(per_frame, 3, generator)
    # A video's frames stacked into one image, so they share the jitter.
    jittered = color_jitter(shifted.reshape(batch, frames * size, size, 3), 0.15, generator)
    back = jittered.view(batch, frames, size, size, 3).permute(0, 1, 4, 2, 3).reshape(batch, channels, size, size)
    return back.float() / 127.5 - 1.0


def main(config: TrainJudgeConfig) -> None:
    train_judge(config)
    print(f"judge: {config.out}")
