"""The one-off experiment scripts still import and parse their arguments after the code they use moves."""

import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.py"))


def test_every_experiment_is_described():
    readme = (EXPERIMENTS[0].parent / "README.md").read_text()
    assert EXPERIMENTS and all(f"`{script.name}`" in readme for script in EXPERIMENTS)


@pytest.mark.parametrize("script", EXPERIMENTS, ids=lambda path: path.name)
def test_experiment_runs_its_help(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
