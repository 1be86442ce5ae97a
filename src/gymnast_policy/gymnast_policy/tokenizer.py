"""Actions <-> discrete tokens: each normalised dimension in 256 uniform bins (OpenVLA style).

A chunk of K actions of dimension A is K * A tokens, ordered action by action. Normalisation
is the ActionSpec's (q01/q99 per continuous dimension, the gripper by its open/closed
values), so every dimension's bins span [-1, 1].
"""

from __future__ import annotations

import numpy as np

from gymnast_core.action_spec import ActionSpec


class ActionTokenizer:
    def __init__(self, action_spec: ActionSpec, bins: int = 256, chunk_size: int = 5):
        if action_spec.stats is None:
            raise ValueError("the action tokenizer needs an ActionSpec with normalisation statistics")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.action_spec, self.bins, self.chunk_size = action_spec, bins, chunk_size
        self.bin_width = 2.0 / bins
        self.centres = -1.0 + self.bin_width * (np.arange(bins) + 0.5)

    @property
    def tokens_per_chunk(self) -> int:
        return self.chunk_size * self.action_spec.dim

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Physical actions [..., K, A] -> tokens int64 [..., K * A] in [0, bins)."""
        actions = np.asarray(actions, np.float32)
        if actions.shape[-2:] != (self.chunk_size, self.action_spec.dim):
            raise ValueError(f"actions: expected [..., {self.chunk_size}, {self.action_spec.dim}], got {actions.shape}")
        normalized = self.action_spec.normalize(actions)
        tokens = np.floor((normalized + 1.0) / self.bin_width).astype(np.int64)
        return np.clip(tokens, 0, self.bins - 1).reshape(*actions.shape[:-2], self.tokens_per_chunk)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens [..., K * A] -> physical actions [..., K, A] at the bin centres."""
        tokens = np.asarray(tokens)
        if tokens.shape[-1] != self.tokens_per_chunk:
            raise ValueError(f"tokens: expected last dimension {self.tokens_per_chunk}, got {tokens.shape}")
        if tokens.min() < 0 or tokens.max() >= self.bins:
            raise ValueError(f"tokens must lie in [0, {self.bins}), got [{tokens.min()}, {tokens.max()}]")
        normalized = self.centres[tokens].astype(np.float32).reshape(*tokens.shape[:-1], self.chunk_size, self.action_spec.dim)
        return self.action_spec.unnormalize(normalized)
