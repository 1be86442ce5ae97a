"""GRPO for token policies, seeing only the `BatchedEnv` and `Judge` protocols.

One update: P tasks x G rollouts of H steps (the policy queried every K steps at the rollout
temperature) -> the judge's verdict per rollout -> reward -> advantages normalised per group
-> groups whose success rate is outside [low, high] dropped (dynamic sampling) -> the PPO
clipped surrogate with asymmetric clip on every action token -> `epochs` x `minibatches`
optimiser steps with grad-norm clipping, stopped early past `target_kl`. An optional KL to a
reference policy. The same trainer runs in the dream, in the shifted simulator and in the reality.

Each update reports what shows whether the step was sound: the ratio on the first step (1 to
rounding: the old log-probabilities are the sampler's), the gap between the rescored and the
sampled log-probabilities, the token entropy, and the approximate KL the update moved.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from gymnast_core.config_checks import at_least, check_config
from gymnast_core.protocols import ActionChunk, BatchedEnv, Judge
from gymnast_core.task import Task
from gymnast_core.verdicts import known_rates
from gymnast_policy.base import TokenPolicy, gather_tokens
from gymnast_policy.evaluate import rollout


@dataclass(frozen=True)
class GRPOConfig:
    """The paper's defaults (7B OpenVLA-OFT on 4 H200s); `CpuGRPOConfig` is the compact VLA's."""

    group_size: int = 8
    tasks_per_update: int = 20
    horizon: int = 40
    temperature: float = 1.6
    clip_low: float = 0.2
    clip_high: float = 0.28
    # 0 = no KL term (the paper's default); > 0 adds a k3 KL estimate to the reference policy.
    kl_coef: float = 0.0
    dynamic_sampling: bool = True
    keep_success_low: float = 0.1
    keep_success_high: float = 0.9
    # 'success' = binary judge verdict; 'score' = the verdict's score (a dense ground truth, Sim-RL).
    reward: str = "success"
    # Fraction of a task's verdicts that must be known (not "unknown", e.g. in an API outage) for its
    # rate to count; below it the judge is unavailable and no step is taken.
    min_known_verdicts: float = 0.8
    lr: float = 5e-6
    grad_clip: float = 1.0
    # Passes over the same rollouts per update (1 = the paper's on-policy setting), each split into
    # `minibatches` optimiser steps over shuffled chunks (PPO-style).
    epochs: int = 1
    minibatches: int = 1
    # Stop an update's remaining optimiser steps once the policy has moved this far from the one
    # that sampled the rollouts (approximate KL per token; 0 = never), as cleanrl's PPO does.
    target_kl: float = 0.0
    # Adapt the learning rate so that an update moves the policy about this far from the sampler
    # (approximate KL per token, measured before each step after the first; 0 = a fixed lr): divided
    # by 1.5 above twice it, multiplied by 1.5 under half of it, as rsl_rl's PPO does. Adam's first
    # steps move every weight by about lr whatever its gradient, so a fixed lr that suits one
    # policy can erase a task in one step for another.
    desired_kl: float = 0.0
    # Ceiling of the adapted lr (0 = none), as rsl_rl bounds its own: steps that each stay near
    # `desired_kl` still let it grow until updates swing every task at once (docs/bench/grpo_engine.md).
    max_lr: float = 0.0
    # Chunks per forward/backward slice (gradient accumulation; memory only).
    microbatch: int = 128

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.group_size < 2:
            yield "group_size", "must be at least 2: GRPO's advantage compares each rollout with the others of its group"
        yield from at_least(self, {"tasks_per_update": 1, "horizon": 1, "epochs": 1, "minibatches": 1, "microbatch": 1,
                                   "target_kl": 0, "desired_kl": 0})
        if self.temperature <= 0:
            yield "temperature", "must be positive: GRPO learns from sampled rollouts"
        if self.lr <= 0:
            yield "lr", "must be positive"
        if self.max_lr and self.max_lr < self.lr:
            yield "max_lr", f"must be at least lr ({self.lr}): it caps the adapted lr"
        if not 0 <= self.keep_success_low <= self.keep_success_high <= 1:
            yield "keep_success_low", f"the dynamic-sampling range [{self.keep_success_low}, {self.keep_success_high}] must lie within [0, 1]"
        if self.reward not in ("success", "score"):
            yield "reward", "must be 'success' or 'score'"
        if not 0 < self.min_known_verdicts <= 1:
            yield "min_known_verdicts", "must lie in (0, 1]"


@dataclass(frozen=True)
class CpuGRPOConfig(GRPOConfig):
    """The compact VLA on 2 CPU cores: the recipe that lifts SFT on the true reward
    (docs/bench/grpo_engine.md).

    Temperature 1.0, where the SFT policy's groups mix successes and failures. Every task twice
    per update, four optimiser steps over each batch, and an lr adapted to a small KL per step
    under a ceiling, so that no step can erase a task. A subclass rather than an instance,
    because draccus builds a nested config from its field's type: with an instance as the
    default, overriding one `--grpo.*` field reset the others to the paper's values.
    """

    tasks_per_update: int = 10
    temperature: float = 1.0
    lr: float = 2e-5
    kl_coef: float = 0.02
    epochs: int = 4
    desired_kl: float = 0.01
    max_lr: float = 1e-4


def group_advantages(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(r - mean) / (std + eps) within each group of rewards [P, G]; NaN (unknown) rewards get 0."""
    mean = np.nanmean(rewards, axis=1, keepdims=True)
    std = np.nanstd(rewards, axis=1, keepdims=True)
    advantages = (rewards - mean) / (std + eps)
    return np.nan_to_num(advantages, nan=0.0).astype(np.float32)


def keep_groups(rewards: np.ndarray, low: float, high: float) -> np.ndarray:
    """Dynamic sampling: keep groups [P, G] whose success rate lies in [low, high]."""
    rate = np.nanmean(rewards, axis=1)
    return (rate >= low) & (rate <= high)


def clipped_surrogate(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float, clip_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped objective per token [N, T] with advantages [N]; returns (loss, clipped fraction),
    each a sum over the N rows of their mean over tokens (the caller divides by its row count)."""
    ratio = torch.exp(new_logprobs - old_logprobs)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    loss = -torch.minimum(unclipped, clipped).mean(-1).sum()
    clip_fraction = ((ratio < 1 - clip_low) & (adv < 0) | (ratio > 1 + clip_high) & (adv > 0)).float().mean(-1).sum()
    return loss, clip_fraction


def kl_k3(new_logprobs: torch.Tensor, reference_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's non-negative k3 estimate of KL(new || reference) per token, averaged."""
    log_ratio = reference_logprobs - new_logprobs
    return (torch.exp(log_ratio) - log_ratio - 1).mean()


def known_mean(rewards: np.ndarray) -> float:
    """Mean of the known (non-NaN) rewards; NaN when the judge knew none."""
    return float(np.nanmean(rewards)) if np.isfinite(rewards).any() else float("nan")


def mean_per_key(values: np.ndarray, keys: Sequence[str]) -> dict[str, float]:
    """Mean of the known values over all rows [N, ...] sharing a key, keys in first-seen order
    (an update may draw a task several times: its rate is over all its groups)."""
    return {key: known_mean(values[[k == key for k in keys]]) for key in dict.fromkeys(keys)}


@dataclass
class Rollouts:
    videos: np.ndarray  # uint8 [B, H + 1, S, S, 3]
    instructions: list[str]  # [B]
    frames: np.ndarray  # uint8 [B, C, s, s, 3], the policy's input at each of C queries
    tokens: np.ndarray  # int64 [B, C, K * A]
    logprobs: np.ndarray  # float32 [B, C], each chunk's log-probability when it was sampled


def collect_rollouts(policy: TokenPolicy, env: BatchedEnv, tasks: Sequence[Task], group_size: int, horizon: int,
                     temperature: float) -> Rollouts:
    """G rollouts of every task, all B = P * G in one batched env."""
    batch_tasks = [task for task in tasks for _ in range(group_size)]
    queries: list[tuple[np.ndarray, ActionChunk]] = []

    def choose(frames: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        chunk = policy.act(frames, instructions, temperature)
        queries.append((frames, chunk))
        return chunk.actions

    with torch.no_grad():
        videos, _ = rollout(env, batch_tasks, choose, horizon, policy.image_size)
    return Rollouts(videos, [t.instruction for t in batch_tasks], np.stack([f for f, _ in queries], axis=1),
                    np.stack([c.tokens for _, c in queries], axis=1), np.stack([c.logprobs for _, c in queries], axis=1))


class GRPOTrainer:
    def __init__(self, policy: TokenPolicy, env: BatchedEnv, judge: Judge, config: GRPOConfig,
                 reference: TokenPolicy | None = None):
        """`reference` anchors the KL term; by default a frozen copy of `policy` as given, so a resumed
        run must pass its starting policy, not the one it resumes from."""
        check_config(config)
        self.policy, self.env, self.judge, self.config = policy, env, judge, config
        self.optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.lr,
                                           weight_decay=0.0)
        self.reference = None
        if config.kl_coef > 0:
            anchor = reference if reference is not None else copy.deepcopy(policy)
            self.reference = anchor.eval().requires_grad_(False)
        # The latest update's rollouts and verdicts, for annotated GIFs.
        self.last_rollouts: Rollouts | None = None
        self.last_success: np.ndarray | None = None

    def state_dict(self) -> dict:
        """What a resumed run needs, besides the policy weights, to take the same next update."""
        return {"optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])

    def update(self, tasks: Sequence[Task]) -> dict:
        """One GRPO update on the given P tasks; returns its statistics."""
        config = self.config
        timer = time.monotonic()
        self.policy.eval()  # no dropout: rollout and learner see the same distribution
        rollouts = collect_rollouts(self.policy, self.env, tasks, config.group_size, config.horizon, config.temperature)
        rollout_seconds = time.monotonic() - timer
        timer = time.monotonic()
        verdict = self.judge.judge(rollouts.videos, rollouts.instructions)
        # Raises JudgeUnavailableError, before any step, when too few verdicts are known.
        per_task = known_rates(verdict.success, verdict, rollouts.instructions, config.min_known_verdicts)
        values = verdict.success if config.reward == "success" else verdict.scores
        rewards = np.where(verdict.known, values, np.nan).astype(np.float32)
        self.last_rollouts, self.last_success = rollouts, verdict.success
        judge_seconds = time.monotonic() - timer
        timer = time.monotonic()
        grouped = rewards.reshape(len(tasks), config.group_size)
        keep = keep_groups(grouped, config.keep_success_low, config.keep_success_high) if config.dynamic_sampling \
            else np.ones(len(tasks), bool)
        advantages = group_advantages(grouped)
        stats = {"reward": known_mean(rewards), "success": float(verdict.success[verdict.known].mean()),
                 "unknown": int((~verdict.known).sum()), "groups_kept": int(keep.sum()), "groups": len(tasks), "loss": 0.0,
                 "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0, "entropy": float("nan"), "approx_kl": 0.0,
                 "first_ratio_error": 0.0, "logprob_gap": 0.0, "steps": 0, "lr": self.optimizer.param_groups[0]["lr"],
                 "per_task": per_task}
        if keep.any():
            kept = np.repeat(keep, config.group_size)
            # With a KL anchor, every rollout's chunks keep the policy near the reference, the dropped
            # groups' too: otherwise a task whose groups all fail drifts while the others learn.
            entering = np.ones_like(kept) if self.reference is not None else kept
            stats.update(self._learn(rollouts, advantages.reshape(-1), kept, entering))
        stats.update(rollout_seconds=rollout_seconds, judge_seconds=judge_seconds, learn_seconds=time.monotonic() - timer)
        return stats

    def _learn(self, rollouts: Rollouts, advantages: np.ndarray, kept: np.ndarray, episode_mask: np.ndarray) -> dict:
        """Steps on the chunks of the episodes in `episode_mask`: the clipped surrogate on those of the `kept`
        episodes (advantages [B] per episode), the KL to the reference on all of them."""
        config = self.config
        queries = rollouts.frames.shape[1]
        frames = rollouts.frames[episode_mask].reshape(-1, *rollouts.frames.shape[2:])
        tokens = torch.from_numpy(rollouts.tokens[episode_mask].reshape(-1, rollouts.tokens.shape[-1]))
        sampled = torch.from_numpy(rollouts.logprobs[episode_mask].reshape(-1))
        instructions = np.array([i for i, keep in zip(rollouts.instructions, episode_mask) if keep for _ in range(queries)])
        chunk_advantages = torch.from_numpy(np.repeat(advantages[episode_mask], queries))
        learns = torch.from_numpy(np.repeat(kept[episode_mask], queries))
        count = len(tokens)

        def pieces(index: torch.Tensor) -> list[torch.Tensor]:
            return list(index.split(config.microbatch))  # gradient accumulation: memory only

        orders = [torch.randperm(count) if config.minibatches > 1 else torch.arange(count) for _ in range(config.epochs)]
        minibatches = [minibatch for order in orders for minibatch in order.chunk(config.minibatches)]
        # The old log-probabilities in the same pieces as the first epoch's and with autograd on (without
        # it torch's fused transformer kernels run, which round differently), so that the first step's
        # ratio is 1 to the bit.
        old = torch.empty(tokens.shape)
        entropy, reference = torch.empty(tokens.shape), None if self.reference is None else torch.empty(tokens.shape)
        for part in (part for minibatch in minibatches[:config.minibatches] for part in pieces(minibatch)):
            log_probs = self.policy.log_probs(frames[part.numpy()], instructions[part.numpy()].tolist(), config.temperature)
            old[part] = gather_tokens(log_probs, tokens[part]).detach()
            entropy[part] = -(log_probs.exp() * log_probs).sum(-1).detach()
            if reference is not None:
                with torch.no_grad():
                    reference[part] = self.reference.token_logprobs(frames[part.numpy()], instructions[part.numpy()].tolist(),
                                                                    tokens[part], config.temperature)
        # The distribution the ratio is taken against must be the one the rollouts were sampled from.
        totals = {"entropy": float(entropy.mean()),
                  "logprob_gap": float((old.sum(-1) - sampled).abs().max()), "first_ratio_error": 0.0,
                  "loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "grad_norm": 0.0, "approx_kl": 0.0, "steps": 0}
        for minibatch in minibatches:
            self.optimizer.zero_grad(set_to_none=True)
            step = {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "approx_kl": 0.0}
            learning = int(learns[minibatch].sum())
            for part in pieces(minibatch):
                weight = len(part) / len(minibatch)
                new = self.policy.token_logprobs(frames[part.numpy()], instructions[part.numpy()].tolist(), tokens[part],
                                                 config.temperature)
                mask = learns[part]
                loss, clip_fraction = clipped_surrogate(new[mask], old[part][mask], chunk_advantages[part][mask],
                                                        config.clip_low, config.clip_high)
                loss, clip_fraction = loss / max(learning, 1), clip_fraction / max(learning, 1)
                if reference is not None:
                    kl = kl_k3(new, reference[part])
                    loss = loss + config.kl_coef * weight * kl
                    step["kl"] += weight * kl.item()
                loss.backward()
                with torch.no_grad():
                    log_ratio = new - old[part]
                    step["approx_kl"] += weight * float((log_ratio.exp() - 1 - log_ratio).mean())
                    if totals["steps"] == 0:
                        error = float((log_ratio.exp() - 1).abs().max())
                        totals["first_ratio_error"] = max(totals["first_ratio_error"], error)
                step["loss"] += loss.item()
                step["clip_fraction"] += clip_fraction.item()
            totals["approx_kl"] = step["approx_kl"]
            if config.desired_kl and totals["steps"]:  # how far the steps so far have moved the policy
                self._adapt_lr(step["approx_kl"])
            if config.target_kl and step["approx_kl"] > config.target_kl:
                break  # moved far enough from the policy that sampled these rollouts
            totals["grad_norm"] += float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.grad_clip))
            self.optimizer.step()
            totals["steps"] += 1
            for key in ("loss", "clip_fraction", "kl"):
                totals[key] += step[key]
        # Means over the optimiser steps taken.
        for key in ("loss", "clip_fraction", "kl", "grad_norm"):
            totals[key] /= max(totals["steps"], 1)
        totals["lr"] = self.optimizer.param_groups[0]["lr"]
        return totals

    def _adapt_lr(self, kl: float) -> None:
        desired = self.config.desired_kl
        factor = 1 / 1.5 if kl > 2 * desired else 1.5 if kl < desired / 2 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = min(group["lr"] * factor, self.config.max_lr or float("inf"))
