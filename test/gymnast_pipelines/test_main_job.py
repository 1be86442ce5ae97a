"""The README's main job, end to end on tiny settings, from the checkpoints the project ships."""

import json

import pytest

from gymnast_bringup.cli import main
from gymnast_core.envs.metaworld_env import DEFAULT_TASKS


def test_main_job_runs_end_to_end_on_tiny_settings(shipped, tmp_path, capsys):
    out = tmp_path / "run"
    # One validation episode per task is too few for the gate (tested in test_rl.py): RL trains on every task.
    main(["run", "--out", str(out), "--shipped", str(shipped),
          "--collect.expert", "1", "--collect.noisy", "1", "--collect.random", "1",
          "--world_model_eval.horizon", "3", "--world_model_eval.split", "all",
          "--bench.episodes_per_task", "1", "--bench.dream_episodes_per_task", "1", "--bench.rl.updates", "1", "--bench.rl.task_states_per_task", "1",
          "--bench.rl.validation_episodes_per_task", "1", "--bench.rl.gate_tasks", "false", "--bench.rl.grpo.tasks_per_update", "2",
          "--bench.rl.grpo.group_size", "2", "--bench.rl.grpo.horizon", "5", "--bench.rl.dream_restart_step", "2"])
    printed = capsys.readouterr().out
    assert "World-Gymnast" in printed and "SFT" in printed and "the whole bench" in printed
    results = json.loads((out / "report" / "results.json").read_text())
    assert set(results["rows"]) == {"sft", "world-gymnast"}
    for row in results["rows"].values():
        assert 0.0 <= row["real"]["mean"] <= 1.0 and 0.0 <= row["dream"]["mean"] <= 1.0
        assert row["episodes"]["total"] > 0
    wg = results["rows"]["world-gymnast"]
    # Before and after, one episode per task, and one expert episode per task for the judge check.
    assert wg["episodes"]["real validation"] == 3 * len(DEFAULT_TASKS)
    assert (out / "report" / "table.png").stat().st_size > 0
    assert (out / "report" / "world_model" / "report.md").exists()
    assert list((out / "main_job" / "world-gymnast" / "gifs").glob("*.gif"))
    # The trainer wrote its logs and can be resumed: a second run has nothing left to do.
    assert (out / "main_job" / "world-gymnast" / "metrics.csv").read_text().count("\n") == 2


def test_main_job_refuses_arms_cached_under_other_settings_before_any_work(shipped, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "main_job" / "sft").mkdir(parents=True)  # an arm cached under the saved settings
    (out / "main_job" / "bench_settings.json").write_text(json.dumps({"sft_policy": "another/policy"}))
    with pytest.raises(SystemExit):
        main(["run", "--out", str(out), "--shipped", str(shipped)])
    assert "other settings (" in capsys.readouterr().err
    assert not (out / "data").exists()
