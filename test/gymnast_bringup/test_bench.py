from dataclasses import replace

import pytest

from gymnast_bringup.bench import BenchConfig, check_cache


def test_cached_arms_are_refused_under_other_settings(tmp_path):
    config = BenchConfig(out=str(tmp_path / "bench"))
    check_cache(config)
    (tmp_path / "bench" / "sft").mkdir()
    # Choosing arms, seeds or the report folder keeps the cache valid.
    check_cache(replace(config, arms=("sft",), seeds=(0, 1, 2), report=str(tmp_path / "elsewhere")))
    changed = replace(config, dream=replace(config.dream, checkpoint="other.pt"), episodes_per_task=10)
    with pytest.raises(ValueError, match=r"dream, episodes_per_task differ"):
        check_cache(changed)
    check_cache(config)


def test_settings_of_a_start_that_cached_nothing_do_not_bind(tmp_path):
    config = BenchConfig(out=str(tmp_path / "bench"))
    check_cache(config)  # e.g. a start that then failed on a missing checkpoint
    other = replace(config, sft_policy="checkpoints/default/policy_sft")
    check_cache(other)
    (tmp_path / "bench" / "sft").mkdir()
    with pytest.raises(ValueError, match=r"sft_policy differ"):
        check_cache(config)
