"""The dream: a `BatchedEnv` whose frames come from the world model.

`reset` takes real frames (any size; resized) and instructions through `Task`s; `step` takes
a batch of actions in the dataset's ActionSpec. B rollouts share every forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from gymnast_core.names import WORLD_MODEL_CHECKPOINT
from gymnast_core.task import Task
from gymnast_core.video import resize_frames
from gymnast_world_model.world_model import WorldModel, load_world_model


class DreamEnv:
    def __init__(self, model: WorldModel, sampling_steps: int = 4, cfg_scale: float = 1.0, context_window: int = 20,
                 seed: int = 0):
        self.model = model.eval()
        self.action_spec = model.action_spec
        self.image_size = model.config.image_size
        self.sampling_steps, self.cfg_scale, self.context_window = sampling_steps, cfg_scale, context_window
        self.device = next(model.dynamics.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._state = None
        self.instructions: list[str] = []

    def reset(self, tasks: Sequence[Task]) -> np.ndarray:
        missing = [i for i, t in enumerate(tasks) if t.initial_frame is None]
        if missing:
            raise ValueError(f"the dream starts from real frames; tasks {missing} have no initial_frame")
        frames = np.stack([resize_frames(np.asarray(t.initial_frame, np.uint8), self.image_size) for t in tasks])
        return self.reset_frames(frames, [t.instruction for t in tasks])

    def reset_frames(self, frames: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames: expected uint8 [B, H, W, 3], got {frames.dtype} {frames.shape}")
        if len(instructions) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(instructions)} instructions")
        frames = resize_frames(frames, self.image_size)
        with torch.no_grad():
            first = self.model.codec.encode(torch.from_numpy(frames).to(self.device))
        self._state = self.model.dynamics.start(first, self.context_window, self.generator)
        self.instructions = list(instructions)
        return frames

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, np.float32)
        if actions.shape != (len(self.instructions), self.action_spec.dim):
            raise ValueError(f"actions: expected shape ({len(self.instructions)}, {self.action_spec.dim}), got {actions.shape}")
        normalized = self.model.normalize_actions(actions).to(self.device)
        latent = self.model.dynamics.next_latent(self._state, normalized, self.sampling_steps, self.cfg_scale, self.generator)
        return self.model.codec.decode(latent).cpu().numpy()


def dream_replay(env: DreamEnv, first_frames: np.ndarray, actions: np.ndarray, instructions: Sequence[str],
                 batch_size: int = 32) -> np.ndarray:
    """Dream what recorded actions [N, T, A] do from real first frames [N, H, W, 3].

    Returns dreamed videos [N, T + 1, S, S, 3]. A replay of a real episode, labelled with that
    episode's real outcome, is how the judge learns what dreams of success and failure look like.
    """
    videos = []
    for start in tqdm(range(0, len(first_frames), batch_size), desc="dream replays", unit="batch", leave=False):
        part = slice(start, start + batch_size)
        frames = [env.reset_frames(first_frames[part], list(instructions[part]))]
        for t in range(actions.shape[1]):
            frames.append(env.step(actions[part, t]))
        videos.append(np.stack(frames, axis=1))
    return np.concatenate(videos)


@dataclass(frozen=True)
class DreamConfig:
    """How to dream: one config shared by judge training, GRPO and the dream node."""

    checkpoint: str = WORLD_MODEL_CHECKPOINT
    sampling_steps: int = 4
    # Classifier-free guidance on the actions; 1.25 chosen on episodes the evaluation does not use (docs/world_model).
    cfg_scale: float = 1.25
    context_window: int = 20
    seed: int = 0
    # Where the world model runs: 'auto' = CUDA when available, else CPU. Frames and actions cross as numpy.
    device: str = "auto"

    def make_env(self) -> DreamEnv:
        return DreamEnv(load_world_model(self.checkpoint, device=self.device), self.sampling_steps, self.cfg_scale,
                        self.context_window, self.seed)
