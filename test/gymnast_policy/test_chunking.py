"""Chunk joining: stale actions dropped by latency, overlapping chunks blended, gripper from the newest."""

import numpy as np
import pytest

from gymnast_policy.chunking import ChunkScheduler


def chunk(values, dim=2):
    return np.repeat(np.asarray(values, np.float32)[:, None], dim, axis=1)


def test_latency_drops_the_steps_already_executed():
    scheduler = ChunkScheduler(ensemble_decay=0.0)
    scheduler.add(chunk([0, 1, 2, 3, 4]), start_step=10)  # frame seen at step 10, chunk arrived at step 12
    assert scheduler.next_action(12)[0] == 2
    assert scheduler.covered_until() == 15
    assert scheduler.next_action(15) is None  # nothing covers it: the robot holds


def test_overlapping_chunks_are_averaged_with_act_weights():
    scheduler = ChunkScheduler(ensemble_decay=1.0)
    scheduler.add(chunk([0, 0, 0, 0]), start_step=0)
    scheduler.add(chunk([1, 1, 1, 1]), start_step=2)
    weights = np.exp(-np.arange(2.0))
    assert scheduler.next_action(2)[0] == pytest.approx(weights[1] / weights.sum())
    assert scheduler.next_action(4)[0] == pytest.approx(1.0)  # the old chunk ended


def test_consecutive_chunks_join_without_a_gap_or_a_jump():
    """Inference latency close to a chunk's duration: replanning two steps ahead leaves no gap,
    and ensembling makes the switch to a chunk that disagrees smaller than the disagreement."""
    scheduler = ChunkScheduler(ensemble_decay=0.1)
    scheduler.add(chunk([0.0] * 5), start_step=0)
    executed = []
    for step in range(5):
        if step == 3:  # replanned from the frame at step 1 (latency 2 steps)
            scheduler.add(chunk([1.0] * 5), start_step=1)
        executed.append(scheduler.next_action(step)[0])
    assert all(a is not None for a in executed)
    assert executed[:3] == [0.0, 0.0, 0.0] and 0.0 < executed[3] < 1.0
    assert scheduler.next_action(5)[0] == pytest.approx(1.0)


def test_gripper_follows_the_newest_chunk():
    scheduler = ChunkScheduler(ensemble_decay=0.0, gripper_index=1)
    scheduler.add(np.array([[0.0, 1.0]] * 3, np.float32), start_step=0)
    scheduler.add(np.array([[1.0, 0.0]] * 3, np.float32), start_step=0)
    action = scheduler.next_action(0)
    assert action[0] == pytest.approx(0.5) and action[1] == 0.0


def test_bad_chunks_and_settings_are_rejected():
    with pytest.raises(ValueError, match="ensemble_decay"):
        ChunkScheduler(ensemble_decay=-1)
    with pytest.raises(ValueError, match=r"\[K, A\]"):
        ChunkScheduler().add(np.zeros(3), 0)
