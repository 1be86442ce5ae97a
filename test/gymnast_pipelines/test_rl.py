import json
from dataclasses import replace

import draccus
import numpy as np
import pytest
import torch

from gymnast_pipelines.rl import (UNCHECKED, RLConfig, RLRun, agreeing_tasks, agrees, balanced_draw, gate, judge_check,
                                task_disagreement, task_gaps, train_rl)
from gymnast_core.envs.metaworld_env import DEFAULT_TASKS
from gymnast_core.protocols import Verdict
from gymnast_core.task import Task
from gymnast_core.verdicts import JudgeUnavailableError
from gymnast_policy.checkpoint import load_policy
from gymnast_policy.grpo import CpuGRPOConfig
from gymnast_reward.judges import JudgeConfig
from gymnast_world_model.dream_env import DreamConfig


def verdict(success, known=None, reason="judged"):
    known = np.ones(len(success), bool) if known is None else known
    return Verdict(scores=np.where(known, success, np.nan).astype(np.float32), success=success & known, known=known,
                   rationales=[reason if not k else "judged" for k in known])


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


def test_agreement_is_checked_per_task_not_on_the_mean():
    real = {"reach": 0.2, "push": 0.0, "drawer": 1.0, "button": 1.0}
    dream = {"reach": 0.6, "push": 0.8, "drawer": 0.2, "button": 0.2}  # measured before RL; means 0.45 vs 0.55
    gaps = task_gaps(real, dream)
    assert gaps["push"] == 0.8 and gaps["drawer"] == -0.8
    assert not agrees(gaps, 0.2)
    assert agrees(task_gaps(real, {"reach": 0.3, "push": 0.1, "drawer": 0.9, "button": 0.8}), 0.2)


def test_agreement_is_checked_episode_by_episode_not_on_the_rate():
    tasks = [Task("move the gripper to the goal marker", env_state={"task": "reach"})] * 10 + \
            [Task("open the drawer", env_state={"task": "drawer"})] * 10
    real = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0] + [1] * 10, bool)
    # Reach at 0.6 in both, but on other episodes (as measured before the reach reward was hacked).
    dreamed = verdict(np.array([0, 0, 1, 1, 1, 1, 1, 1, 0, 0] + [1] * 9 + [0], bool))
    assert task_disagreement(real, dreamed, tasks, 0.8) == pytest.approx({"reach": 0.4, "drawer": 0.1})
    assert agreeing_tasks(task_disagreement(real, dreamed, tasks, 0.8), 0.2) == ["drawer"]


def test_unknown_verdicts_are_left_out_of_the_check_or_make_the_judge_unavailable():
    tasks = [Task("reach", env_state={"task": "reach"})] * 10 + [Task("drawer", env_state={"task": "drawer"})] * 10
    real = np.ones(20, bool)
    known = np.ones(20, bool)
    known[:2] = False  # two reach verdicts the judge could not give: not failures
    dreamed = verdict(np.array([0, 0] + [1] * 18, bool), known, "unknown: HTTP 503 from http://judge")
    assert task_disagreement(real, dreamed, tasks, 0.8) == {"reach": 0.0, "drawer": 0.0}
    known[:5] = False
    with pytest.raises(JudgeUnavailableError, match=r"5 of 10 verdicts on reach are known.*HTTP 503 from http://judge"):
        task_disagreement(real, verdict(np.zeros(20, bool), known, "unknown: HTTP 503 from http://judge"), tasks, 0.8)


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


def test_the_gate_keeps_only_the_tasks_the_dream_gets_right():
    gaps = task_gaps({"reach": 0.6, "push": 0.1, "drawer": 1.0}, {"reach": 0.6, "push": 0.6, "drawer": 0.85})
    assert agreeing_tasks(gaps, 0.2) == ["reach", "drawer"]
    assert agreeing_tasks(gaps, 0.0) == ["reach"]
    # Rates of 10 episodes: a gap of exactly the tolerance agrees, whatever the float rounding.
    assert agreeing_tasks(task_gaps({"reach": 0.6}, {"reach": 0.8}), 0.2) == ["reach"]


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


class BlindJudge:
    """Calls a video a success when its last frame is bright, except on one task, where it sees no success."""

    name = "blind-on-one-task"

    def __init__(self, blind_instruction: str):
        self.blind_instruction = blind_instruction

    def judge(self, videos, instructions):
        success = (videos[:, -1].mean(axis=(1, 2, 3)) > 128) & (np.array(instructions) != self.blind_instruction)
        return verdict(success)


def test_a_judge_blind_on_one_task_is_refused_by_the_gate_and_keeps_its_row_in_the_pooled_report(tmp_path):
    from gymnast_core.envs.metaworld_env import RealityConfig, instruction_for
    from gymnast_pipelines.calibrate import JudgeEvalConfig, evaluate_judge, format_results
    from gymnast_pipelines.train_judge import LabelledVideos

    tasks = list(DEFAULT_TASKS[:3])
    blind = tasks[1]
    names = [task for task in tasks for _ in range(8)]
    labels = np.array([True, False] * 12)
    videos = np.zeros((24, 5, 8, 8, 3), np.uint8)
    videos[labels, -1] = 255
    judge = BlindJudge(instruction_for(blind))
    checks = judge_check(labels, judge.judge(videos, [instruction_for(t) for t in names]), names, 0.7, 0.2, 2)
    assert checks[blind]["status"] == "fail" and checks[blind]["tpr"] == 0.0 and checks[blind]["fpr"] == 0.0
    reasons = gate({"judge_check": checks, "task_disagreement": dict.fromkeys(tasks, 0.0)}, 0.2)
    assert reasons[tasks[0]] == reasons[tasks[2]] == "" and "TPR 0.00 < 0.7" in reasons[blind]

    (tmp_path / "cache").mkdir()
    LabelledVideos(videos, [instruction_for(t) for t in names], labels, ["expert"] * 24).save(tmp_path / "cache" / "real.npz")
    config = JudgeEvalConfig(reality=RealityConfig(tasks=tuple(tasks)), videos_cache=str(tmp_path / "cache"), out=str(tmp_path / "eval"))
    report = format_results(evaluate_judge(config, judge)).splitlines()
    row = {}  # each task's first row: the per-task table comes first
    for line in report:
        if line.startswith("| "):
            row.setdefault(line.split("|")[1].strip(), line)
    assert "| 0.00 +- 0.00 (0/4) | 0.00 +- 0.00 (0/4) |" in row[blind]
    assert "| 1.00 +- 0.00 (4/4) |" in row[tasks[0]]
    assert "| 0.67 +- 0.14 (8/12) |" in row["*all tasks*"]  # the pooled TPR, printed below the rows it pools
    assert f"| {blind} | 0/4, 0/4 |" in report  # and per source


def test_a_task_without_enough_real_successes_cannot_be_checked_and_says_what_would_check_it():
    names = ["sweep"] * 10
    labels = np.array([True] + [False] * 9)
    checks = judge_check(labels, verdict(labels.copy()), names, 0.7, 0.2, 2)
    assert checks["sweep"]["status"] == UNCHECKED and checks["sweep"]["tpr"] is None and checks["sweep"]["fpr"] == 0.0
    assert "only 1 real successes" in checks["sweep"]["reason"] and "--gate_expert_episodes_per_task" in checks["sweep"]["reason"]
    reasons = gate({"judge_check": checks, "task_disagreement": {"sweep": 0.0}}, 0.2)
    assert reasons["sweep"].startswith("judge cannot be checked")
