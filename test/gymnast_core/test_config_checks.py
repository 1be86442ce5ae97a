"""Configs are checked whole, before any work starts; every bad flag is named with its reason."""

import pytest

from gymnast_core.config_checks import ConfigError, check_config


def test_every_broken_rule_is_named_by_its_flag(tmp_path):
    from gymnast_pipelines.rl import RLConfig
    from gymnast_policy.grpo import CpuGRPOConfig

    config = RLConfig(updates=0, grpo=CpuGRPOConfig(group_size=1), out=str(tmp_path / "rl"))
    with pytest.raises(ConfigError) as info:
        check_config(config)
    message = str(info.value)
    assert "--updates 0: must be at least 1" in message
    assert "--grpo.group_size 1: must be at least 2: GRPO's advantage compares" in message
    check_config(RLConfig(out=str(tmp_path / "rl")))


@pytest.mark.parametrize("command, flags, named", [
    ("eval-world-model", {"max_episodes": -1}, "--max_episodes -1"),
    ("sft", {"batch_size": 0}, "--batch_size 0"),
    ("collect", {"noisy": -5}, "--noisy -5"),
])
def test_negative_and_zero_counts_are_refused(tmp_path, command, flags, named):
    from gymnast_bringup.cli import COMMANDS

    config = COMMANDS[command].config(**flags, out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=named):
        check_config(config)


def test_unknown_task_names_are_refused_before_any_work(tmp_path):
    from gymnast_core.collect import CollectConfig
    from gymnast_core.envs.metaworld_env import RealityConfig

    config = CollectConfig(reality=RealityConfig(tasks=("reach-v3", "fly-v3")), out=str(tmp_path / "data"))
    with pytest.raises(ConfigError, match=r"--reality.tasks .*unknown Meta-World task\(s\) fly-v3"):
        check_config(config)


def test_an_unwritable_out_is_found_first(tmp_path):
    from gymnast_policy.evaluate import EvalPolicyConfig

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"--out .*a_file/eval.*cannot write there"):
        check_config(EvalPolicyConfig(out=str(tmp_path / "a_file" / "eval")))
