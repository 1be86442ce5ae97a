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
