import numpy as np

from gymnast_core.collect import CollectConfig, collect, plan_jobs
from gymnast_core.envs.metaworld_env import RealityConfig


def test_collect_labels_from_env_and_resumes(tmp_path):
    config = CollectConfig(
        out=str(tmp_path / "ds"), reality=RealityConfig(tasks=("reach-v3", "button-press-v3"), image_size=32),
        expert=2, noisy=1, random=1, workers=2,
    )
    dataset = collect(config)
    assert len(dataset) == 8
    summary = dataset.summary()
    assert summary["sources"]["expert"]["success_rate"] == 1.0
    assert summary["sources"]["random"]["success_rate"] == 0.0
    episode = dataset[0]
    assert episode.frames.shape == (41, 32, 32, 3) and episode.actions.shape == (40, 4)
    assert dataset.action_spec.stats is not None

    # An interrupted collection: drop the last two episodes from the index, then resume.
    index_before = [e.key for e in dataset.entries]
    config.expert = 3
    resumed = collect(config)
    assert len(resumed) == 10
    assert [e.key for e in resumed.entries][:8] == index_before
    # The same key is the same episode: collection is deterministic given the seed.
    by_key = {e.key: e for e in resumed.entries}
    first = resumed.load(by_key["reach-v3/noisy/00000"])
    np.testing.assert_array_equal(first.actions, dataset.load(by_key["reach-v3/noisy/00000"]).actions)


def test_first_seed_gives_other_initial_states():
    base = CollectConfig(reality=RealityConfig(tasks=("reach-v3",)), expert=0, noisy=2, random=0)
    later = CollectConfig(reality=RealityConfig(tasks=("reach-v3",)), expert=0, noisy=2, random=0, first_seed=1000)
    assert [job.seed for job in plan_jobs(base)] == [100_000, 100_001]
    assert [job.seed for job in plan_jobs(later)] == [101_000, 101_001]
    assert [job.key for job in plan_jobs(later)] == ["reach-v3/noisy/01000", "reach-v3/noisy/01001"]
