import json
from dataclasses import replace

import draccus
import numpy as np
import pytest
import torch

from gymnast_pipelines.reality_check import UNCHECKED, gate
from gymnast_pipelines.rl import RLConfig, RLRun, balanced_draw, train_rl
from gymnast_core.envs.metaworld_env import DEFAULT_TASKS
from gymnast_policy.checkpoint import load_policy
from gymnast_policy.grpo import CpuGRPOConfig
from gymnast_reward.judges import JudgeConfig
from gymnast_world_model.dream_env import DreamConfig


def test_every_update_draws_every_task_as_evenly_as_its_size_allows():
    task_of = ["reach"] * 30 + ["push"] * 3 + ["drawer"] * 10
    rng = np.random.default_rng(0)
    for count in (3, 8, 10):
        picks = balanced_draw(rng, task_of, count)
        drawn = np.array([task_of[i] for i in picks])
        shares = [int((drawn == task).sum()) for task in ("reach", "push", "drawer")]
        assert sum(shares) == count and max(shares) - min(shares) <= 1
        for task in ("reach", "drawer"):  # enough states: none repeats
            assert len(set(picks[drawn == task])) == (drawn == task).sum()
    assert len(balanced_draw(rng, task_of, 2)) == 2


def test_a_judge_outage_neither_gates_nor_halts_and_a_rerun_trains(shipped, tmp_path, chat_server, capsys):
    from gymnast_bringup.cli import main

    out = tmp_path / "rl"
    command = ["rl", "--env", "dream", "--policy", str(shipped / "policy_sft"), "--dream.checkpoint", str(shipped / "world_model.pt"),
               "--judge.backend", "api", "--judge.api.base_url", chat_server.url, "--judge.api.api_key", "sk-test-secret",
               "--judge.api.retries", "0", "--judge.api.max_calls_per_minute", "1000000", "--updates", "1",
               "--task_states_per_task", "1", "--validation_episodes_per_task", "1", "--grpo.tasks_per_update", "1",
               "--grpo.group_size", "2", "--grpo.horizon", "4", "--dream_restart_step", "0", "--gifs", "0",
               "--gate_tasks", "false", "--halt_on_divergence", "false", "--out", str(out)]
    chat_server.script = [(503, "down for maintenance", 0.0)]
    with pytest.raises(SystemExit) as info:
        main(command)
    error = capsys.readouterr().err
    assert info.value.code == 1 and "judge unavailable" in error and "HTTP 503" in error
    assert "reward hacking" not in error and "DISAGREE" not in error
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["gated_out"] and summary["halted_at"] is None and summary["updates"] == 0
    assert "sk-test-secret" not in (out / "config.json").read_text()
    # The endpoint is back: the same command runs the check and trains.
    chat_server.script = [(200, "The arm reached it.\nFinal Score: 1", 0.0), (200, "It missed.\nFinal Score: 0", 0.0)]
    main(command)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 1 and summary["judge_unavailable"] == "" and summary["halted_at"] is None
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # the header and update 1, once


def tiny_dream_rl(shipped, tmp_path, **overrides) -> RLConfig:
    """Dream RL on the shipped models with one state per task, one tiny update and one validation episode per task."""
    base = dict(env="dream", policy=str(shipped / "policy_sft"), dream=DreamConfig(checkpoint=str(shipped / "world_model.pt")),
                judge=JudgeConfig(backend="learned", path=str(shipped / "judge")), updates=1, task_states_per_task=1,
                validation_episodes_per_task=1, out=str(tmp_path / "rl"), grpo=CpuGRPOConfig(tasks_per_update=1, group_size=2, horizon=4))
    return RLConfig(**base | overrides)


def test_dream_rl_with_no_trusted_task_makes_no_update(shipped, tmp_path):
    # A negative tolerance fails every task's check, the case of a dream that gets no task right.
    config = tiny_dream_rl(shipped, tmp_path, agreement_tolerance=-1.0, dream_restart_step=0,
                           grpo=CpuGRPOConfig(tasks_per_update=1, group_size=2, horizon=3))
    policy_dir = train_rl(config)
    summary = json.loads((tmp_path / "rl" / "summary.json").read_text())
    assert summary["gated_out"] and summary["updates"] == 0
    start, end = load_policy(shipped / "policy_sft"), load_policy(policy_dir)
    for a, b in zip(start.state_dict().values(), end.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert train_rl(config) == policy_dir  # a re-run has nothing left to do


def test_dream_rl_restarted_from_real_frames_judges_the_real_prefix_and_the_dream(shipped, tmp_path):
    config = tiny_dream_rl(shipped, tmp_path, gate_tasks=False, dream_restart_step=2, gifs=0)
    run = RLRun(config)
    try:
        summary = run.run()
    finally:
        run.close()
    # One real rollout prefix per RL task state (one state per task), counted as real episodes.
    assert summary["real_episodes_rl"] == len(DEFAULT_TASKS) and summary["updates"] == 1
    assert all(t.history.shape == (2, 64, 64, 3) for t in run.task_pool)
    videos = run.trainer.last_rollouts.videos
    assert videos.shape[:2] == (2, 5)
    # The judged video starts with a task's real frames (history, then the frame the dream restarts from).
    assert any(np.array_equal(videos[0, :3], np.concatenate([t.history, t.initial_frame[None]])) for t in run.task_pool)
    with pytest.raises(ValueError, match="dream_restart_step 4: must lie in"):
        RLRun(replace(config, dream_restart_step=4, out=str(tmp_path / "late")))


def test_overriding_one_grpo_field_on_the_command_line_keeps_the_cpu_defaults():
    config = draccus.parse(RLConfig, args=["--grpo.temperature", "2.0"])
    assert config.grpo == CpuGRPOConfig(temperature=2.0)


def validation(disagreement: dict[str, float], judge_status: dict[str, str] | None = None) -> dict:
    """A validation result as RealityCheck.measure gives it, with every judge check passing unless told."""
    statuses = judge_status or {}
    result = {"task_disagreement": disagreement,
              "judge_check": {task: {"status": statuses.get(task, "pass"), "reason": ""} for task in disagreement}}
    return {**result, "gate": gate(result, 0.2)}


def test_reward_hacking_found_by_a_validation_halts_rl_and_keeps_the_last_agreeing_policy(shipped, tmp_path):
    run = RLRun.__new__(RLRun)  # only what _keep_or_halt reads: no envs
    run.config = RLConfig(agreement_tolerance=0.2, out=str(tmp_path))
    run.out, run.rl_tasks, run.validated_update, run.halted_at = tmp_path, ["drawer", "button"], 0, None
    run.policy = load_policy(shipped / "policy_sft")
    agreed = {k: v.clone() for k, v in run.policy.state_dict().items()}
    run.update_index = 4
    # Reach disagrees, but RL does not train on it: the policy of update 4 becomes the validated one.
    run._keep_or_halt(validation({"reach": 0.6, "drawer": 0.1, "button": 0.0}))
    assert run.validated_update == 4 and run.halted_at is None
    # A judge check that can no longer run (no real failures left) is no evidence of hacking.
    run.update_index = 6
    run._keep_or_halt(validation({"reach": 0.0, "drawer": 0.0, "button": 0.0}, {"drawer": UNCHECKED}))
    assert run.validated_update == 6 and run.halted_at is None
    with torch.no_grad():
        for parameter in run.policy.parameters():
            parameter.add_(1.0)
    run.update_index = 8
    run._keep_or_halt(validation({"reach": 0.6, "drawer": 0.4, "button": 0.0}))
    assert run.halted_at == 8 and run.validated_update == 6
    for name, value in run.policy.state_dict().items():
        torch.testing.assert_close(value, agreed[name])
    run.halted_at, run.config = None, replace(run.config, halt_on_divergence=False)
    run._keep_or_halt(validation({"drawer": 0.4, "button": 0.0}))  # only flagged, as before the option
    assert run.halted_at is None and run.validated_update == 8
    # A judge that now calls the button's real failures successes halts as well.
    run.config = replace(run.config, halt_on_divergence=True)
    run._keep_or_halt(validation({"drawer": 0.0, "button": 0.1}, {"button": "fail"}))
    assert run.halted_at == 8 and run.validated_update == 8


def test_refreshed_restarts_are_rolled_out_by_the_current_policy_and_counted(shipped, tmp_path):
    config = tiny_dream_rl(shipped, tmp_path, updates=2, validate_every=0, gate_tasks=False, dream_restart_step=2,
                           refresh_restarts_every=1, gifs=0)
    run = RLRun(config)
    try:
        summary = run.run()
    finally:
        run.close()
    # Each task state rolled out at the start and again before update 2, by the policy after update 1.
    assert summary["real_episodes_rl"] == 2 * len(DEFAULT_TASKS)
    assert json.loads((tmp_path / "rl" / "restart_policy" / "policy.json").read_text())["rl"]["updates"] == 1
