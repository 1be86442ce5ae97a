import copy

import numpy as np
import pytest
import torch

from gymnast_core.action_spec import NormStats
from gymnast_core.envs.metaworld_env import METAWORLD_ACTION_SPEC
from gymnast_core.protocols import Verdict
from gymnast_core.task import Task
from gymnast_core.verdicts import JudgeUnavailableError
from gymnast_policy.base import TokenPolicy
from gymnast_policy.grpo import (GRPOConfig, GRPOTrainer, clipped_surrogate, group_advantages, keep_groups, kl_k3,
                                 mean_per_key)


def test_group_advantages_are_normalised_per_group():
    rewards = np.array([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    adv = group_advantages(rewards)
    np.testing.assert_allclose(adv[0], [1, -1, -1, 1], atol=1e-5)  # mean 0.5, std 0.5
    std = np.sqrt(0.75 * 0.25)
    np.testing.assert_allclose(adv[1], [0.25 / std, 0.25 / std, 0.25 / std, -0.75 / std], atol=1e-5)
    np.testing.assert_allclose(adv[2], 0.0)  # no signal in an all-fail group
    with_unknown = group_advantages(np.array([[1.0, np.nan, 0.0]]))
    np.testing.assert_allclose(with_unknown, [[1.0, 0.0, -1.0]], atol=1e-5)  # unknown -> no gradient


def test_dynamic_sampling_filter():
    rewards = np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0] * 10, [1] + [0] * 9, [1] * 9 + [0], [1] * 5 + [0] * 5], float)
    assert keep_groups(rewards, 0.1, 0.9).tolist() == [False, False, True, True, True]
    assert keep_groups(rewards, 0.2, 0.8).tolist() == [False, False, False, False, True]


def test_per_task_reward_pools_every_group_of_a_task():
    # An update that draws the push task twice: its rate is over both groups, not the last one's.
    grouped = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [np.nan, np.nan]])
    rates = mean_per_key(grouped, ["push", "reach", "push", "drawer"])
    assert list(rates) == ["push", "reach", "drawer"]
    assert rates["push"] == 0.75 and rates["reach"] == 0.0 and np.isnan(rates["drawer"])


def test_clipped_surrogate_by_hand():
    old = torch.zeros(4, 1)
    # ratios 1.5, 0.5, 1.1, 0.7 with advantages +1, -1, -2, +2.
    new = torch.log(torch.tensor([[1.5], [0.5], [1.1], [0.7]]))
    adv = torch.tensor([1.0, -1.0, -2.0, 2.0])
    loss, clipped = clipped_surrogate(new, old, adv, 0.2, 0.28)
    # +A, ratio above 1 + 0.28: clipped to 1.28. -A, ratio below 0.8: clipped to 0.8 -> -0.8.
    # -A, ratio 1.1: min(-2.2, -2.2) = -2.2. +A, ratio 0.7: min(1.4, 1.6) = 1.4 (not clipped).
    # Sums over rows (the trainer divides by the rows it learns from).
    assert loss.item() == pytest.approx(-(1.28 - 0.8 - 2.2 + 1.4))
    assert clipped.item() == pytest.approx(2.0)
    # The asymmetric clip: an upward ratio of 1.25 is inside (0.28), a downward 0.78 outside (0.2).
    loss, _ = clipped_surrogate(torch.log(torch.tensor([[1.25], [0.78]])), torch.zeros(2, 1), torch.tensor([1.0, -1.0]), 0.2, 0.28)
    assert loss.item() == pytest.approx(-(1.25 - 0.8))


def test_clip_stops_the_gradient_outside_the_trust_region():
    new = torch.log(torch.tensor([[1.5], [0.9]])).requires_grad_(True)
    loss, _ = clipped_surrogate(new, torch.zeros(2, 1), torch.tensor([1.0, 1.0]), 0.2, 0.28)
    loss.backward()
    assert new.grad[0].item() == 0.0 and new.grad[1].item() != 0.0


def test_kl_k3_is_zero_at_equality_and_positive_otherwise():
    lp = torch.log(torch.tensor([[0.2, 0.5]]))
    assert kl_k3(lp, lp).item() == pytest.approx(0.0)
    assert kl_k3(lp, lp + 0.3).item() > 0


class BiasPolicy(TokenPolicy):
    """A policy whose token logits are free parameters: a bandit over action tokens."""

    image_size = 8

    def __init__(self):
        spec = METAWORLD_ACTION_SPEC.with_stats(NormStats((-1,) * 4, (1,) * 4, (0,) * 4, (1,) * 4))
        super().__init__(spec, chunk_size=2, bins=16)
        self.bias = torch.nn.Parameter(torch.zeros(2 * spec.dim, 16))

    def logits(self, frames, instructions):
        return self.bias.expand(len(frames), -1, -1)

    def config_dict(self):
        return {"backbone": "bias"}


class PushRightEnv:
    """Frames show how far right the hand went; success = mean x-action above 0.15. Optimum: x = +1."""

    action_spec = METAWORLD_ACTION_SPEC
    image_size = 8

    def reset(self, tasks):
        self.total, self.steps = np.zeros(len(tasks)), 0
        return self._frames()

    def step(self, actions):
        self.total += actions[:, 0]
        self.steps += 1
        return self._frames()

    def _frames(self):
        mean = self.total / max(self.steps, 1)
        value = np.clip(128 + 100 * mean, 0, 255).astype(np.uint8)
        return np.broadcast_to(value[:, None, None, None], (len(value), 8, 8, 3)).copy()


class BrightnessJudge:
    name = "toy"

    def judge(self, videos, instructions):
        success = videos[:, -1].mean(axis=(1, 2, 3)) > 128 + 15
        return Verdict(success.astype(np.float32), success, np.ones(len(success), bool), [""] * len(success))


def make_trainer(seed=0, kl_coef=0.0, policy=None, reference=None):
    torch.manual_seed(seed)
    config = GRPOConfig(group_size=8, tasks_per_update=4, horizon=6, temperature=1.0, lr=0.05, kl_coef=kl_coef)
    return GRPOTrainer(policy or BiasPolicy(), PushRightEnv(), BrightnessJudge(), config, reference=reference)


TASKS = [Task("push right", env_state={"i": i}) for i in range(4)]


def test_tiny_rl_loop_raises_the_reward():
    trainer = make_trainer()
    first = np.mean([trainer.update(TASKS)["success"] for _ in range(3)])
    for _ in range(25):
        stats = trainer.update(TASKS)
    last = np.mean([trainer.update(TASKS)["success"] for _ in range(3)])
    assert first < 0.5 and last > first + 0.3, (first, last)
    assert stats["groups"] == 4 and 0 <= stats["groups_kept"] <= 4


@pytest.mark.parametrize("kl_coef", [0.0, 0.5])
def test_resume_gives_the_same_next_update(kl_coef):
    trainer = make_trainer(kl_coef=kl_coef)
    trainer.update(TASKS)
    saved_policy, saved_state = copy.deepcopy(trainer.policy.state_dict()), copy.deepcopy(trainer.state_dict())
    expected = trainer.update(TASKS)
    expected_weights = trainer.policy.bias.detach().clone()

    # A different process state, the checkpointed policy, and the KL anchored to the starting policy.
    resumed_policy = BiasPolicy()
    resumed_policy.load_state_dict(saved_policy)
    resumed = make_trainer(seed=123, kl_coef=kl_coef, policy=resumed_policy, reference=BiasPolicy())
    resumed.load_state_dict(saved_state)
    again = resumed.update(TASKS)
    assert again["reward"] == expected["reward"] and again["loss"] == pytest.approx(expected["loss"])
    assert again["kl"] == pytest.approx(expected["kl"]) and (kl_coef == 0) == (again["kl"] == 0)
    torch.testing.assert_close(resumed.policy.bias.detach(), expected_weights)


def test_bad_grpo_config_is_a_clear_error():
    with pytest.raises(ValueError, match="--reward 'dense': must be 'success' or 'score'"):
        GRPOTrainer(BiasPolicy(), PushRightEnv(), BrightnessJudge(), GRPOConfig(reward="dense"))
    with pytest.raises(ValueError, match="dynamic-sampling range"):
        GRPOTrainer(BiasPolicy(), PushRightEnv(), BrightnessJudge(), GRPOConfig(keep_success_low=0.9, keep_success_high=0.1))
    with pytest.raises(ValueError, match="--group_size 1: must be at least 2"):
        GRPOTrainer(BiasPolicy(), PushRightEnv(), BrightnessJudge(), GRPOConfig(group_size=1))


class DownJudge:
    """An API judge during an outage: every verdict unknown, with the reason."""

    name = "api"

    def judge(self, videos, instructions):
        count = len(videos)
        return Verdict(np.full(count, np.nan, np.float32), np.zeros(count, bool), np.zeros(count, bool),
                       ["unknown: ConnectionRefusedError talking to http://127.0.0.1:9/v1"] * count)


def test_an_update_with_too_few_known_verdicts_takes_no_step():
    torch.manual_seed(0)
    policy = BiasPolicy()
    before = policy.bias.detach().clone()
    trainer = GRPOTrainer(policy, PushRightEnv(), DownJudge(), GRPOConfig(group_size=4, tasks_per_update=2, horizon=3, lr=0.05))
    with pytest.raises(JudgeUnavailableError, match="0 of 8 verdicts on push right are known.*ConnectionRefusedError"):
        trainer.update(TASKS[:2])
    torch.testing.assert_close(policy.bias.detach(), before)


class ContextPolicy(TokenPolicy):
    """Token logits linear in what the frame shows (its brightness): a policy for a contextual bandit."""

    image_size = 8

    def __init__(self):
        spec = METAWORLD_ACTION_SPEC.with_stats(NormStats((-1,) * 4, (1,) * 4, (0,) * 4, (1,) * 4))
        super().__init__(spec, chunk_size=1, bins=16)
        self.bias = torch.nn.Parameter(torch.zeros(spec.dim, 16))
        self.weight = torch.nn.Parameter(torch.zeros(spec.dim, 16))

    def logits(self, frames, instructions):
        context = frames.float().mean(dim=(1, 2, 3)) / 127.5 - 1.0
        return self.bias + context[:, None, None] * self.weight

    def config_dict(self):
        return {"backbone": "context"}


class ContextBanditEnv:
    """One step: the frame shows a side (dark = left, bright = right); success = dx beyond 0.5 towards it.
    The last frame's green channel shows the outcome, as a camera would show the hand at the goal."""

    action_spec = METAWORLD_ACTION_SPEC
    image_size = 8

    def reset(self, tasks):
        self.side = np.array([t.env_state["side"] for t in tasks], float)
        self.hit = np.zeros(len(tasks), bool)
        return self._frames()

    def step(self, actions):
        self.hit = actions[:, 0] * self.side > 0.5
        return self._frames()

    def _frames(self):
        frames = np.empty((len(self.side), 8, 8, 3), np.uint8)
        frames[..., 0] = frames[..., 2] = np.where(self.side > 0, 192, 64)[:, None, None]
        frames[..., 1] = np.where(self.hit, 255, np.where(self.side > 0, 192, 64))[:, None, None]
        return frames


class HitJudge:
    name = "toy"

    def judge(self, videos, instructions):
        success = videos[:, -1, ..., 1].mean(axis=(1, 2)) == 255
        return Verdict(success.astype(np.float32), success, np.ones(len(success), bool), [""] * len(success))


BANDIT = [Task("go to the shown side", env_state={"side": side}) for side in (-1, 1, -1, 1)]


def sampled_success(policy, episodes_per_side=256):
    env = ContextBanditEnv()
    frames = env.reset(BANDIT[:2] * episodes_per_side)
    env.step(policy.act(frames, ["go to the shown side"] * len(frames), 1.0).actions[:, 0])
    return env.hit.mean()


def test_grpo_solves_a_contextual_bandit():
    torch.manual_seed(0)
    config = GRPOConfig(group_size=8, tasks_per_update=4, horizon=1, temperature=1.0, lr=0.1, epochs=2)
    trainer = GRPOTrainer(ContextPolicy(), ContextBanditEnv(), HitJudge(), config)
    before = sampled_success(trainer.policy)
    for _ in range(20):
        trainer.update(BANDIT)
    after = sampled_success(trainer.policy)
    assert before <= 0.3 and after >= 0.9, (before, after)


class NoiseEnv:
    """Random 32 px frames: enough to drive a real CompactVLA through GRPO's bookkeeping."""

    action_spec = METAWORLD_ACTION_SPEC
    image_size = 32

    def reset(self, tasks):
        self.rng = np.random.default_rng(0)
        self.count = len(tasks)
        return self._frames()

    def step(self, actions):
        return self._frames()

    def _frames(self):
        return self.rng.integers(0, 256, (self.count, 32, 32, 3), dtype=np.uint8)


class AlternatingJudge:
    """Every other rollout succeeds, so every group carries signal."""

    name = "toy"

    def judge(self, videos, instructions):
        success = np.arange(len(videos)) % 2 == 0
        return Verdict(success.astype(np.float32), success, np.ones(len(success), bool), [""] * len(success))


@pytest.fixture(scope="module")
def compact_policy():
    from gymnast_policy.compact_vla import CompactVLA, CompactVLAConfig

    torch.manual_seed(0)
    spec = METAWORLD_ACTION_SPEC.with_stats(NormStats((-1,) * 4, (1,) * 4, (0,) * 4, (1,) * 4))
    config = CompactVLAConfig(image_size=32, width=32, depth=1, heads=2, vision_channels=(8, 16), chunk_size=2, bins=16)
    return CompactVLA(config, spec)


@pytest.mark.parametrize("temperature", [1.0, 1.6])
def test_the_first_step_ratio_is_one_and_old_logprobs_are_the_samplers(compact_policy, temperature):
    policy = copy.deepcopy(compact_policy).train()  # dropout on: the trainer must switch it off for both passes
    config = GRPOConfig(group_size=4, tasks_per_update=2, horizon=4, temperature=temperature, lr=1e-3, epochs=2,
                        minibatches=2, microbatch=3)
    stats = GRPOTrainer(policy, NoiseEnv(), AlternatingJudge(), config).update([Task("open the drawer")] * 2)
    assert stats["groups_kept"] == 2 and stats["steps"] == 4
    assert stats["first_ratio_error"] == 0.0
    assert stats["logprob_gap"] < 1e-4 and stats["approx_kl"] > 0 and stats["entropy"] > 0


def test_logprobs_are_scored_at_the_sampling_temperature(compact_policy):
    frames = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    instructions = ["open the drawer"] * 6
    torch.manual_seed(0)
    chunk = compact_policy.eval().act(frames, instructions, 1.6)
    with torch.no_grad():
        at_sampling = compact_policy.logprob(frames, instructions, chunk.tokens, 1.6).numpy()
        at_one = compact_policy.logprob(frames, instructions, chunk.tokens, 1.0).numpy()
    np.testing.assert_allclose(at_sampling, chunk.logprobs, atol=1e-5)
    assert np.abs(at_one - chunk.logprobs).max() > 0.1  # the check would see a temperature mismatch


@pytest.mark.parametrize("lr, direction", [(3.0, -1), (1e-4, 1)])
def test_the_learning_rate_adapts_to_the_desired_kl(lr, direction):
    torch.manual_seed(0)
    config = GRPOConfig(group_size=8, tasks_per_update=4, horizon=1, temperature=1.0, lr=lr, epochs=4, desired_kl=0.01)
    trainer = GRPOTrainer(ContextPolicy(), ContextBanditEnv(), HitJudge(), config)
    stats = trainer.update(BANDIT)
    assert stats["steps"] == 4 and np.sign(stats["lr"] - lr) == direction


def test_the_adapted_learning_rate_stops_at_its_ceiling():
    torch.manual_seed(0)
    config = GRPOConfig(group_size=8, tasks_per_update=4, horizon=1, temperature=1.0, lr=1e-4, epochs=4, desired_kl=0.01,
                        max_lr=1.2e-4)
    stats = GRPOTrainer(ContextPolicy(), ContextBanditEnv(), HitJudge(), config).update(BANDIT)
    assert stats["lr"] == pytest.approx(1.2e-4)  # 1.5x growth steps, capped


def test_target_kl_stops_the_steps_of_an_update():
    torch.manual_seed(0)
    config = GRPOConfig(group_size=8, tasks_per_update=4, horizon=1, temperature=1.0, lr=3.0, epochs=4, target_kl=0.01)
    stats = GRPOTrainer(ContextPolicy(), ContextBanditEnv(), HitJudge(), config).update(BANDIT)
    assert stats["steps"] == 1 and stats["approx_kl"] > 0.01
