import numpy as np
import pytest

from gymnast_core.envs.metaworld_env import (
    DEFAULT_TASKS,
    MetaWorldEnv,
    RealityConfig,
    ShiftConfig,
    initial_states,
)


@pytest.fixture(scope="module")
def reality():
    env = MetaWorldEnv(RealityConfig(image_size=64))
    yield env
    env.close()


def test_rendering_is_deterministic_for_a_seed(reality):
    tasks = initial_states("push-v3", "eval", 2)
    actions = np.tile(np.array([[0.5, -0.3, 0.2, 1.0]], np.float32), (2, 1))
    first = [reality.reset(tasks), reality.step(actions), reality.step(actions)]
    second = [reality.reset(tasks), reality.step(actions), reality.step(actions)]
    for a, b in zip(first, second):
        assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    # Different seeds are different initial states.
    assert np.abs(first[0][0].astype(int) - first[0][1].astype(int)).sum() > 0


@pytest.mark.parametrize("task_name", ["button-press-v3", "push-v3"])
def test_batched_sims_render_as_if_each_had_its_own_renderer(reality, task_name):
    """Sims of a task share one renderer; each frame must equal a fresh single-episode render."""
    tasks = initial_states(task_name, "eval", 3, start=5)
    batched = reality.reset(tasks)
    for i, task in enumerate(tasks):
        alone = MetaWorldEnv(RealityConfig(image_size=64))
        try:
            np.testing.assert_array_equal(alone.reset([task])[0], batched[i])
        finally:
            alone.close()


def test_image_size_is_configurable():
    env = MetaWorldEnv(RealityConfig(image_size=128))
    try:
        assert env.reset(initial_states("reach-v3", "eval", 1)).shape == (1, 128, 128, 3)
    finally:
        env.close()


def test_train_and_eval_initial_states_are_disjoint():
    train = {t.env_state["seed"] for t in initial_states("reach-v3", "train", 500)}
    held_out = {t.env_state["seed"] for t in initial_states("reach-v3", "eval", 500)}
    assert not train & held_out


def test_frame_is_upright(reality):
    # The table is below the arm: the bottom rows of the frame are table, the top rows background.
    frame = reality.reset(initial_states("reach-v3", "eval", 1))[0].astype(float)
    wood = np.array([0.45, 0.3, 0.2])
    bottom, top = frame[-8:].mean(axis=(0, 1)) / 255, frame[:4].mean(axis=(0, 1)) / 255
    assert np.linalg.norm(bottom - wood) < np.linalg.norm(top - wood)


@pytest.mark.parametrize("task_name", DEFAULT_TASKS)
def test_scripted_expert_succeeds_on_default_tasks(reality, task_name):
    tasks = initial_states(task_name, "eval", 10)
    reality.reset(tasks)
    for _ in range(reality.config.max_steps):
        reality.step(reality.expert_actions())
    assert reality.success.mean() >= 0.9


def test_shifted_simulator_differs_in_look_and_dynamics(reality):
    shifted = MetaWorldEnv(RealityConfig(image_size=64, shift=ShiftConfig()))
    try:
        tasks = initial_states("push-v3", "eval", 1)
        real0, sim0 = reality.reset(tasks), shifted.reset(tasks)
        look_gap = np.abs(real0.astype(float) - sim0.astype(float)).mean()
        assert look_gap > 10, f"mean pixel gap {look_gap:.1f} is too small to be a visual shift"
        move = np.array([[1.0, 0.0, 0.0, -1.0]], np.float32)
        hand = lambda env: env._active[0].env.tcp_center.copy()  # noqa: E731
        start_real, start_sim = hand(reality), hand(shifted)
        for _ in range(3):
            reality.step(move)
            shifted.step(move)
        travel_real = np.linalg.norm(hand(reality) - start_real)
        travel_sim = np.linalg.norm(hand(shifted) - start_sim)
        assert travel_sim < 0.9 * travel_real, "the action gain shift must change how far one action moves the hand"
    finally:
        shifted.close()
    identity = ShiftConfig((1.0, 1.0, 1.0), 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    same = MetaWorldEnv(RealityConfig(image_size=64, shift=identity))
    try:
        np.testing.assert_array_equal(same.reset(tasks), reality.reset(tasks))
    finally:
        same.close()


def test_bad_actions_and_tasks_are_rejected(reality):
    reality.reset(initial_states("reach-v3", "eval", 1))
    with pytest.raises(ValueError, match="NaN"):
        reality.step(np.full((1, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        reality.step(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        initial_states("fly-to-the-moon-v3", "eval", 1)
    restarted = initial_states("reach-v3", "eval", 1)[0]
    restarted.history = np.zeros((5, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="restarts mid-episode"):
        reality.reset([restarted])


def test_every_metaworld_v3_task_has_an_instruction_and_an_expert():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    from gymnast_core.envs.metaworld_env import INSTRUCTIONS, expert_policy

    names = {key.removesuffix("-goal-observable") for key in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE}
    assert len(names) == 50 and set(INSTRUCTIONS) == names
    assert len(set(INSTRUCTIONS.values())) == 50  # the policy and the judge tell tasks apart by instruction
    for name in names:
        assert expert_policy(name) is not None
