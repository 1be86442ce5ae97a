"""The one checkpoint loader: shared files never run code, and damaged ones say so."""

import os
import shutil

import pytest
import torch

from gymnast_core.torch_files import CheckpointError, load_torch, save_torch


class RunsCode:
    """Unpickling this runs a shell command, as a crafted checkpoint would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(path, marker, **state):
    torch.save({**state, "payload": RunsCode(marker)}, path)
    return path


def test_round_trip_of_tensors_and_plain_values(tmp_path):
    import numpy as np

    state = {"weights": torch.arange(4.0), "step": 3, "rng": np.random.default_rng(0).bit_generator.state}
    save_torch(tmp_path / "state.pt", state)
    loaded = load_torch(tmp_path / "state.pt", "test state")
    torch.testing.assert_close(loaded["weights"], state["weights"])
    assert loaded["step"] == 3 and loaded["rng"] == state["rng"]


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(CheckpointError, match="refused to load the test file.*posix.system"):
        load_torch(crafted(tmp_path / "evil.pt", marker), "test file")
    assert not marker.exists()


def test_every_shipped_kind_of_checkpoint_refuses_a_crafted_file(shipped, tmp_path):
    from gymnast_policy.checkpoint import load_policy
    from gymnast_reward.learned_judge import load_learned_judge
    from gymnast_world_model.world_model import load_world_model

    marker = tmp_path / "ran"
    with pytest.raises(CheckpointError, match="world-model checkpoint"):
        load_world_model(crafted(tmp_path / "world_model.pt", marker, kind="gymnast-world-model"))
    for name, load in (("policy_sft", load_policy), ("judge", load_learned_judge)):
        folder = shutil.copytree(shipped / name, tmp_path / name)
        crafted(folder / "weights.pt", marker)
        with pytest.raises(CheckpointError, match="refused"):
            load(folder)
    assert not marker.exists()


def test_a_truncated_file_is_called_damaged_not_mismatched(shipped, tmp_path):
    from gymnast_policy.checkpoint import load_policy

    folder = shutil.copytree(shipped / "policy_sft", tmp_path / "policy")
    weights = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated") as info:
        load_policy(folder)
    assert "do not match" not in str(info.value)
