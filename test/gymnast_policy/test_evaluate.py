import numpy as np
import pytest

from gymnast_core.envs.metaworld_env import RealityConfig
from gymnast_core.task import Task
from gymnast_policy.evaluate import EvalPolicyConfig, evaluate_policy, rollout


class StepCountingEnv:
    """Each frame is filled with the number of steps taken since reset."""

    def reset(self, tasks):
        self.batch, self.steps = len(tasks), 0
        return self._frames()

    def step(self, actions):
        self.steps += 1
        return self._frames()

    def _frames(self):
        return np.full((self.batch, 4, 4, 3), self.steps, np.uint8)


def zero_chunk(frames, instructions):
    return np.zeros((len(frames), 2, 4), np.float32)


def test_a_whole_episode_runs_every_step():
    videos, actions = rollout(StepCountingEnv(), [Task("t"), Task("t")], zero_chunk, 5)
    assert videos.shape == (2, 6, 4, 4, 3) and actions.shape == (2, 5, 4)
    assert videos[0, :, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_restarted_task_continues_its_episode_to_the_horizon():
    # A real prefix at another resolution: resized to the env's frames and put before them.
    history = np.full((3, 8, 8, 3), 200, np.uint8)
    videos, actions = rollout(StepCountingEnv(), [Task("t", history=history)] * 2, zero_chunk, 5)
    assert videos.shape == (2, 6, 4, 4, 3) and actions.shape == (2, 2, 4)
    assert videos[1, :, 0, 0, 0].tolist() == [200, 200, 200, 0, 1, 2]


def test_restarts_must_agree_and_come_before_the_horizon():
    early, late = Task("t", history=np.zeros((1, 4, 4, 3), np.uint8)), Task("t", history=np.zeros((5, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="same step"):
        rollout(StepCountingEnv(), [early, late], zero_chunk, 8)
    with pytest.raises(ValueError, match="restart at step 5"):
        rollout(StepCountingEnv(), [late], zero_chunk, 5)


def test_the_reference_policies_bound_a_task_from_above_and_below(tmp_path):
    reality = RealityConfig(tasks=("reach-v3",))
    results = {policy: evaluate_policy(EvalPolicyConfig(policy=policy, reality=reality, episodes_per_task=4, videos_per_task=0,
                                                        out=str(tmp_path / policy), threads=1))
               for policy in ("expert", "random")}
    assert results["expert"]["per_task"]["reach-v3"] == {"success": 1.0, "stderr": 0.0, "episodes": 4}
    assert results["random"]["per_task"]["reach-v3"]["success"] < 0.5
    assert (tmp_path / "random" / "results.json").exists()
