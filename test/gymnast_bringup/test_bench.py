from dataclasses import replace

import pytest

from gymnast_bringup.bench import BenchConfig, check_cache


def test_cached_arms_are_refused_under_other_settings(tmp_path):
    config = BenchConfig(out=str(tmp_path / "bench"))
    check_cache(config)
    # Choosing arms, seeds or the report folder keeps the cache valid.
    check_cache(replace(config, arms=("sft",), seeds=(0, 1, 2), report=str(tmp_path / "elsewhere")))
    changed = replace(config, dream=replace(config.dream, checkpoint="other.pt"), episodes_per_task=10)
    with pytest.raises(ValueError, match=r"dream, episodes_per_task differ"):
        check_cache(changed)
    check_cache(config)
