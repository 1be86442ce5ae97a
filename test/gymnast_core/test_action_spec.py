import numpy as np
import pytest

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, ActionSpec, NormStats


def test_bridge_default_is_seven_d_ee_delta_with_open_gripper_one():
    spec = BRIDGE_ACTION_SPEC
    assert spec.names == ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    assert spec.dim == 7 and spec.gripper_index == 6
    assert spec.high[:3] == (0.05,) * 3 and spec.high[3:6] == (0.25,) * 3
    assert spec.period == pytest.approx(0.2)


def test_normalize_uses_q01_q99_and_maps_open_gripper_to_plus_one():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.04, 0.04, size=(1000, 7)).astype(np.float32)
    actions[:, 6] = rng.integers(0, 2, size=1000)
    spec = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(actions))
    normalized = spec.normalize(actions)
    assert normalized.min() >= -1 and normalized.max() <= 1
    assert np.all(normalized[actions[:, 6] == 1, 6] == 1.0)
    assert np.all(normalized[actions[:, 6] == 0, 6] == -1.0)
    inside = np.all((actions[:, :6] > spec.stats.q01[:6]) & (actions[:, :6] < spec.stats.q99[:6]), axis=1)
    np.testing.assert_allclose(spec.unnormalize(normalized)[inside], actions[inside], atol=1e-6)


def test_inverted_gripper_convention_still_normalises_open_to_plus_one():
    spec = ActionSpec(("x", "grip"), (-1, -1), (1, 1), gripper_index=1, gripper_open=-1.0, gripper_closed=1.0)
    assert spec.normalize(np.array([[0.0, -1.0]]))[0, 1] == 1.0
    assert spec.normalize(np.array([[0.0, 1.0]]))[0, 1] == -1.0


def test_stats_dimension_mismatch_is_a_clear_error():
    stats = NormStats.from_actions(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="dimension 4.*has 7"):
        BRIDGE_ACTION_SPEC.with_stats(stats)


def test_validate_rejects_nan_and_wrong_dim():
    with pytest.raises(ValueError, match="NaN"):
        BRIDGE_ACTION_SPEC.validate(np.full((2, 7), np.nan))
    with pytest.raises(ValueError, match="last dimension 7"):
        BRIDGE_ACTION_SPEC.validate(np.zeros((2, 6)))


def test_dict_round_trip():
    spec = BRIDGE_ACTION_SPEC.with_stats(NormStats.from_actions(np.random.default_rng(1).normal(size=(50, 7))))
    assert ActionSpec.from_dict(spec.to_dict()) == spec
