"""The driver's command queue: only fresh, stamped actions execute."""

from __future__ import annotations

import numpy as np
import pytest

from gymnast_robot.command_queue import CommandQueue

PERIOD = 0.2


def _chunk(k: int) -> np.ndarray:
    return np.arange(k, dtype=np.float32)[:, None] * np.ones((1, 7), np.float32)


def test_a_fresh_action_executes_once():
    queue = CommandQueue(max_age=0.5, max_len=10)
    assert queue.push(_chunk(1), stamp=10.0, period=PERIOD, now=10.05) == 0
    action, stale = queue.pop(now=10.1)
    np.testing.assert_array_equal(action, _chunk(1)[0])
    assert stale == 0
    assert queue.pop(now=10.3) == (None, 0)


def test_a_driver_stall_drops_the_actions_whose_time_has_passed():
    queue = CommandQueue(max_age=0.3, max_len=10)
    queue.push(_chunk(5), stamp=10.0, period=PERIOD, now=10.0)
    assert queue.pop(now=10.0)[0][0] == 0
    action, stale = queue.pop(now=10.95)  # actions due at 10.2, 10.4 and 10.6 are over 0.3 s late
    assert action[0] == 4 and stale == 3
    assert len(queue) == 0


def test_a_sender_that_stops_leaves_nothing_to_execute_later():
    queue = CommandQueue(max_age=0.5, max_len=10)
    queue.push(_chunk(3), stamp=10.0, period=PERIOD, now=10.0)
    assert queue.pop(now=11.5) == (None, 3)


@pytest.mark.parametrize("stamp, match", [(0.0, "unstamped"), (12.0, "in the future.*clocks"),
                                          (8.0, "stale command.*max_action_age")])
def test_unstamped_stale_and_future_commands_are_refused_with_the_reason(stamp, match):
    queue = CommandQueue(max_age=0.5, max_len=10)
    with pytest.raises(ValueError, match=match):
        queue.push(_chunk(2), stamp=stamp, period=PERIOD, now=10.0)
    assert len(queue) == 0


def test_a_chunk_whose_last_action_is_fresh_is_accepted():
    queue = CommandQueue(max_age=0.5, max_len=10)
    queue.push(_chunk(5), stamp=9.0, period=PERIOD, now=10.0)  # the last action is due at 9.8
    action, stale = queue.pop(now=10.0)
    assert action[0] == 3 and stale == 3


def test_overflow_pushes_out_the_oldest_and_reports_it():
    queue = CommandQueue(max_age=5.0, max_len=3)
    assert queue.push(_chunk(2), stamp=10.0, period=PERIOD, now=10.0) == 0
    assert queue.push(_chunk(2), stamp=10.0, period=PERIOD, now=10.0) == 1
    assert [queue.pop(now=10.0)[0][0] for _ in range(3)] == [1, 0, 1]


def test_clear_empties_the_queue_and_bad_settings_are_refused():
    queue = CommandQueue(max_age=0.5, max_len=10)
    queue.push(_chunk(3), stamp=10.0, period=PERIOD, now=10.0)
    queue.clear()
    assert queue.pop(now=10.0) == (None, 0)
    with pytest.raises(ValueError, match="control_period"):
        queue.push(_chunk(1), stamp=10.0, period=0.0, now=10.0)
    with pytest.raises(ValueError, match="max_age"):
        CommandQueue(max_age=0.0, max_len=10)
