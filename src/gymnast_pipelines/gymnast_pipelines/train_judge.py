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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gymnast_core.atomic import atomic_open
from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset, IndexEntry
from gymnast_core.envs.metaworld_env import RealityConfig
from gymnast_core.names import DATA, JUDGE, SFT_POLICY
from gymnast_world_model.data import split_entries
from gymnast_world_model.dream_env import DreamConfig, dream_replay
from gymnast_reward.learned_judge import LearnedJudge, LearnedJudgeConfig, load_learned_judge, save_learned_judge


# The kind of `extra_data`'s episodes: real interaction the benchmark counts on top of the dataset's.
EXTRA_REAL = "extra-real"
JUMP_TO_GOAL = "jump-to-goal"


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

    def subset(self, index: np.ndarray) -> "LabelledVideos":
        """The videos at integer positions `index`."""
        return LabelledVideos(self.videos[index], [self.instructions[i] for i in index], self.labels[index],
                              [self.kinds[i] for i in index])

    def save(self, path: str | Path) -> None:
        with atomic_open(path, "wb") as handle:
            np.savez(handle, videos=self.videos, instructions=np.array(self.instructions), labels=self.labels,
                     kinds=np.array(self.kinds))

    @staticmethod
    def load(path: str | Path) -> "LabelledVideos":
        with np.load(path) as data:
            return LabelledVideos(data["videos"], data["instructions"].tolist(), data["labels"], data["kinds"].tolist())


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


def dreamed(dream: DreamConfig, real: LabelledVideos, actions: np.ndarray, kind: str | None = None) -> LabelledVideos:
    """The same actions replayed in the world model from the real first frames; same labels, and
    each video's kind `kind` (None: that of its real video)."""
    env = dream.make_env()
    videos = dream_replay(env, real.videos[:, 0], actions, real.instructions)
    return LabelledVideos(videos, list(real.instructions), real.labels.copy(),
                          list(real.kinds) if kind is None else [kind] * len(real.labels))


def jump_to_goal(videos: np.ndarray, goal_frames: int) -> np.ndarray:
    """Each video [N, T, H, W, 3] as its first frame held, then only its last `goal_frames` frames:
    the goal reached without the motion that gets there, a failure whatever its last frame shows."""
    held = np.repeat(videos[:, :1], videos.shape[1] - goal_frames, axis=1)
    return np.concatenate([held, videos[:, -goal_frames:]], axis=1)


def jump_cut_videos(successes: LabelledVideos, goal_frames: int, kind: str | None = None) -> LabelledVideos:
    """`jump_to_goal` of each video, labelled a failure, of kind `kind` (None: the video's own)."""
    return LabelledVideos(jump_to_goal(successes.videos, goal_frames), list(successes.instructions),
                          np.zeros(len(successes.labels), bool), list(successes.kinds) if kind is None else [kind] * len(successes.labels))


@dataclass(frozen=True)
class TrainJudgeConfig:
    """Train the learned judge on real, dreamed and policy videos labelled with real outcomes."""

    dataset: str = DATA
    dream: DreamConfig = field(default_factory=DreamConfig)
    # Policy whose own rollouts (near-misses) join the training set; '' = none.
    policy: str = SFT_POLICY
    # Many of the policy's rollouts and dream replays: fewer let its near-misses and dreams
    # through as successes (docs/history.md#judge).
    policy_episodes_per_task: int = 96
    # Real episodes replayed in the dream for training (half successes where possible).
    dream_replays: int = 364
    policy_temperature: float = 1.0
    reality: RealityConfig = field(default_factory=RealityConfig)
    out: str = JUDGE
    # Gathered training videos: read from this .npz if it exists, else written there after
    # gathering, so loss settings can be retrained without re-dreaming ('' = no cache).
    videos_cache: str = ""
    # More real datasets whose every episode joins the training set (e.g. near-misses collected
    # with `gymnast collect --first_seed`, so none shares an initial state with `dataset`).
    extra_data: tuple[str, ...] = ()
    # Jump-to-goal failures made from this many real successes of the dataset (each keeps its
    # last `jump_goal_frames` frames): a dream that jumps to the goal without the motion fails.
    jump_cuts: int = 200
    jump_goal_frames: int = 4
    # A previous judge to refresh from ('' = from scratch).
    init: str = ""
    # Must match the world model's split, so its held-out episodes stay unseen by both.
    holdout_fraction: float = 0.1
    model: LearnedJudgeConfig = field(default_factory=LearnedJudgeConfig)
    # Loss weights: false positives are what RL exploits, and the policy's own videos (real and
    # dreamed) are the ones the judge scores during RL. Chosen by judge-eval (docs/judge).
    failure_weight: float = 2.0
    policy_weight: float = 3.0
    # Weigh each task's successes and its failures equally (before the weights above): a task
    # whose training videos are mostly failures otherwise learns to call every video a failure.
    balance_tasks: bool = True
    # Loss weight of dreamed replays of real successes. A replay keeps its real label even where
    # the dream lost the success on the way, which teaches the judge to call failure-looking
    # dreams successes; without them (0) it calls every dream a failure.
    dreamed_success_weight: float = 0.3
    steps: int = 2500
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"steps": 1, "batch_size": 1, "threads": 1, "jump_cuts": 0, "jump_goal_frames": 1,
                                   "dreamed_success_weight": 0})


def balanced_subset(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` indices, half successes and half failures where there are enough of each."""
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    take_pos = min(len(positives), count // 2)
    take_neg = min(len(negatives), count - take_pos)
    take_pos = min(len(positives), count - take_neg)
    return np.sort(np.concatenate([rng.choice(positives, take_pos, replace=False), rng.choice(negatives, take_neg, replace=False)]))


def training_videos(config: TrainJudgeConfig) -> LabelledVideos:
    """The gathered videos (from the cache if there is one) plus every episode of `extra_data`."""
    if config.videos_cache and Path(config.videos_cache).exists():
        gathered = LabelledVideos.load(config.videos_cache)
    else:
        gathered = gather_training_videos(config)
    extras = [load_real(dataset, dataset.entries, EXTRA_REAL)[0] for dataset in map(EpisodeDataset.open, config.extra_data)]
    successes = np.flatnonzero(gathered.labels & (np.array(gathered.kinds) == "real"))
    pick = np.random.default_rng(config.seed).permutation(successes)[:config.jump_cuts]
    jumps = jump_cut_videos(gathered.subset(pick), config.jump_goal_frames, JUMP_TO_GOAL)
    return LabelledVideos.concat([gathered, *extras, jumps])


def gather_training_videos(config: TrainJudgeConfig) -> LabelledVideos:
    from gymnast_policy.evaluate import record_rollouts

    dataset = EpisodeDataset.open(config.dataset)
    train_entries, _ = split_entries(dataset, config.holdout_fraction)
    real, actions = load_real(dataset, train_entries, "real")
    parts = [real]
    if config.dream.checkpoint:
        # A class-balanced subset: dreaming every episode costs minutes on the CPU.
        pick = balanced_subset(real.labels, config.dream_replays, np.random.default_rng(config.seed))
        parts.append(dreamed(config.dream, real.subset(pick), actions[pick], "dream"))
    if config.policy:
        rollouts = record_rollouts(config.policy, config.reality, Path(config.out) / "policy_rollouts" / Path(config.policy).name,
                                   "train", config.policy_episodes_per_task, config.policy_temperature, config.seed)
        policy_real, policy_actions = load_real(rollouts, rollouts.entries, "policy")
        parts.append(policy_real)
        if config.dream.checkpoint:
            parts.append(dreamed(config.dream, policy_real, policy_actions, "policy-dream"))
    videos = LabelledVideos.concat(parts)
    if config.videos_cache:
        videos.save(config.videos_cache)
    return videos


def train_judge(config: TrainJudgeConfig) -> LearnedJudge:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data = training_videos(config)
    judge = load_learned_judge(config.init) if config.init else LearnedJudge(config.model)
    judge.train()
    inputs = judge.inputs(data.videos)  # [N, 3F, S, S] in [-1, 1]
    labels = torch.from_numpy(data.labels.astype(np.float32))
    positives = float(labels.sum())
    weights = torch.where(labels > 0, 1.0, config.failure_weight) * torch.tensor(
        [config.policy_weight if kind.startswith("policy") else 1.0 for kind in data.kinds])
    if config.balance_tasks:
        weights = weights * torch.from_numpy(class_balance(data.instructions, data.labels))
    dreamed_success = data.labels & np.char.endswith(np.array(data.kinds, dtype=str), "dream")
    weights = torch.where(torch.from_numpy(dreamed_success), config.dreamed_success_weight, 1.0) * weights
    optimizer = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.monotonic()
    progress = tqdm(range(config.steps), desc="train-judge", unit="step")
    for _ in progress:
        index = torch.randint(0, len(labels), (config.batch_size,), generator=generator)
        x = augment(inputs[index], generator)
        logits = judge(x, [data.instructions[i] for i in index.tolist()])
        loss = (F.binary_cross_entropy_with_logits(logits, labels[index], reduction="none") * weights[index]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    judge.eval()
    counts = {kind: int(sum(k == kind for k in data.kinds)) for kind in sorted(set(data.kinds))}
    save_learned_judge(judge, config.out, {"trained_on": counts, "positives": int(positives), "steps": config.steps,
                                           "minutes": (time.monotonic() - started) / 60, "policy": config.policy,
                                           "world_model": config.dream.checkpoint, "init": config.init,
                                           "extra_data": list(config.extra_data),
                                           "extra_real_episodes": counts.get(EXTRA_REAL, 0)})
    return judge


def class_balance(instructions: list[str], labels: np.ndarray) -> np.ndarray:
    """Per video, the weight that gives every (task, outcome) class the same total weight, mean 1."""
    classes = [(instruction, bool(label)) for instruction, label in zip(instructions, labels)]
    counts = Counter(classes)
    return np.array([len(classes) / (len(counts) * counts[c]) for c in classes], np.float32)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 3, jitter: float = 0.15) -> torch.Tensor:
    """One random shift (replicate padding) and one brightness/contrast jitter per video, on [B, 3F, S, S] in [-1, 1]."""
    batch, _, size, _ = x.shape
    padded = F.pad(x, (pad,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator).tolist()
    x = torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets)])
    gain = 1 + jitter * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    bias = jitter * (2 * torch.rand(batch, 1, 1, 1, generator=generator) - 1)
    return (x * gain + bias).clamp(-1, 1)


def main(config: TrainJudgeConfig) -> None:
    train_judge(config)
    print(f"judge: {config.out}")
