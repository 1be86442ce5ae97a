import subprocess
import sys

import pytest

from gymnast_bringup.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert name in out and command.help in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_explains_its_options(name):
    result = subprocess.run([sys.executable, "-m", "gymnast_bringup.cli", name, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"gymnast {name}" in result.stdout and "--config_path" in result.stdout


def test_unknown_command_fails_clearly(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_yaml_then_flags_override_defaults(tmp_path, capsys):
    from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
    from gymnast_core.dataset import EpisodeDataset

    EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    (tmp_path / "cfg.yaml").write_text(f"path: {tmp_path / 'nowhere'}\n")
    main(["dataset-info", "--config_path", str(tmp_path / "cfg.yaml"), "--path", str(tmp_path / "ds")])
    assert "episodes  0" in capsys.readouterr().out


def test_bad_config_value_names_the_field(tmp_path):
    (tmp_path / "cfg.yaml").write_text("expert: many\n")
    result = subprocess.run([sys.executable, "-m", "gymnast_bringup.cli", "collect", "--config_path", str(tmp_path / "cfg.yaml")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "bad config" in result.stderr and "expert" in result.stderr
    assert "Traceback" not in result.stderr


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gymnast_bringup.cli", *args], capture_output=True, text=True)


def test_one_task_name_is_a_one_element_list():
    from gymnast_bringup.cli import parse_config
    from gymnast_core.collect import CollectConfig

    assert parse_config("collect", CollectConfig, ["--reality.tasks", "reach-v3"]).reality.tasks == ("reach-v3",)
    assert parse_config("collect", CollectConfig, ["--reality.tasks", "[reach-v3,push-v3]"]).reality.tasks == \
        ("reach-v3", "push-v3")


@pytest.mark.parametrize("args, reason", [
    (["--reality.tasks", "reach-v3,push-v3"], "write several as '[reach-v3,push-v3]'"),
    (["--noise_std", "0.3"], "lists are written '[a,b]'"),
])
def test_list_flags_written_wrongly_show_the_right_syntax(args, reason):
    result = run_cli("collect", *args)
    assert result.returncode == 2 and reason in result.stderr and "Traceback" not in result.stderr


def test_bad_config_files_fail_with_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("steps: [1,\n")
    for args, reason in ((["--config_path", str(tmp_path / "bad.yaml")], "line 2"),
                         (["--config_path", str(tmp_path / "missing.yaml")], "missing.yaml")):
        result = run_cli("sft", *args)
        assert result.returncode == 2 and "bad config" in result.stderr and reason in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_values_are_refused_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = run_cli("eval", "--policy", "expert", "--out", str(tmp_path / "a_file" / "eval"))
    assert result.returncode == 1 and "--out" in result.stderr and "cannot write there" in result.stderr
    result = run_cli("rl", "--grpo.group_size", "1", "--updates", "0", "--gate_max_fpr", "10", "--out", str(tmp_path / "rl"))
    assert result.returncode == 1 and "--grpo.group_size 1" in result.stderr and "--updates 0" in result.stderr
    assert "--gate_max_fpr 10" in result.stderr and "it is a rate" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "rl" / "config.json").exists()
