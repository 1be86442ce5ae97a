import json
import zipfile

import numpy as np
import pytest

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.dataset import DatasetError, EpisodeDataset
from gymnast_core.episode import Episode, EpisodeError
from gymnast_core.task import Task, load_tasks


def make_episode(steps=5, size=16, seed=0, success=True, source="expert"):
    rng = np.random.default_rng(seed)
    return Episode(
        frames=rng.integers(0, 256, size=(steps + 1, size, size, 3), dtype=np.uint8),
        actions=rng.uniform(-0.05, 0.05, size=(steps, 7)).astype(np.float32),
        instruction="put the eggplant in the sink",
        success=success,
        metadata={"source": source, "task": "eggplant", "seed": seed},
    )


def test_round_trip_preserves_every_field(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    originals = [make_episode(seed=i, success=[True, False, None][i % 3]) for i in range(4)]
    for i, episode in enumerate(originals):
        dataset.append(episode, f"ep/{i}")
    reopened = EpisodeDataset.open(tmp_path / "ds")
    assert len(reopened) == 4 and reopened.num_frames == 4 * 6
    for original, loaded in zip(originals, reopened):
        np.testing.assert_array_equal(original.frames, loaded.frames)
        np.testing.assert_array_equal(original.actions, loaded.actions)
        assert loaded.instruction == original.instruction
        assert loaded.success == original.success
        assert loaded.metadata == original.metadata
    assert not list((tmp_path / "ds").rglob("*.tmp")), "atomic writes must not leave temp files"


def test_stats_are_stored_with_the_action_spec(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    dataset.append(make_episode(steps=50), "a")
    stats = dataset.compute_stats()
    assert EpisodeDataset.open(tmp_path / "ds").action_spec.stats == stats


def test_summary_reports_success_rate_per_source(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    for i, (source, success) in enumerate([("expert", True), ("expert", True), ("random", False), ("noisy", True), ("noisy", False)]):
        dataset.append(make_episode(seed=i, success=success, source=source), str(i))
    sources = dataset.summary()["sources"]
    assert sources["expert"]["success_rate"] == 1.0
    assert sources["noisy"]["success_rate"] == 0.5
    assert sources["random"]["success_rate"] == 0.0


def test_duplicate_key_and_wrong_action_dim_are_rejected(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    dataset.append(make_episode(), "a")
    with pytest.raises(DatasetError, match="already exists"):
        dataset.append(make_episode(), "a")
    bad = make_episode()
    bad.actions = bad.actions[:, :4].copy()
    with pytest.raises(EpisodeError, match="dimension 4"):
        dataset.append(bad, "b")


def test_truncated_episode_file_is_rejected_naming_the_file(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    entry = dataset.append(make_episode(), "a")
    path = tmp_path / "ds" / entry.file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"a\.npz: corrupt or truncated"):
        EpisodeDataset.open(tmp_path / "ds").load(0)


def test_corrupted_bytes_are_rejected(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    entry = dataset.append(make_episode(), "a")
    path = tmp_path / "ds" / entry.file
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        dataset.load(0)


def _rewrite_episode(path, **changes):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"actions": None}, "missing field.*actions"),
        ({"frames": np.zeros((6, 16, 16, 3), np.float32)}, "field 'frames': expected a uint8"),
        ({"frames": np.zeros((4, 16, 16, 3), np.uint8)}, "field 'frames': has 4 frames for 5 actions"),
        ({"actions": np.full((5, 7), np.nan, np.float32)}, "field 'actions': contains NaN"),
        ({"instruction": np.array("")}, "field 'instruction'"),
        ({"metadata": np.array("{not json")}, "field 'metadata' is not valid JSON"),
    ],
)
def test_invalid_episode_fields_are_named(tmp_path, change, message):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    entry = dataset.append(make_episode(), "a")
    _rewrite_episode(tmp_path / "ds" / entry.file, **change)
    with pytest.raises(DatasetError, match=message) as info:
        dataset.load(0)
    assert "a.npz" in str(info.value)


def test_index_step_count_mismatch_is_detected(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    dataset.append(make_episode(), "a")
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    index["episodes"][0]["num_steps"] = 9
    (tmp_path / "ds" / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="index.json says 9"):
        EpisodeDataset.open(tmp_path / "ds").load(0)


def test_missing_and_malformed_dataset_files(tmp_path):
    with pytest.raises(DatasetError, match="info.json: not found"):
        EpisodeDataset.open(tmp_path / "nothing")
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    dataset.append(make_episode(), "a")
    (tmp_path / "ds" / "episodes" / "a.npz").unlink()
    with pytest.raises(DatasetError, match="missing"):
        dataset.load(0)
    (tmp_path / "ds" / "index.json").write_text("{")
    with pytest.raises(DatasetError, match="index.json: not valid JSON"):
        EpisodeDataset.open(tmp_path / "ds")


def test_episode_constructor_validates():
    with pytest.raises(EpisodeError, match="frames"):
        Episode(np.zeros((3, 8, 8), np.uint8), np.zeros((2, 7), np.float32), "x")


def test_task_folders_round_trip(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Task("open the drawer", frame, criterion="half open counts 0.5", env_state={"seed": 3}).save(tmp_path / "t1")
    Task("press the button").save(tmp_path / "t0")
    tasks = load_tasks(tmp_path)
    assert [t.instruction for t in tasks] == ["press the button", "open the drawer"]
    np.testing.assert_array_equal(tasks[1].initial_frame, frame)
    assert tasks[1].criterion == "half open counts 0.5" and tasks[1].env_state == {"seed": 3}
    (tmp_path / "t0" / "task.json").write_text('{"instruction": ""}')
    with pytest.raises(ValueError, match="instruction"):
        Task.load(tmp_path / "t0")
