"""Training clips from an episode dataset, held in memory as uint8 arrays."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from gymnast_core.dataset import EpisodeDataset, IndexEntry
from gymnast_core.video import resize_frames


def is_held_out(key: str, fraction: float) -> bool:
    """A stable split by key, so every command agrees on which episodes are held out."""
    return (zlib.crc32(key.encode()) % 1000) < fraction * 1000


def split_entries(dataset: EpisodeDataset, holdout_fraction: float) -> tuple[list[IndexEntry], list[IndexEntry]]:
    train = [e for e in dataset.entries if not is_held_out(e.key, holdout_fraction)]
    held_out = [e for e in dataset.entries if is_held_out(e.key, holdout_fraction)]
    return train, held_out


@dataclass
class Clips:
    """A training batch of clips."""

    frames: np.ndarray  # uint8 [B, L, H, W, 3]
    actions: np.ndarray  # normalised [B, L-1, A]; action t moves frame t to t+1
    padding: np.ndarray  # int [B], leading frames that are copies of the episode's first (before it starts)


class ClipSampler:
    """Random fixed-length clips from a set of episodes, actions normalised by the dataset's ActionSpec."""

    def __init__(self, dataset: EpisodeDataset, entries: list[IndexEntry], clip_length: int, image_size: int,
                 max_padding: int = 0):
        if not entries:
            raise ValueError(f"{dataset.root}: no episodes to sample clips from")
        episodes = [dataset.load(e) for e in tqdm(entries, desc="load episodes", unit="episode", leave=False)]
        self.frames = [resize_frames(ep.frames, image_size) for ep in episodes]
        self.actions = [dataset.action_spec.normalize(ep.actions) for ep in episodes]
        # Clips may start up to `max_padding` frames before the episode, filled with its first frame.
        self.clip_length, self.max_padding = clip_length, max_padding
        too_short = [e.key for e, a in zip(entries, self.actions) if len(a) + 1 < clip_length]
        if too_short:
            raise ValueError(f"episodes shorter than the clip length {clip_length}: {too_short[:3]}")

    def sample(self, batch_size: int, rng: np.random.Generator) -> Clips:
        frames, actions, padding = [], [], []
        for i in rng.integers(0, len(self.frames), batch_size):
            steps = len(self.actions[i])
            start = int(rng.integers(-self.max_padding, steps + 2 - self.clip_length))
            # Indices before 0 repeat the first frame: the state a rollout starts from.
            index = np.clip(np.arange(start, start + self.clip_length), 0, None)
            frames.append(self.frames[i][index])
            clip_actions = self.actions[i][index[1:] - 1]
            # Copies of the first frame were reached by no action (a rollout starts with zeros too).
            clip_actions[index[1:] == 0] = 0.0
            actions.append(clip_actions)
            padding.append(max(0, -start))
        return Clips(np.stack(frames), np.stack(actions), np.array(padding))
