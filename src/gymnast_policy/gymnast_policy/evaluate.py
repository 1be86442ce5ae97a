"""`gymnast eval`: run a policy in a `BatchedEnv` on held-out initial states.

The policy is queried every K steps (the chunk size) and its chunk executed open loop, as on
the robot. Success per task with its standard error sqrt(p (1 - p) / n); a few videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from gymnast_core.atomic import write_json
from gymnast_core.config_checks import at_least
from gymnast_core.dataset import EpisodeDataset
from gymnast_core.episode import Episode
from gymnast_core.envs.metaworld_env import MetaWorldEnv, RealityConfig, initial_states
from gymnast_core.names import OUTPUTS, SFT_POLICY
from gymnast_core.task import Task
from gymnast_core.video import resize_frames, save_gif
from gymnast_policy.checkpoint import load_policy

# Chooses the actions [B, K, A] of the next chunk from the current frames [B, H, W, 3].
ChunkFn = Callable[[np.ndarray, Sequence[str]], np.ndarray]


def sampled(policy, temperature: float) -> ChunkFn:
    """The policy's chunks sampled at `temperature`, as a rollout's chunk function."""
    return lambda frames, instructions: policy.act(frames, instructions, temperature).actions


def greedy(policy) -> ChunkFn:
    """The policy's most likely chunks (temperature 0), as a rollout's chunk function."""
    return sampled(policy, 0.0)


def scripted_expert(env) -> ChunkFn:
    """The env's scripted expert, one action at a time (it reacts to the current state)."""
    return lambda frames, instructions: env.expert_actions()[:, None]


def rollout(env, tasks: Sequence[Task], choose_chunk: ChunkFn, steps: int,
            image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Roll out one episode per task; returns frames [B, steps + 1, H, W, 3] and actions [B, steps - s, A].

    Tasks with `history` (all the same length s; 0 without) restart an episode at step s: the
    rollout runs the remaining steps - s steps and its video starts with the history.
    """
    done = history_length(tasks)
    if done >= steps:
        raise ValueError(f"tasks restart at step {done}, not before the rollout's last step {steps}")
    frames = env.reset(tasks)
    video = [np.stack([resize_frames(t.history, frames.shape[1:3]) for t in tasks])] if done else []
    video.append(frames[:, None])
    actions = []
    instructions = [t.instruction for t in tasks]
    chunk, index = None, 0
    for _ in range(steps - done):
        if chunk is None or index == chunk.shape[1]:
            seen = resize_frames(frames, image_size) if image_size else frames
            chunk, index = choose_chunk(seen, instructions), 0
        actions.append(np.asarray(chunk[:, index], np.float32))
        frames = env.step(actions[-1])
        index += 1
        video.append(frames[:, None])
    return np.concatenate(video, axis=1), np.stack(actions, axis=1)


def history_length(tasks: Sequence[Task]) -> int:
    """Steps already done by every task (len of its history); tasks in one batch must agree."""
    lengths = {0 if t.history is None else len(t.history) for t in tasks}
    if len(lengths) > 1:
        raise ValueError(f"tasks in one rollout must restart at the same step, got history lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def rollout_key(task_name: str, split: str, index: int) -> str:
    """The dataset key of a policy rollout from the `index`-th initial state of `split`."""
    return f"{task_name}/policy/{split}-{index:05d}"


def record_rollouts(policy_path: str, reality: RealityConfig, out: str | Path, split: str, episodes_per_task: int,
                    temperature: float, seed: int = 0, start: int = 0) -> EpisodeDataset:
    """Roll a policy out in the reality and keep every episode, labelled with the real outcome.

    These are the policy's own successes and near-misses: the judge trains and is calibrated
    on them. Resumable: tasks already in `out` are skipped.
    """
    torch.manual_seed(seed)
    policy = load_policy(policy_path)
    env = MetaWorldEnv(reality)
    try:
        # Leaving the block computes the statistics and releases the writer lock.
        with EpisodeDataset.create(out, env.action_spec, image_size=reality.image_size,
                                   episode_steps=reality.max_steps, tasks=list(reality.tasks)) as dataset:
            for task_name in tqdm(reality.tasks, desc=f"policy rollouts ({split})", unit="task"):
                keys = [rollout_key(task_name, split, i) for i in range(start, start + episodes_per_task)]
                if all(k in dataset for k in keys):
                    continue
                tasks = initial_states(task_name, split, episodes_per_task, start)
                videos, actions = rollout(env, tasks, sampled(policy, temperature),
                                          reality.max_steps, policy.image_size)
                for i, key in enumerate(keys):
                    dataset.append(Episode(frames=videos[i], actions=actions[i], instruction=tasks[i].instruction,
                                           success=bool(env.success[i]),
                                           metadata={"source": "policy", "task": task_name, "policy": str(policy_path),
                                                     "temperature": temperature, "split": split}), key)
    finally:
        env.close()
    return dataset


def standard_error(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


@dataclass(frozen=True)
class EvalPolicyConfig:
    """Evaluate a policy checkpoint (or a reference policy) in the Meta-World reality."""

    # Policy checkpoint folder, or a reference: 'expert' (Meta-World's scripted expert, the ceiling)
    # or 'random' (uniform actions within the action bounds, the floor).
    policy: str = SFT_POLICY
    reality: RealityConfig = field(default_factory=RealityConfig)
    episodes_per_task: int = 40
    # Offset into the held-out initial states (use different offsets for different seeds).
    first_state: int = 0
    # 0 = greedy decoding.
    temperature: float = 0.0
    out: str = f"{OUTPUTS}/eval_sft"
    videos_per_task: int = 2
    # Episodes stepped together (each holds a renderer, ~100 MB).
    batch_size: int = 20
    seed: int = 0
    threads: int = 2

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"episodes_per_task": 1, "first_state": 0, "temperature": 0, "videos_per_task": 0,
                                   "batch_size": 1, "threads": 1})


def evaluate_policy(config: EvalPolicyConfig) -> dict:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    env = MetaWorldEnv(config.reality)
    if config.policy == "expert":
        choose: ChunkFn = scripted_expert(env)
        image_size = None
    elif config.policy == "random":
        rng, spec = np.random.default_rng(config.seed), env.action_spec
        choose = lambda frames, instructions: rng.uniform(spec.low, spec.high, (len(frames), 1, spec.dim))  # noqa: E731
        image_size = None
    else:
        policy = load_policy(config.policy)
        if policy.action_spec.names != env.action_spec.names:
            raise ValueError(f"policy actions {policy.action_spec.names} do not match the environment's {env.action_spec.names}")
        choose = sampled(policy, config.temperature)
        image_size = policy.image_size
    results, videos = {}, []
    try:
        for task_name in tqdm(config.reality.tasks, desc=f"eval {Path(config.policy).name}", unit="task"):
            tasks = initial_states(task_name, "eval", config.episodes_per_task, start=config.first_state)
            outcomes = []
            for start in range(0, len(tasks), config.batch_size):
                video, _ = rollout(env, tasks[start:start + config.batch_size], choose, config.reality.max_steps, image_size)
                outcomes.append(env.success.copy())
                if start == 0:
                    videos.append([video[i] for i in range(min(config.videos_per_task, len(video)))])
            success = np.concatenate(outcomes)
            p = float(success.mean())
            results[task_name] = {"success": p, "stderr": standard_error(p, len(success)), "episodes": len(success)}
    finally:
        env.close()
    rates = [r["success"] for r in results.values()]
    n = sum(r["episodes"] for r in results.values())
    summary = {"policy": config.policy, "temperature": config.temperature, "per_task": results,
               "mean": float(np.mean(rates)), "mean_stderr": float(np.sqrt(sum(r["stderr"] ** 2 for r in results.values())) / len(rates)),
               "episodes": n}
    out = Path(config.out)
    write_json(out / "results.json", summary)
    if videos and videos[0]:
        # One row per task, one column per episode (every task has as many).
        columns = [np.concatenate([row[k] for row in videos], axis=1) for k in range(len(videos[0]))]
        save_gif(out / "episodes.gif", columns, fps=10, scale=2)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{'task':<20} {'success':>8} {'+-':>6} {'n':>4}"]
    for task, r in summary["per_task"].items():
        lines.append(f"{task:<20} {r['success']:>8.3f} {r['stderr']:>6.3f} {r['episodes']:>4}")
    lines.append(f"{'mean':<20} {summary['mean']:>8.3f} {summary['mean_stderr']:>6.3f} {summary['episodes']:>4}")
    return "\n".join(lines)


def main(config: EvalPolicyConfig) -> None:
    summary = evaluate_policy(config)
    print(format_summary(summary))
    print(f"results: {Path(config.out) / 'results.json'}")
