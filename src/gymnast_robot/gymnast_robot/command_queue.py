"""Which commanded action the driver executes next: only fresh ones.

A chunk stamped ``t`` with control period ``p`` holds actions due at ``t``, ``t + p``, ...
An action runs only while it is at most ``max_age`` seconds past due. So a delayed message,
a backlog behind a stalled driver, or a sender that died mid-chunk never moves the arm, and
an unstamped chunk is refused. Times are seconds on the ROS clock; across machines that
needs synchronised clocks (chrony), and a chunk stamped in the future says so.
Plain Python (no rclpy); tests in test/gymnast_robot/test_command_queue.py.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class CommandQueue:
    def __init__(self, max_age: float, max_len: int):
        if max_age <= 0 or max_len < 1:
            raise ValueError(f"max_age must be > 0 s and max_len >= 1, got {max_age} and {max_len}")
        self.max_age = max_age
        self._due: deque[tuple[float, np.ndarray]] = deque(maxlen=max_len)

    def __len__(self) -> int:
        return len(self._due)

    def push(self, actions: np.ndarray, stamp: float, period: float, now: float) -> int:
        """Queue a chunk's [K, A] actions; return how many queued actions the chunk pushed out.

        Raises ValueError, naming the problem, for a non-positive period, an unstamped chunk, one
        whose last action is already stale, or one stamped further in the future than ``max_age``."""
        if period <= 0:
            raise ValueError(f"control_period must be > 0 s, got {period:g}")
        if stamp <= 0:
            raise ValueError("unstamped command: the driver executes only commands with a header stamp")
        if stamp - now > self.max_age:
            raise ValueError(f"command stamped {stamp - now:.2f} s in the future: are the clocks synchronised?")
        last_due = stamp + (len(actions) - 1) * period
        if now - last_due > self.max_age:
            raise ValueError(f"stale command: due {now - last_due:.2f} s ago, more than max_action_age "
                             f"{self.max_age:g} s")
        overflow = max(0, len(self._due) + len(actions) - self._due.maxlen)
        self._due.extend((stamp + k * period, np.asarray(action)) for k, action in enumerate(actions))
        return overflow

    def pop(self, now: float) -> tuple[np.ndarray | None, int]:
        """The next action still fresh at ``now`` (None when there is none), and how many stale
        ones were dropped to reach it."""
        stale = 0
        while self._due:
            due, action = self._due.popleft()
            if now - due <= self.max_age:
                return action, stale
            stale += 1
        return None, stale

    def clear(self) -> None:
        self._due.clear()
