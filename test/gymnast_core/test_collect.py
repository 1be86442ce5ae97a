from dataclasses import replace

import numpy as np
import pytest

from gymnast_core import collect as collect_module
from gymnast_core.action_spec import NormStats
from gymnast_core.collect import CollectConfig, collect, plan_jobs
from gymnast_core.dataset import DatasetError, EpisodeDataset
from gymnast_core.envs.metaworld_env import RealityConfig


def test_collect_labels_from_env_and_resumes(tmp_path, monkeypatch):
    config = CollectConfig(
        out=str(tmp_path / "ds"), reality=RealityConfig(tasks=("reach-v3", "button-press-v3"), image_size=32),
        expert=2, noisy=1, random=1, stopped=1, workers=2,
    )
    dataset = collect(config)
    assert len(dataset) == 10
    summary = dataset.summary()
    assert summary["sources"]["expert"]["success_rate"] == 1.0
    assert summary["sources"]["random"]["success_rate"] == 0.0
    episode = dataset[0]
    assert episode.frames.shape == (41, 32, 32, 3) and episode.actions.shape == (40, 4)
    assert dataset.action_spec.stats is not None
    stopped = next(dataset.load(e) for e in dataset.entries if e.key.startswith("reach-v3/stopped/"))
    stop = stopped.metadata["stopped_at"]
    assert 10 <= stop <= 30 and not stopped.actions[stop:].any() and stopped.actions[:stop].any()

    assert dataset.info["tasks"] == ["reach-v3", "button-press-v3"]

    # An extension killed during its statistics pass leaves no statistics, not the old ones...
    index_before = [e.key for e in dataset.entries]
    config = replace(config, expert=3)
    with monkeypatch.context() as patch:
        patch.setattr(EpisodeDataset, "compute_stats", _killed)
        with pytest.raises(RuntimeError, match="killed"):
            collect(config)
    assert EpisodeDataset.open(config.out).action_spec.stats is None
    # ... and the rerun computes them over every episode.
    resumed = collect(config)
    assert len(resumed) == 12
    assert resumed.action_spec.stats == NormStats.from_actions(np.concatenate([e.actions for e in resumed]))
    assert [e.key for e in resumed.entries][:10] == index_before
    # The same key is the same episode: collection is deterministic given the seed.
    by_key = {e.key: e for e in resumed.entries}
    first = resumed.load(by_key["reach-v3/noisy/00000"])
    np.testing.assert_array_equal(first.actions, dataset.load(by_key["reach-v3/noisy/00000"]).actions)

    # Another frame size or episode length is refused before any worker starts.
    monkeypatch.setattr(collect_module.mp, "get_context", lambda *_: pytest.fail("collect started its workers"))
    for reality, message in ((replace(config.reality, image_size=64), "holds 32x32 frames .* cannot add 64x64 frames"),
                             (replace(config.reality, max_steps=10), r"holds episodes of \[40\] steps .* cannot add 10-step")):
        with pytest.raises(DatasetError, match=message):
            collect(replace(config, reality=reality, expert=4))
    assert len(EpisodeDataset.open(config.out)) == 12


def _killed(self):
    raise RuntimeError("killed during the statistics pass")


def test_first_seed_gives_other_initial_states():
    base = CollectConfig(reality=RealityConfig(tasks=("reach-v3",)), expert=0, noisy=2, random=0)
    later = CollectConfig(reality=RealityConfig(tasks=("reach-v3",)), expert=0, noisy=2, random=0, first_seed=1000)
    assert [job.seed for job in plan_jobs(base)] == [100_000, 100_001]
    assert [job.seed for job in plan_jobs(later)] == [101_000, 101_001]
    assert [job.key for job in plan_jobs(later)] == ["reach-v3/noisy/01000", "reach-v3/noisy/01001"]
