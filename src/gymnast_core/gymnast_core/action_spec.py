"""What an action means: its dimensions, units, bounds, gripper convention and normalisation.

Policies see actions normalised to [-1, 1]: continuous dimensions through the dataset's
1st/99th percentiles (OpenVLA's q01/q99 scheme, robust to outliers), the gripper through
its declared open/closed values so that +1 always means open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NormStats:
    """Per-dimension statistics of a dataset's actions."""

    q01: tuple[float, ...]
    q99: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_actions(cls, actions: np.ndarray) -> "NormStats":
        actions = np.asarray(actions, dtype=np.float64).reshape(-1, np.shape(actions)[-1])
        if len(actions) == 0:
            raise ValueError("cannot compute normalisation statistics from zero actions")
        as_tuple = lambda x: tuple(float(v) for v in x)  # noqa: E731
        return cls(
            q01=as_tuple(np.quantile(actions, 0.01, axis=0)),
            q99=as_tuple(np.quantile(actions, 0.99, axis=0)),
            mean=as_tuple(actions.mean(axis=0)),
            std=as_tuple(actions.std(axis=0)),
        )

    @property
    def dim(self) -> int:
        return len(self.q01)


@dataclass(frozen=True)
class ActionSpec:
    """An action space: names (and so dimension), physical bounds, gripper and rate."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    # Index of the gripper dimension, or None for robots without one.
    gripper_index: int | None = None
    # Raw gripper values meaning fully open / fully closed (Bridge: 1 / 0).
    gripper_open: float = 1.0
    gripper_closed: float = 0.0
    control_hz: float = 5.0
    stats: NormStats | None = None

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ValueError(
                f"ActionSpec: names ({len(self.names)}), low ({len(self.low)}) and high "
                f"({len(self.high)}) must have the same length"
            )
        if any(lo >= hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"ActionSpec: every low must be below its high, got {self.low} / {self.high}")
        if self.gripper_index is not None and not 0 <= self.gripper_index < self.dim:
            raise ValueError(f"ActionSpec: gripper_index {self.gripper_index} is outside 0..{self.dim - 1}")
        if self.stats is not None and self.stats.dim != self.dim:
            raise ValueError(
                f"ActionSpec: normalisation statistics have dimension {self.stats.dim}, "
                f"but the action has {self.dim} ({', '.join(self.names)})"
            )

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def period(self) -> float:
        return 1.0 / self.control_hz

    def with_stats(self, stats: NormStats) -> "ActionSpec":
        return replace(self, stats=stats)

    def validate(self, actions: np.ndarray, what: str = "actions") -> np.ndarray:
        """Return `actions` as float32 [..., dim], or raise ValueError naming the problem."""
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim == 0 or actions.shape[-1] != self.dim:
            raise ValueError(f"{what}: expected last dimension {self.dim} ({', '.join(self.names)}), got shape {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError(f"{what}: contains NaN or infinite values")
        return actions

    def clip(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(actions, np.asarray(self.low, np.float32), np.asarray(self.high, np.float32))

    def _continuous_range(self) -> tuple[np.ndarray, np.ndarray]:
        if self.stats is None:
            lo, hi = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
        else:
            lo, hi = np.asarray(self.stats.q01, np.float32), np.asarray(self.stats.q99, np.float32)
        if self.gripper_index is not None:
            lo = lo.copy()
            hi = hi.copy()
            # Maps closed -> -1 and open -> +1 whatever the raw convention.
            lo[self.gripper_index] = self.gripper_closed
            hi[self.gripper_index] = self.gripper_open
        # A constant dimension (q01 == q99) would divide by zero; give it unit width.
        same = np.isclose(lo, hi)
        hi = np.where(same, lo + 1.0, hi)
        return lo, hi

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Physical units -> [-1, 1] (clipped)."""
        actions = self.validate(actions)
        lo, hi = self._continuous_range()
        return np.clip(2.0 * (actions - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        """[-1, 1] -> physical units, clipped to the spec's bounds."""
        normalized = self.validate(normalized, "normalized actions")
        lo, hi = self._continuous_range()
        return self.clip((np.clip(normalized, -1.0, 1.0) + 1.0) * 0.5 * (hi - lo) + lo)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ActionSpec":
        data = dict(data)
        stats = data.pop("stats", None)
        tuples = {k: tuple(v) for k, v in data.items() if k in ("names", "low", "high")}
        return cls(**{**data, **tuples}, stats=None if stats is None else NormStats(**{k: tuple(v) for k, v in stats.items()}))


# Bridge V2 / WidowX 250: end-effector deltas in the base frame (x forward, y left, z up),
# absolute gripper (1 open, 0 closed), 5 Hz.
BRIDGE_ACTION_SPEC = ActionSpec(
    names=("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
    low=(-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0),
    high=(0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0),
    gripper_index=6,
    gripper_open=1.0,
    gripper_closed=0.0,
    control_hz=5.0,
)
