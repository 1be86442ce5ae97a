"""`learned` judge: a compact video-language success classifier (the CPU default).

A small CNN reads `frames` evenly spaced frames of the video (first and last included),
stacked as the channels of one image and FiLM-conditioned on the frozen sentence embedding of
the instruction, and outputs P(success). With `per_frame`, the CNN scores each frame beside the first one and the video's score is a soft
maximum over frames: the reality's success flag latches (a reach that touches the goal once and
drifts away counts), so success at any frame is what the label means.

It is trained by `gymnast train-judge` (gymnast_pipelines.train_judge) on real episodes, dreamed replays of real
episodes labelled with the real outcome, and the current policy's own rollouts (its near-misses),
because a judge that never saw those is easy to fool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from gymnast_core.atomic import read_json, write_json
from gymnast_core.torch_files import load_torch, save_torch
from gymnast_core.protocols import Verdict
from gymnast_core.video import resize_frames
from gymnast_core.text_encoder import FrozenSentenceEncoder
from gymnast_reward.rubric import check_batch


@dataclass(frozen=True)
class LearnedJudgeConfig:
    image_size: int = 64
    frames: int = 6
    channels: tuple[int, ...] = (16, 32, 64)
    # Keep the final feature map's layout (where the hand is relative to the target) instead of
    # averaging it away: averaged, a puck in the hole or a turned faucet handle was lost.
    flatten: bool = True
    # Score every frame (next to the first) and pool by a soft maximum, instead of stacking all
    # frames as the channels of one image.
    per_frame: bool = False
    # P(success) at or above this counts as success.
    threshold: float = 0.5


def frame_indices(length: int, count: int) -> np.ndarray:
    """`count` evenly spaced indices into a video of `length` frames, first and last included."""
    return np.linspace(0, length - 1, count).round().astype(int)


class LearnedJudge(nn.Module):
    name = "learned"

    def __init__(self, config: LearnedJudgeConfig = LearnedJudgeConfig(), text_encoder: FrozenSentenceEncoder | None = None):
        super().__init__()
        self.config = config
        self.text_encoder = text_encoder or FrozenSentenceEncoder()
        layers, width = [], 6 if config.per_frame else 3 * config.frames
        for out in config.channels:
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.SiLU()]
            width = out
        self.encoder = nn.Sequential(*layers)
        self.film = nn.Linear(self.text_encoder.dim, 2 * width)
        grid = config.image_size // 2 ** len(config.channels)
        features = width * grid * grid if config.flatten else width
        self.head = nn.Sequential(nn.Linear(features, width), nn.SiLU(), nn.Linear(width, 1))

    def inputs(self, videos: np.ndarray) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> float [B, 3 * frames, S, S] in [-1, 1]."""
        picked = videos[:, frame_indices(videos.shape[1], self.config.frames)]
        batch, count = picked.shape[:2]
        flat = resize_frames(picked.reshape(-1, *picked.shape[2:]), self.config.image_size)
        x = torch.from_numpy(flat).float().div(127.5).sub(1.0).permute(0, 3, 1, 2)
        return x.reshape(batch, count * 3, self.config.image_size, self.config.image_size)

    def forward(self, x: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        """Success logits [B] for inputs [B, 3 * frames, S, S]."""
        text = self.text_encoder.encode(instructions).to(x.device)
        if not self.config.per_frame:
            return self._logits(x, text)
        batch, frames = x.shape[0], self.config.frames
        clips = x.unflatten(1, (frames, 3))
        pairs = torch.cat([clips, clips[:, :1].expand_as(clips)], dim=2).flatten(0, 1)  # [B * T, 6, S, S]
        per_frame = self._logits(pairs, text.repeat_interleave(frames, dim=0)).view(batch, frames)
        # log-mean-exp: between the mean and the maximum, and every frame gets a gradient.
        return torch.logsumexp(per_frame, dim=1) - math.log(frames)

    def _logits(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        scale, shift = self.film(text)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = h.flatten(1) if self.config.flatten else h.mean(dim=(2, 3))
        return self.head(h).squeeze(-1)

    @torch.no_grad()
    def probabilities(self, videos: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        check_batch(videos, instructions)
        return torch.sigmoid(self(self.inputs(videos), instructions)).numpy()

    def judge(self, videos: np.ndarray, instructions: Sequence[str]) -> Verdict:
        scores = self.probabilities(videos, instructions).astype(np.float32)
        success = scores >= self.config.threshold
        rationales = [f"learned judge: P(success) = {p:.2f}" for p in scores]
        return Verdict(scores=scores, success=success, known=np.ones(len(scores), bool), rationales=rationales)


def save_learned_judge(judge: LearnedJudge, folder: str | Path, extra: dict | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # The frozen text encoder is not an nn.Module attribute: it loads from its own package.
    save_torch(folder / "weights.pt", judge.state_dict())
    write_json(folder / "judge.json", {"type": "learned", "config": asdict(judge.config), **(extra or {})})


def load_learned_judge(folder: str | Path) -> LearnedJudge:
    folder = Path(folder)
    if not (folder / "judge.json").exists() or not (folder / "weights.pt").exists():
        raise FileNotFoundError(f"{folder}: no learned judge here (judge.json or weights.pt missing); "
                                "train one with `gymnast train-judge`")
    meta = read_json(folder / "judge.json")
    config = meta["config"]
    judge = LearnedJudge(LearnedJudgeConfig(**{**config, "channels": tuple(config["channels"])}))
    state = load_torch(folder / "weights.pt", "learned-judge weights")
    try:
        judge.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{folder}/weights.pt does not match judge.json: {error}") from error
    return judge.eval()

