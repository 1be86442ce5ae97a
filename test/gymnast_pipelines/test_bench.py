from dataclasses import replace

import pytest

from gymnast_pipelines.bench import BenchConfig, add_wall_minutes, check_cache
from gymnast_core.names import SHIPPED_POLICY


def test_cached_arms_are_refused_under_other_settings(tmp_path):
    config = BenchConfig(out=str(tmp_path / "bench"))
    check_cache(config)
    (tmp_path / "bench" / "sft").mkdir()
    # Choosing arms, seeds, the report folder or where the dream computes keeps the cache valid.
    check_cache(replace(config, arms=("sft",), seeds=(0, 1, 2), report=str(tmp_path / "elsewhere"),
                        dream=replace(config.dream, device="cpu")))
    changed = replace(config, dream=replace(config.dream, checkpoint="other.pt"), episodes_per_task=10)
    with pytest.raises(ValueError, match=r"dream.checkpoint: .* -> .other.pt.; episodes_per_task: 40 -> 10"):
        check_cache(changed)
    check_cache(config)


def test_a_model_retrained_at_the_same_path_invalidates_the_cache(tmp_path):
    world_model = tmp_path / "world_model.pt"
    config = BenchConfig(out=str(tmp_path / "bench"), dream=replace(BenchConfig().dream, checkpoint=str(world_model)))
    check_cache(config)  # not trained yet, e.g. a `gymnast run --from_scratch` start
    (tmp_path / "bench" / "sft").mkdir()
    world_model.write_bytes(b"weights of the run that cached the arms")
    check_cache(config)
    world_model.write_bytes(b"weights retrained later")
    with pytest.raises(ValueError, match=r"sha256 of dream.checkpoint: "):
        check_cache(config)


def test_settings_of_a_start_that_cached_nothing_do_not_bind(tmp_path):
    config = BenchConfig(out=str(tmp_path / "bench"))
    check_cache(config)  # e.g. a start that then failed on a missing checkpoint
    other = replace(config, sft_policy=SHIPPED_POLICY)
    check_cache(other)
    (tmp_path / "bench" / "sft").mkdir()
    with pytest.raises(ValueError, match=r"sft_policy: "):
        check_cache(config)


def test_real_episodes_are_counted_by_purpose_including_the_judges_extra_data(tmp_path):
    from gymnast_pipelines.bench import real_episodes_used
    from gymnast_core.atomic import write_json
    from gymnast_core.dataset import EpisodeDataset
    from gymnast_core.envs.metaworld_env import METAWORLD_ACTION_SPEC

    EpisodeDataset.create(tmp_path / "data", METAWORLD_ACTION_SPEC)
    write_json(tmp_path / "sft" / "policy.json", {"sft": {"demos": 40}})
    write_json(tmp_path / "judge" / "judge.json", {"trained_on": {"policy": 384, "real": 564}, "extra_real_episodes": 200})
    write_json(tmp_path / "bench" / "world-gymnast" / "summary.json", {"real_episodes_rl": 64, "real_episodes_validation": 120})
    config = BenchConfig(out=str(tmp_path / "bench"), dataset=str(tmp_path / "data"), sft_policy=str(tmp_path / "sft"),
                         judge_dir=str(tmp_path / "judge"))
    assert real_episodes_used(config, "world-gymnast") == {
        "demos": 40, "world-model data": 0, "judge policy rollouts": 384, "judge extra real episodes": 200,
        "real rollouts dreams restart from": 64, "real validation": 120, "total": 808}
    assert real_episodes_used(config, "sft") == {"demos": 40, "total": 40}


def test_rl_arms_are_compared_with_sft_per_task_and_beyond_the_standard_errors():
    from gymnast_pipelines.bench import compare_with_sft, pool_seeds

    def pooled(rates):
        return pool_seeds([{"per_task": {t: {"success": p, "episodes": 120} for t, p in rates.items()}, "mean": 0.0}])

    sft = pooled({"a-v3": 0.2, "b-v3": 0.3, "c-v3": 0.4})
    rows = {"sft": {"real": sft}, "random": {"real": pooled({"a-v3": 0.0, "b-v3": 0.0, "c-v3": 0.0})},
            "real-rl": {"real": pooled({"a-v3": 0.5, "b-v3": 0.6, "c-v3": 0.42})}}
    (line,) = compare_with_sft(rows, "real")
    assert line.startswith("- Real-RL / SFT: 1.69; it beats SFT by more than the standard errors")
    assert "on 2 of 3 tasks (a, b)" in line  # c's +0.02 is within its standard error
    assert compare_with_sft({"real-rl": rows["real-rl"]}, "real") == []


def test_an_arms_wall_time_adds_up_over_resumed_runs(tmp_path):
    config = BenchConfig(out=str(tmp_path))
    add_wall_minutes(config, "real-rl", 60.0)
    assert add_wall_minutes(config, "real-rl", 30.0) == pytest.approx(1.5)
    assert add_wall_minutes(config, "sft", 6.0) == pytest.approx(0.1)
