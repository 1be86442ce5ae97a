"""`gymnast rl`: GRPO fine-tuning of a policy in the dream, the shifted simulator or the reality.

- dream (World-Gymnast): rollouts in the world model from real initial frames; reward from the
  judge (the learned judge by default);
- sim (Sim-RL): rollouts in the shifted "software simulator" with its ground-truth dense reward;
- reality (Real-RL, the upper bound): rollouts in the reality with its true success.

Because the learned reward is the known failure point, the trainer checks the dream + judge
against reality on a small fixed real validation set (reality_check.py): before RL (the gate)
and every `validate_every` updates (divergence = reward hacking, which halts).
Each update is checkpointed; a re-run of the same command resumes.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from gymnast_core.atomic import read_json, write_json
from gymnast_core.config_checks import at_least, check_config
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, ShiftConfig, initial_states
from gymnast_core.names import OUTPUTS, RL_TASK_SEEDS, SFT_POLICY
from gymnast_core.protocols import BatchedEnv, Judge
from gymnast_core.resume import record_config, rewind_rows
from gymnast_core.task import Task
from gymnast_core.torch_files import load_torch, save_torch
from gymnast_core.verdicts import JudgeUnavailableError
from gymnast_core.video import save_gif
from gymnast_policy.base import TokenPolicy
from gymnast_policy.checkpoint import load_policy, save_policy
from gymnast_policy.evaluate import greedy, rollout
from gymnast_policy.grpo import CpuGRPOConfig, GRPOTrainer
from gymnast_pipelines.reality_check import RealityCheck, halting_tasks, restarted, task_names
from gymnast_reward.judges import JudgeConfig, OracleJudge, make_judge
from gymnast_world_model.dream_env import DreamConfig

ENVS = ("dream", "sim", "reality")
# Settings a resumed run takes up as they are now: more updates, validations or GIFs.
RESUMABLE_CHANGES = ("updates", "validate_every", "gifs")


@dataclass(frozen=True)
class RLConfig:
    """GRPO in the dream (World-Gymnast), the shifted simulator (Sim-RL) or the reality (Real-RL)."""

    policy: str = SFT_POLICY
    env: str = "dream"
    dream: DreamConfig = field(default_factory=DreamConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reality: RealityConfig = field(default_factory=RealityConfig)
    # The "software simulator" of Sim-RL: reality with a systematic visual and dynamics shift.
    sim_shift: ShiftConfig = field(default_factory=ShiftConfig)
    grpo: CpuGRPOConfig = field(default_factory=CpuGRPOConfig)
    updates: int = 40
    # Initial states per task that RL draws its tasks from.
    task_states_per_task: int = 16
    # Real validation: episodes per task (the gate compares its verdicts episode by episode), every
    # `validate_every` updates (0 = before and after only).
    validation_episodes_per_task: int = 10
    validate_every: int = 8
    # Dream and reality disagree on a task when the judge's verdict on the dream differs from the real
    # outcome in more than this fraction of its validation episodes (reported as reward hacking
    # during RL). Per episode, not per rate: equal rates can hide different episodes
    # (docs/history.md#bench).
    agreement_tolerance: float = 0.2
    # Dream RL only on the tasks that pass the gate before RL: the judge check below, and the
    # dream and reality agreeing as above: a task the dream + judge get wrong rewards un-learning
    # it (docs/judge/report.md). With no task left, RL makes no update and summary.json says
    # `gated_out`.
    gate_tasks: bool = True
    # The judge check: on a task's real validation episodes the judge finds the real successes
    # (TPR >= gate_min_tpr) and rejects the real failures (FPR <= gate_max_fpr), each rate over at
    # least gate_min_examples episodes; with fewer, the task "cannot be checked" and RL leaves it out.
    gate_min_tpr: float = 0.7
    gate_max_fpr: float = 0.2
    gate_min_examples: int = 2
    # Scripted-expert episodes per task from the first validation states (at most all of them),
    # judged once, so that a task the policy rarely succeeds at still shows the judge real
    # successes (0 = none).
    gate_expert_episodes_per_task: int = 5
    # Stop dream RL when a validation finds the dream and reality disagreeing on a task RL trains
    # on (reward hacking), and keep the policy of the last validation that agreed: a hacked task
    # can collapse between two checks (docs/history.md#bench).
    halt_on_divergence: bool = True
    # Dream only the steps after this one (0 = the whole episode; sim and reality always run whole
    # episodes): each dream restarts from the real frame at this step of a real rollout (the
    # starting policy's for RL tasks, the current policy's for validation), and the judge sees
    # those real frames followed by the dream, so the world model drifts over horizon - s steps.
    # Costs one real episode per RL task state. Half the episode: the dream agrees with reality on
    # more tasks than whole 40-step dreams (docs/history.md#bench).
    dream_restart_step: int = 20
    # Re-roll those real prefixes with the current policy every this many updates (0 = the
    # starting policy's throughout): otherwise the dreams never see the current policy's own
    # first steps. Each refresh costs one real partial episode per RL task state.
    refresh_restarts_every: int = 0
    gifs: int = 4
    out: str = f"{OUTPUTS}/rl"
    seed: int = 0
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.env not in ENVS:
            yield "env", f"must be one of {', '.join(ENVS)}"
        yield from at_least(self, {"updates": 1, "task_states_per_task": 1, "validation_episodes_per_task": 1,
                                   "validate_every": 0, "refresh_restarts_every": 0, "gifs": 0, "threads": 1,
                                   "gate_min_examples": 1, "gate_expert_episodes_per_task": 0})
        for name in ("gate_min_tpr", "gate_max_fpr"):
            if not 0 <= getattr(self, name) <= 1:
                yield name, "must lie in [0, 1]: it is a rate"
        if self.env == "dream" and not 0 <= self.dream_restart_step < self.grpo.horizon:
            yield "dream_restart_step", f"must lie in [0, the horizon {self.grpo.horizon}): the dream has to run at least one step"


def make_rl_env(config: RLConfig) -> tuple[BatchedEnv, Judge]:
    """The rollout env and its reward: the judge in the dream, ground truth in sim and reality."""
    if config.env == "dream":
        return config.dream.make_env(), make_judge(config.judge)
    if config.env in ("sim", "reality"):
        reality = config.reality if config.env == "reality" else replace(config.reality, shift=config.sim_shift)
        env = MetaWorldEnv(reality)
        # Sim-RL's dense reward: Meta-World's shaped reward (0..10) at the episode's end.
        return env, OracleJudge(lambda: env.success, lambda: env.rewards / 10.0)
    raise ValueError(f"unknown RL env {config.env!r}; choose one of {', '.join(ENVS)}")


def with_real_frames(tasks: list[Task], reality: MetaWorldEnv) -> list[Task]:
    """Give each task the real camera frame of its initial state (the dream starts from it)."""
    frames = reality.reset(tasks)
    for task, frame in zip(tasks, frames):
        task.initial_frame = frame
    return tasks


def balanced_draw(rng: np.random.Generator, task_of: Sequence[str], count: int) -> np.ndarray:
    """`count` indices into `task_of` spread over its tasks as evenly as `count` allows (the remainder
    to tasks chosen at random), each task's own drawn without replacement while they last: a task
    left out of an update drifts with the others' steps and gets none of its own."""
    task_of = np.asarray(task_of)
    tasks = list(dict.fromkeys(task_of))
    shares = np.full(len(tasks), count // len(tasks))
    shares[rng.choice(len(tasks), count % len(tasks), replace=False)] += 1
    picks = [rng.choice(np.flatnonzero(task_of == task), share, replace=int((task_of == task).sum()) < share)
             for task, share in zip(tasks, shares)]
    return np.concatenate(picks)


def annotated_gif(path: Path, videos: np.ndarray, success: np.ndarray, judge_name: str) -> None:
    """Rollouts side by side, each captioned with the judge's verdict."""
    captioned = []
    for video, ok in zip(videos, success):
        frames = []
        for frame in video:
            image = Image.fromarray(frame).resize((frame.shape[1] * 2, frame.shape[0] * 2), Image.NEAREST)
            ImageDraw.Draw(image).text((2, 2), f"{judge_name}: {'success' if ok else 'failure'}",
                                       fill=(0, 255, 0) if ok else (255, 64, 64))
            frames.append(np.asarray(image))
        captioned.append(np.stack(frames))
    save_gif(path, captioned, fps=8)


class RLRun:
    """The loop with its files: policy/, trainer_state.pt, metrics.csv, validation.jsonl, tensorboard/, gifs/."""

    def __init__(self, config: RLConfig):
        check_config(config)
        self.config, self.out = config, Path(config.out)
        torch.set_num_threads(config.threads)
        resume = (self.out / "trainer_state.pt").exists()
        # Before anything is loaded: a changed dataset, lr, ... must not continue the old run.
        record_config(self.out, config, "gymnast rl", resuming=resume, may_change=RESUMABLE_CHANGES)
        self.policy = load_policy(self.out / "policy" if resume else config.policy)
        self.env, self.judge = make_rl_env(config)
        # Sim-RL learns from the simulator's dense ground-truth reward, as the paper's SIMPLER baseline did.
        grpo = replace(config.grpo, reward="score") if config.env == "sim" else config.grpo
        self.trainer = GRPOTrainer(self.policy, self.env, self.judge, grpo,
                                   reference=load_policy(config.policy) if resume and grpo.kl_coef > 0 else None)
        self.reality = MetaWorldEnv(config.reality)
        self.rng = np.random.default_rng(config.seed)
        self.update_index, self.real_episodes = 0, 0
        # The update of the last validation on which dream and reality agreed (its policy is kept
        # in validated_policy/), and the update RL was halted at for reward hacking, if it was.
        self.validated_update, self.halted_at = 0, None
        # Names of the tasks RL trains on (the gate may drop some before the first update).
        self.rl_tasks = list(config.reality.tasks)
        states = [t for name in config.reality.tasks for t in initial_states(name, "train", config.task_states_per_task, RL_TASK_SEEDS)]
        dreaming = config.env == "dream"
        self.task_states = states
        if dreaming and config.dream_restart_step:
            # On resume, from the policy the last refresh rolled out, so the frames are the same.
            refreshed = self.out / "restart_policy"
            self.task_pool = self._restart_points(load_policy(refreshed if resume and refreshed.exists() else config.policy))
        else:
            self.task_pool = with_real_frames(states, self.reality) if dreaming else states
        self.check = RealityCheck(config, self.reality, self.env if dreaming else None, self.judge if dreaming else None)
        if resume:
            self._load_state()
        else:
            torch.manual_seed(config.seed)

    def _restart_points(self, policy: TokenPolicy) -> list[Task]:
        """The RL tasks restarted `dream_restart_step` steps into a policy's greedy real rollouts."""
        with torch.no_grad():
            videos, _ = rollout(self.reality, self.task_states, greedy(policy), self.config.dream_restart_step, policy.image_size)
        self.real_episodes += len(self.task_states)
        return restarted(self.task_states, videos, self.config.dream_restart_step)

    def _save_state(self) -> None:
        save_policy(self.policy, self.out / "policy", {"rl": {"env": self.config.env, "updates": self.update_index}})
        generator = getattr(self.env, "generator", None)
        state = {"update": self.update_index, "trainer": self.trainer.state_dict(), "numpy_rng": self.rng.bit_generator.state,
                 "env_rng": generator.get_state() if generator is not None else None,
                 "real_episodes": self.real_episodes, "validation_real_episodes": self.check.real_episodes,
                 "rl_tasks": self.rl_tasks, "validated_update": self.validated_update, "halted_at": self.halted_at}
        save_torch(self.out / "trainer_state.pt", state)

    def _load_state(self) -> None:
        state = load_torch(self.out / "trainer_state.pt", "RL trainer state")
        self.update_index, self.real_episodes = state["update"], state["real_episodes"]
        self.check.real_episodes = state["validation_real_episodes"]
        self.rl_tasks = state["rl_tasks"]
        self.validated_update, self.halted_at = state.get("validated_update", 0), state.get("halted_at")
        self.trainer.load_state_dict(state["trainer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        generator = getattr(self.env, "generator", None)
        if generator is not None and state["env_rng"] is not None:
            generator.set_state(state["env_rng"])

    def _log_validation(self, result: dict, writer) -> None:
        result = {"update": self.update_index, **result}
        with open(self.out / "validation.jsonl", "a") as handle:
            handle.write(json.dumps(result) + "\n")
        writer.add_scalar("validation/real_success", result["real_success"], self.update_index)
        if "dream_success" in result:
            writer.add_scalar("validation/dream_success", result["dream_success"], self.update_index)
            verdict = "agree" if result["agrees"] else "DISAGREE (possible reward hacking)"
            gaps = ", ".join(f"{task} {gap:+.2f} ({result['task_disagreement'][task]:.0%} of episodes differ)"
                             for task, gap in result["task_gaps"].items())
            tqdm.write(f"[update {self.update_index}] dream-estimated success {result['dream_success']:.2f} vs real "
                       f"{result['real_success']:.2f} (dream - real per task: {gaps}): {verdict}")
            for task, check in result["judge_check"].items():
                rates = ", ".join(f"{name} {check[key]:.2f}" if check[key] is not None else f"{name} -"
                                  for name, key in (("TPR", "tpr"), ("FPR", "fpr")))
                tqdm.write(f"  {task}: judge on real episodes {rates} ({check['positives']} successes, "
                           f"{check['negatives']} failures): {result['gate'][task] or 'passes the gate'}")
        else:
            tqdm.write(f"[update {self.update_index}] real success {result['real_success']:.2f}")

    def _check_before_rl(self, writer) -> bool:
        """Validate the starting policy; with `gate_tasks`, keep only the tasks that pass the gate.

        False when no task is left: RL in this dream would train on a wrong reward.
        """
        config = self.config
        before = self.check.measure(self.policy)
        if "agrees" in before and not before["agrees"]:
            tqdm.write(f"WARNING: before RL the dream + judge disagree with reality beyond {config.agreement_tolerance} "
                       f"on some task (episodes whose dream verdict differs from reality: {before['task_disagreement']}); "
                       "the dream reward is not trustworthy for this policy. Remedies: refresh the judge on this "
                       "policy's dreamed rollouts (`gymnast train-judge --policy ...`), failure-rich world-model "
                       "data, shorter dreams restarted from real frames (--dream_restart_step).")
        self._log_validation(before, writer)
        if not (config.gate_tasks and "gate" in before):
            return True
        self.rl_tasks = [task for task, why in before["gate"].items() if not why]
        if not self.rl_tasks:
            tqdm.write("WARNING: no task passes the gate (the judge on real episodes, and dream and reality agreeing); "
                       "RL in this dream would train on a wrong reward, so no update is made and the policy stays "
                       "the starting one. Refresh the judge or the world model, or pass --gate_tasks false.")
            return False
        tqdm.write(f"dream RL on the tasks that pass the gate: {', '.join(self.rl_tasks)}")
        return True

    def run(self) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        if self.halted_at is not None:  # halted for reward hacking: resuming must not train on
            return self._write_summary()
        # Each update's rows appear once: rows an interrupted run logged after its last saved update
        # (the pre-RL check's included, when it saved none) are logged again by this run.
        for log in ("metrics.csv", "validation.jsonl"):
            rewind_rows(self.out / log, "update", self.update_index if self.update_index else -1)
        writer = SummaryWriter(str(self.out / "tensorboard"))
        try:
            return self._train(writer)
        except JudgeUnavailableError as exc:
            self._write_summary(judge_unavailable=str(exc))
            raise JudgeUnavailableError(f"{exc}. No task was gated out and RL was not halted; rerun the same command "
                                        "once the judge answers again: it resumes from the last saved update") from exc
        finally:
            writer.close()

    def _train(self, writer) -> dict:
        config = self.config
        if self.update_index == 0:
            if not self._check_before_rl(writer):
                self._save_state()
                return self._write_summary(gated_out=True)
            if self.check.dream_env is not None:  # the policy a halt for reward hacking goes back to
                save_policy(self.policy, self.out / "validated_policy", {"rl": {"env": config.env, "updates": 0}})
        pool = [i for i, t in enumerate(self.task_pool) if t.env_state["task"] in self.rl_tasks]
        fields = ["update", "reward", "success", "unknown", "groups_kept", "groups", "loss", "clip_fraction", "kl",
                  "grad_norm", "entropy", "approx_kl", "steps", "lr", "first_ratio_error", "logprob_gap", "rollout_seconds",
                  "judge_seconds", "learn_seconds", "real_episodes"]
        new_file = not (self.out / "metrics.csv").exists()
        with open(self.out / "metrics.csv", "a", newline="") as handle:
            log = csv.DictWriter(handle, fields + ["per_task"], extrasaction="ignore")
            if new_file:
                log.writeheader()
                handle.flush()
            progress = tqdm(range(self.update_index, config.updates), desc=f"rl ({config.env})", unit="update",
                            initial=self.update_index, total=config.updates)
            for _ in progress:
                every = config.refresh_restarts_every
                if config.env == "dream" and config.dream_restart_step and every and self.update_index % every == 0 \
                        and self.update_index:
                    save_policy(self.policy, self.out / "restart_policy", {"rl": {"updates": self.update_index}})
                    self.task_pool = self._restart_points(self.policy)
                picks = balanced_draw(self.rng, task_names([self.task_pool[i] for i in pool]), config.grpo.tasks_per_update)
                tasks = [self.task_pool[pool[i]] for i in picks]
                stats = self.trainer.update(tasks)
                self.update_index += 1
                if config.env == "reality":
                    self.real_episodes += config.grpo.tasks_per_update * config.grpo.group_size
                row = {"update": self.update_index, "real_episodes": self.real_episodes, **stats,
                       "per_task": json.dumps(stats["per_task"])}
                log.writerow(row)
                handle.flush()
                for key in fields[1:]:
                    writer.add_scalar(f"train/{key}", row[key], self.update_index)
                progress.set_postfix(reward=f"{stats['reward']:.2f}", kept=f"{stats['groups_kept']}/{stats['groups']}")
                if config.validate_every and self.update_index % config.validate_every == 0 or self.update_index == config.updates:
                    result = self.check.measure(self.policy)
                    self._log_validation(result, writer)
                    self._keep_or_halt(result)
                    last = self.trainer.last_rollouts
                    if last is not None and config.gifs:
                        annotated_gif(self.out / "gifs" / f"update_{self.update_index:04d}.gif", last.videos[:config.gifs],
                                      self.trainer.last_success[:config.gifs], self.judge.name)
                self._save_state()
                if self.halted_at is not None:
                    break
        return self._write_summary()

    def _keep_or_halt(self, result: dict) -> None:
        """After a validation: keep this policy as the last validated one, or, when a task RL trains on
        now fails the gate, restore the last validated policy and halt. A judge check that cannot be
        run any more (e.g. a task with no real failures left) does not halt: nothing refutes the judge."""
        if "gate" not in result:
            return
        hacked = halting_tasks(result, self.rl_tasks, self.config.agreement_tolerance)
        if not (hacked and self.config.halt_on_divergence):
            save_policy(self.policy, self.out / "validated_policy", {"rl": {"env": self.config.env, "updates": self.update_index}})
            self.validated_update = self.update_index
            return
        why = ", ".join(f"{task} ({result['gate'][task]})" for task in hacked)
        tqdm.write(f"HALT: reward hacking on {why}; keeping the policy of update {self.validated_update}, "
                   "the last validation that passed")
        self.policy.load_state_dict(load_policy(self.out / "validated_policy").state_dict())
        self.halted_at = self.update_index

    def _write_summary(self, gated_out: bool = False, judge_unavailable: str = "") -> dict:
        # gated_out: the pre-RL check found no task to trust the dream on, so RL made no update.
        # judge_unavailable: why the run stopped without a verdict to go on; a rerun retries.
        summary = {"env": self.config.env, "updates": self.update_index, "real_episodes_rl": self.real_episodes,
                   "real_episodes_validation": self.check.real_episodes, "gated_out": gated_out,
                   "halted_at": self.halted_at, "kept_policy_of_update": self.update_index if self.halted_at is None else self.validated_update,
                   "judge_unavailable": judge_unavailable}
        write_json(self.out / "summary.json", summary)
        return summary

    def close(self) -> None:
        for env in (self.env, self.reality):
            if hasattr(env, "close"):
                env.close()


def train_rl(config: RLConfig) -> Path:
    """Run (or resume) RL; returns the folder of the final policy."""
    if (Path(config.out) / "summary.json").exists():
        summary = read_json(Path(config.out) / "summary.json")
        finished = summary["updates"] >= config.updates or summary.get("gated_out") or summary.get("halted_at") is not None
        if finished and not summary.get("judge_unavailable"):
            # A finished run is this config's result only if it ran under the same settings.
            record_config(config.out, config, "gymnast rl", resuming=True, may_change=RESUMABLE_CHANGES)
            return Path(config.out) / "policy"
    run = RLRun(config)
    started = time.monotonic()
    try:
        summary = run.run()
    finally:
        run.close()
    print(f"rl: {summary['updates']} updates in {(time.monotonic() - started) / 60:.1f} min, "
          f"{summary['real_episodes_rl']} real episodes in training, {summary['real_episodes_validation']} for validation")
    return Path(config.out) / "policy"


def main(config: RLConfig) -> None:
    print(f"policy: {train_rl(config)}")
