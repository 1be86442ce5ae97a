"""The small contracts between packages. GRPO, evaluation and the ROS nodes see only these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from gymnast_core.action_spec import ActionSpec
from gymnast_core.task import Task


@dataclass
class ActionChunk:
    actions: np.ndarray  # float32 [B, K, A], physical units of the policy's ActionSpec
    tokens: np.ndarray  # int64 [B, K * A], the discrete action tokens sampled
    logprobs: np.ndarray  # float32 [B], log-probability of each chunk under the policy


@runtime_checkable
class Policy(Protocol):
    action_spec: ActionSpec
    chunk_size: int

    def act(self, frames: np.ndarray, instructions: Sequence[str], temperature: float = 1.0) -> ActionChunk:
        """frames: uint8 [B, H, W, 3] (the newest frame only)."""

    def logprob(self, frames: np.ndarray, instructions: Sequence[str], tokens: np.ndarray) -> np.ndarray:
        """Log-probability [B] of given action tokens."""


@runtime_checkable
class BatchedEnv(Protocol):
    """B environments stepped in lock-step: the dream, the evaluation reality, the real arm."""

    action_spec: ActionSpec
    image_size: int

    def reset(self, tasks: Sequence[Task]) -> np.ndarray:
        """Start one rollout per task; returns the first frames, uint8 [B, H, W, 3]."""

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply actions [B, A]; returns the next frames, uint8 [B, H, W, 3]."""


@dataclass
class Verdict:
    scores: np.ndarray  # float32 [B] in [0, 1]; NaN where unknown
    success: np.ndarray  # bool [B]
    known: np.ndarray  # bool [B]; False when the judge could not decide (never a silent 0)
    rationales: list[str]

    @classmethod
    def concat(cls, verdicts: Sequence["Verdict"]) -> "Verdict":
        """The verdicts of several batches as one."""
        return cls(scores=np.concatenate([v.scores for v in verdicts]), success=np.concatenate([v.success for v in verdicts]),
                   known=np.concatenate([v.known for v in verdicts]), rationales=[r for v in verdicts for r in v.rationales])


@runtime_checkable
class Judge(Protocol):
    name: str

    def judge(self, videos: np.ndarray, instructions: Sequence[str]) -> Verdict:
        """videos: uint8 [B, T, H, W, 3]."""
