"""The reality check of `gymnast rl`: what the dream + judge say about the policy against reality.

On fixed real validation states, before RL and every `validate_every` updates: the policy's
greedy real success, the judge's verdicts on those real episodes (and on a few expert ones)
against their outcomes, and the dream's verdicts from the same states. The gate admits a task
to dream RL only when the judge passes on it and the dream agrees with reality episode by
episode; a task that fails it during RL halts RL (reward hacking).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from gymnast_core.envs.metaworld_env import MetaWorldEnv, initial_states
from gymnast_core.names import VALIDATION_SEEDS
from gymnast_core.protocols import BatchedEnv, Judge, Verdict
from gymnast_core.task import Task
from gymnast_core.verdicts import known_rates
from gymnast_policy.base import TokenPolicy
from gymnast_policy.evaluate import greedy, rollout, scripted_expert
from gymnast_policy.grpo import mean_per_key
from gymnast_pipelines.calibrate import metrics_by

if TYPE_CHECKING:
    from gymnast_pipelines.rl import RLConfig


def restarted(tasks: Sequence[Task], videos: np.ndarray, step: int) -> list[Task]:
    """The tasks continued from `step` of their real rollouts' frames [N, T, H, W, 3] (history = the frames before)."""
    return [replace(task, initial_frame=video[step], history=video[:step]) for task, video in zip(tasks, videos)]


def success_rates(success: np.ndarray, tasks: Sequence[Task]) -> dict[str, float]:
    """Per-task rates of ground-truth outcomes (a judge's verdicts go through `known_rates`)."""
    return mean_per_key(success.astype(np.float64), task_names(tasks))


def task_gaps(real_per_task: dict[str, float], dream_per_task: dict[str, float]) -> dict[str, float]:
    """Dream-estimated minus real success, per task."""
    return {task: dream_per_task[task] - real for task, real in real_per_task.items()}


def task_disagreement(real: np.ndarray, dreamed: Verdict, tasks: Sequence[Task], min_known: float) -> dict[str, float]:
    """Per task, the fraction of episodes (with a known verdict) whose dream verdict differs from their real outcome.

    At least |dream - real| of the task's rates, and larger when the dream gets different
    episodes right than reality does: the reward GRPO sees is per episode."""
    return known_rates(real != dreamed.success, dreamed, task_names(tasks), min_known)


def agrees(disagreement: dict[str, float], tolerance: float) -> bool:
    """Per task, not on the mean: a dream that swaps which tasks succeed can match the mean and
    then rewards RL for un-learning the tasks the policy could do (docs/history.md#bench)."""
    return len(agreeing_tasks(disagreement, tolerance)) == len(disagreement)


def dream_agrees(disagreement: float, tolerance: float) -> bool:
    # The slack keeps exactly the tolerance in: 0.8 - 0.6 is 0.20000000000000007 in floats.
    return abs(disagreement) <= tolerance + 1e-9


def agreeing_tasks(disagreement: dict[str, float], tolerance: float) -> list[str]:
    return [task for task, value in disagreement.items() if dream_agrees(value, tolerance)]


UNCHECKED = "cannot be checked"


def judge_check(real: np.ndarray, verdict: Verdict, tasks: Sequence[str], min_tpr: float, max_fpr: float,
                min_examples: int) -> dict[str, dict]:
    """Per task, the judge's verdicts on real episodes against their real outcomes: TPR, FPR (None
    where fewer than `min_examples` episodes count) and `status`: 'pass', 'fail' or UNCHECKED."""
    checks = {}
    for task, m in metrics_by(list(tasks), real, verdict.success, verdict.known).items():
        c = m["confusion"]
        positives, negatives = c["tp"] + c["fn"], c["fp"] + c["tn"]
        tpr = m["tpr"] if positives >= min_examples else None
        fpr = m["fpr"] if negatives >= min_examples else None
        problems = []
        if tpr is not None and tpr < min_tpr:
            problems.append(f"TPR {tpr:.2f} < {min_tpr}")
        if fpr is not None and fpr > max_fpr:
            problems.append(f"FPR {fpr:.2f} > {max_fpr}")
        missing = [f"{count} real {kind}" for kind, count in (("successes", positives), ("failures", negatives))
                   if count < min_examples]
        if problems:
            status, reason = "fail", "; ".join(problems)
        elif missing:
            status = UNCHECKED
            reason = (f"only {' and '.join(missing)} (needs {min_examples}); more real episodes from the same states "
                      "would check it, e.g. the expert's (--gate_expert_episodes_per_task)")
        else:
            status, reason = "pass", ""
        checks[task] = {"tpr": tpr, "fpr": fpr, "positives": positives, "negatives": negatives, "status": status, "reason": reason}
    return checks


def gate(result: dict, tolerance: float) -> dict[str, str]:
    """Per task, '' if the task passes the gate (the judge check, and dream and reality agreeing
    episode by episode within `tolerance`), else why not."""
    reasons = {}
    for task, check in result["judge_check"].items():
        why = [f"judge {check['status']}" + (f" ({check['reason']})" if check["reason"] else "")] if check["status"] != "pass" else []
        disagreement = result["task_disagreement"][task]
        if not dream_agrees(disagreement, tolerance):
            why.append(f"dream and reality differ on {disagreement:.0%} of episodes (> {tolerance:.0%})")
        reasons[task] = "; ".join(why)
    return reasons


def dream_verdicts(policy: TokenPolicy, env: BatchedEnv, judge: Judge, tasks: Sequence[Task], horizon: int,
                   batch_size: int = 32) -> Verdict:
    """The judge's verdicts on greedy rollouts in the dream from the tasks' real first frames."""
    verdicts = []
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start:start + batch_size]
        with torch.no_grad():
            videos, _ = rollout(env, batch, greedy(policy), horizon, policy.image_size)
        verdicts.append(judge.judge(videos, [t.instruction for t in batch]))
    return Verdict.concat(verdicts)


def task_names(tasks: Sequence[Task]) -> list[str]:
    return [t.env_state["task"] for t in tasks]


class RealityCheck:
    """Greedy success of the policy on fixed real initial states, in reality and as the dream + judge see it."""

    def __init__(self, config: RLConfig, reality: MetaWorldEnv, dream_env: BatchedEnv | None, judge: Judge | None):
        self.config, self.reality, self.dream_env, self.judge = config, reality, dream_env, judge
        states = [t for name in config.reality.tasks
                  for t in initial_states(name, "train", config.validation_episodes_per_task, VALIDATION_SEEDS)]
        self.tasks = states
        self.real_episodes = 0
        # The judge's verdicts on the expert episodes, with their real outcomes (the judge does not change).
        self.expert_judged: tuple[np.ndarray, Verdict, list[str]] | None = None

    def _judged_expert(self) -> tuple[np.ndarray, Verdict, list[str]]:
        """Real outcomes, verdicts and task names of the expert's episodes from the first validation states."""
        if self.expert_judged is None:
            count = self.config.gate_expert_episodes_per_task
            tasks = [t for i, t in enumerate(self.tasks) if i % self.config.validation_episodes_per_task < count]
            real, verdict = np.zeros(0, bool), Verdict(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, bool), [])
            if tasks:
                videos, _ = rollout(self.reality, tasks, scripted_expert(self.reality), self.config.reality.max_steps)
                real, verdict = self.reality.success.copy(), self.judge.judge(videos, [t.instruction for t in tasks])
                self.real_episodes += len(tasks)
            self.expert_judged = (real, verdict, task_names(tasks))
        return self.expert_judged

    def measure(self, policy: TokenPolicy) -> dict:
        with torch.no_grad():
            videos, _ = rollout(self.reality, self.tasks, greedy(policy), self.config.reality.max_steps, policy.image_size)
            real = self.reality.success.copy()
            self.real_episodes += len(real)
            result = {"real_success": float(real.mean()), "real_per_task": success_rates(real, self.tasks)}
        if self.dream_env is not None:
            config = self.config
            expert_real, expert_verdict, expert_tasks = self._judged_expert()
            judged = Verdict.concat([self.judge.judge(videos, [t.instruction for t in self.tasks]), expert_verdict])
            result["judge_check"] = judge_check(np.concatenate([real, expert_real]), judged, task_names(self.tasks) + expert_tasks,
                                                config.gate_min_tpr, config.gate_max_fpr, config.gate_min_examples)
            # The dream starts from the real rollout's frame at the restart step (its first frame at 0).
            tasks = restarted(self.tasks, videos, self.config.dream_restart_step)
            dreamed = dream_verdicts(policy, self.dream_env, self.judge, tasks, self.config.grpo.horizon)
            min_known = self.config.grpo.min_known_verdicts
            # known_rates first: it raises JudgeUnavailableError when too few verdicts are known.
            result["dream_per_task"] = known_rates(dreamed.success, dreamed, task_names(self.tasks), min_known)
            result.update(dream_success=float(dreamed.success[dreamed.known].mean()), unknown_verdicts=int((~dreamed.known).sum()))
            result["gap"] = result["dream_success"] - result["real_success"]
            result["task_gaps"] = task_gaps(result["real_per_task"], result["dream_per_task"])
            result["task_disagreement"] = task_disagreement(real, dreamed, self.tasks, min_known)
            result["agrees"] = agrees(result["task_disagreement"], self.config.agreement_tolerance)
            result["gate"] = gate(result, self.config.agreement_tolerance)
        return result


def halting_tasks(result: dict, rl_tasks: Sequence[str], tolerance: float) -> list[str]:
    """The tasks RL trains on that a validation refutes: the judge check fails or the dream
    disagrees. A check that cannot run any more (e.g. no real failures left) refutes nothing."""
    if "gate" not in result:
        return []
    return [task for task in rl_tasks if result["judge_check"][task]["status"] == "fail"
            or not dream_agrees(result["task_disagreement"][task], tolerance)]
