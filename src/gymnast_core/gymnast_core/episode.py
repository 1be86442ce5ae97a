"""One recorded or imagined trajectory: T+1 frames around T actions, plus what it was for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class EpisodeError(ValueError):
    """An episode's arrays or fields are inconsistent; the message names the field."""

    def __init__(self, field_name: str, problem: str, source: str | None = None):
        self.field_name = field_name
        where = f"{source}: " if source else ""
        super().__init__(f"{where}field '{field_name}': {problem}")


@dataclass
class Episode:
    """frames[t] is observed before actions[t]; frames[t + 1] after it."""

    frames: np.ndarray  # uint8 [T+1, H, W, 3]
    actions: np.ndarray  # float32 [T, A]
    instruction: str
    success: bool | None = None
    # Free-form provenance: source (expert / noisy / random / policy / teleop), task, scene,
    # robot, fps, seed.
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, source: str | None = None) -> None:
        frames, actions = self.frames, self.actions
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
            raise EpisodeError("frames", f"expected a uint8 array, got {getattr(frames, 'dtype', type(frames))}", source)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise EpisodeError("frames", f"expected shape [T+1, H, W, 3], got {frames.shape}", source)
        if not isinstance(actions, np.ndarray) or actions.dtype != np.float32:
            raise EpisodeError("actions", f"expected a float32 array, got {getattr(actions, 'dtype', type(actions))}", source)
        if actions.ndim != 2:
            raise EpisodeError("actions", f"expected shape [T, A], got {actions.shape}", source)
        if len(frames) != len(actions) + 1:
            raise EpisodeError(
                "frames", f"has {len(frames)} frames for {len(actions)} actions; expected T+1 = {len(actions) + 1}", source
            )
        if len(actions) == 0:
            raise EpisodeError("actions", "episode has no steps", source)
        if not np.all(np.isfinite(actions)):
            raise EpisodeError("actions", "contains NaN or infinite values", source)
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise EpisodeError("instruction", f"expected a non-empty string, got {self.instruction!r}", source)
        if self.success is not None and not isinstance(self.success, (bool, np.bool_)):
            raise EpisodeError("success", f"expected True, False or None, got {self.success!r}", source)

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])
