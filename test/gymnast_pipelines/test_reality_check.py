"""The reality check: agreement per task and per episode, the judge check and the gate."""

import numpy as np
import pytest

from gymnast_core.envs.metaworld_env import DEFAULT_TASKS
from gymnast_core.protocols import Verdict
from gymnast_core.task import Task
from gymnast_core.verdicts import JudgeUnavailableError
from gymnast_pipelines.reality_check import (UNCHECKED, agreeing_tasks, agrees, gate, judge_check, task_disagreement,
                                             task_gaps)


def verdict(success, known=None, reason="judged"):
    known = np.ones(len(success), bool) if known is None else known
    return Verdict(scores=np.where(known, success, np.nan).astype(np.float32), success=success & known, known=known,
                   rationales=[reason if not k else "judged" for k in known])


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


def test_the_gate_keeps_only_the_tasks_the_dream_gets_right():
    gaps = task_gaps({"reach": 0.6, "push": 0.1, "drawer": 1.0}, {"reach": 0.6, "push": 0.6, "drawer": 0.85})
    assert agreeing_tasks(gaps, 0.2) == ["reach", "drawer"]
    assert agreeing_tasks(gaps, 0.0) == ["reach"]
    # Rates of 10 episodes: a gap of exactly the tolerance agrees, whatever the float rounding.
    assert agreeing_tasks(task_gaps({"reach": 0.6}, {"reach": 0.8}), 0.2) == ["reach"]


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
