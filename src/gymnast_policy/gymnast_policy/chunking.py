"""Joining consecutive action chunks at the control rate: latency-aware temporal ensembling.

A chunk predicted from the frame seen at control step s holds the actions for steps s, s+1, ...
By the time it arrives the robot is at a later step; the actions it would have taken in the
past are dropped (so slow inference does not replay stale motion), and where several chunks
cover a step their predictions are averaged with ACT's exponential weights (older chunks weigh
more, which damps jumps between chunks). The gripper is absolute (open / closed), where an
average means nothing, so it follows the newest chunk.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class ChunkScheduler:
    def __init__(self, ensemble_decay: float = 0.1, gripper_index: int | None = None, max_chunks: int = 8):
        if ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {ensemble_decay}")
        self.ensemble_decay, self.gripper_index = ensemble_decay, gripper_index
        # (first step, actions [K, A]), oldest first.
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=max_chunks)
        # add() runs in the inference thread, next_action() in the control loop.
        self._lock = threading.Lock()

    def add(self, actions: np.ndarray, start_step: int) -> None:
        actions = np.asarray(actions, np.float32)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"a chunk is [K, A] with K >= 1, got shape {actions.shape}")
        with self._lock:
            self._chunks.append((start_step, actions))

    def covered_until(self) -> int:
        """First step no chunk covers (schedule the next inference before the robot gets there)."""
        with self._lock:
            return max((start + len(a) for start, a in self._chunks), default=0)

    def next_action(self, step: int) -> np.ndarray | None:
        """The action for control step `step`, or None when no chunk covers it (the robot holds)."""
        with self._lock:
            while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= step:
                self._chunks.popleft()
            covering = [a[step - start] for start, a in self._chunks if start <= step < start + len(a)]
        if not covering:
            return None
        predictions = np.stack(covering)
        weights = np.exp(-self.ensemble_decay * np.arange(len(predictions)))
        action = (weights[:, None] * predictions).sum(0) / weights.sum()
        if self.gripper_index is not None:
            action[self.gripper_index] = predictions[-1, self.gripper_index]
        return action.astype(np.float32)

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
