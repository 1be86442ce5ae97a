import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, NormStats
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


def test_a_second_writer_is_refused_and_the_first_keeps_every_episode(tmp_path):
    root = tmp_path / "ds"
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC) as first:
        for i in range(3):
            first.append(make_episode(seed=i), f"first/{i}")
        # flock is per open file, so a second writer conflicts in this process and in another.
        with pytest.raises(DatasetError, match="this process is already writing to this dataset"):
            EpisodeDataset.create(root, BRIDGE_ACTION_SPEC)
        code = (f"from gymnast_core.action_spec import BRIDGE_ACTION_SPEC\nfrom gymnast_core.dataset import EpisodeDataset\n"
                f"EpisodeDataset.create({str(root)!r}, BRIDGE_ACTION_SPEC)")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0
        assert f"DatasetError: {root}: another process (pid {os.getpid()}) is writing to this dataset" in other.stderr
        for i in range(3, 6):
            first.append(make_episode(seed=i), f"first/{i}")
    reopened = EpisodeDataset.open(root)
    assert [e.key for e in reopened.entries] == [f"first/{i}" for i in range(6)]
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC):  # closing released the lock
        pass


def test_read_only_datasets_refuse_to_write(tmp_path):
    with EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC) as writer:
        writer.append(make_episode(), "a")
    for dataset in (EpisodeDataset.open(tmp_path / "ds"), writer):
        with pytest.raises(DatasetError, match="cannot append: this EpisodeDataset is read-only"):
            dataset.append(make_episode(seed=1), "b")
        with pytest.raises(DatasetError, match="cannot compute statistics: this EpisodeDataset is read-only"):
            dataset.compute_stats()


def test_statistics_of_an_interrupted_extension_are_recomputed(tmp_path):
    root = tmp_path / "ds"
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC) as dataset:
        dataset.append(make_episode(steps=50), "a")
    old = EpisodeDataset.open(root).action_spec.stats
    assert old is not None  # closing the writer computed them
    # Extend with larger actions, then die before the statistics pass.
    with pytest.raises(RuntimeError):
        with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC) as dataset:
            big = make_episode(steps=50, seed=1)
            big.actions *= 10
            dataset.append(big, "b")
            raise RuntimeError("killed")
    assert EpisodeDataset.open(root).action_spec.stats is None  # not the old q01/q99
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC):  # the rerun: nothing left to add
        pass
    reopened = EpisodeDataset.open(root)
    actions = np.concatenate([e.actions for e in reopened])
    assert reopened.action_spec.stats == NormStats.from_actions(actions) != old


def test_frame_size_and_episode_length_are_fixed(tmp_path):
    root = tmp_path / "ds"
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC, image_size=16, episode_steps=5, tasks=["eggplant"]) as dataset:
        dataset.append(make_episode(size=16, steps=5), "a")
        with pytest.raises(DatasetError, match=r"episode 'b' has 32x32 frames, the dataset's are 16x16"):
            dataset.append(make_episode(size=32, steps=5), "b")
        with pytest.raises(DatasetError, match=r"episode 'c' has 3 steps, the dataset's have 5"):
            dataset.append(make_episode(size=16, steps=3), "c")
    index = (root / "index.json").read_text()
    with pytest.raises(DatasetError, match=r"holds 16x16 frames .* cannot add 32x32 frames"):
        EpisodeDataset.create(root, BRIDGE_ACTION_SPEC, image_size=32)
    with pytest.raises(DatasetError, match=r"holds episodes of \[5\] steps .* cannot add 10-step episodes"):
        EpisodeDataset.create(root, BRIDGE_ACTION_SPEC, episode_steps=10)
    assert (root / "index.json").read_text() == index
    # Extending with another task adds it to info.json's list.
    with EpisodeDataset.create(root, BRIDGE_ACTION_SPEC, image_size=16, episode_steps=5, tasks=["drawer", "eggplant"]):
        pass
    assert EpisodeDataset.open(root).info["tasks"] == ["eggplant", "drawer"]


def test_without_a_declared_size_the_first_episode_fixes_it_and_lengths_are_free(tmp_path):
    with EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC) as dataset:
        dataset.append(make_episode(size=16, steps=5), "a")
        dataset.append(make_episode(size=16, steps=3), "b")
        with pytest.raises(DatasetError, match="32x32 frames, the dataset's are 16x16"):
            dataset.append(make_episode(size=32), "c")
    assert EpisodeDataset.open(tmp_path / "ds").info["image_size"] == [16, 16]


def test_every_single_byte_flip_gives_a_dataset_error_or_the_same_episode(tmp_path):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    # Smooth frames, as a camera gives: deflate codes them (random bytes would be stored raw).
    frames = np.broadcast_to(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None, None], (3, 16, 16, 3))
    original = Episode(frames.copy(), np.full((2, 7), 0.01, np.float32), "open the drawer", True, {"task": "drawer"})
    path = tmp_path / "ds" / dataset.append(original, "a").file
    data = path.read_bytes()
    causes = set()
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        path.write_bytes(flipped)
        try:
            loaded = dataset.load(0)
        except DatasetError as exc:
            assert "a.npz" in str(exc)
            causes.add(type(exc.__cause__))
        else:
            np.testing.assert_array_equal(loaded.frames, original.frames)
            np.testing.assert_array_equal(loaded.actions, original.actions)
    assert zlib.error in causes  # a broken deflate stream, not only bad CRCs


@pytest.mark.parametrize(
    "field, value, expected",
    [("num_steps", "forty", "an integer >= 1"), ("num_steps", 0, "an integer >= 1"), ("num_steps", True, "an integer"),
     ("success", "yes", "true, false or null"), ("task", 3, "a string")],
)
def test_index_fields_of_the_wrong_type_are_named(tmp_path, field, value, expected):
    dataset = EpisodeDataset.create(tmp_path / "ds", BRIDGE_ACTION_SPEC)
    dataset.append(make_episode(), "a")
    dataset.append(make_episode(seed=1), "b")
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    index["episodes"][1][field] = value
    (tmp_path / "ds" / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match=rf"index.json: row 1 field '{field}' is .*, expected {expected}"):
        EpisodeDataset.open(tmp_path / "ds")
