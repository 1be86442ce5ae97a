"""A LeRobot v3 dataset built here (parquet + mp4 with two episodes per file) imports correctly."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC
from gymnast_core.dataset import DatasetError
from gymnast_core.lerobot import import_lerobot_v3
from gymnast_core.video import encode_video

CAMERA = "observation.images.image_0"
FPS = 5


def _frames(length, base):
    # Flat colours per frame survive lossy video coding to within a few levels.
    values = (base + 12 * np.arange(length)) % 256
    return np.broadcast_to(values[:, None, None, None], (length, 32, 32, 3)).astype(np.uint8).copy()


def build_lerobot_v3(root, lengths=(4, 6), codec="h264"):
    rng = np.random.default_rng(0)
    tasks = ["put the eggplant in the sink", "close the drawer"]
    actions = [rng.uniform(-0.05, 0.05, (n, 7)).astype(np.float32) for n in lengths]
    frames = [_frames(n, 40 + 100 * i) for i, n in enumerate(lengths)]
    info = {
        "codebase_version": "v3.0",
        "robot_type": "widowx",
        "fps": FPS,
        "total_episodes": len(lengths),
        "total_frames": sum(lengths),
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            "action": {"dtype": "float32", "shape": [7], "names": list(BRIDGE_ACTION_SPEC.names)},
            CAMERA: {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channel"]},
            "episode_index": {"dtype": "int64", "shape": [1]},
            "frame_index": {"dtype": "int64", "shape": [1]},
        },
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": tasks}), root / "meta" / "tasks.parquet")
    (root / "data" / "chunk-000").mkdir(parents=True)
    episode_index = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
    frame_index = np.concatenate([np.arange(n) for n in lengths])
    stacked = np.concatenate(actions)
    # Rows deliberately out of order: the importer must sort by frame_index.
    order = np.random.default_rng(1).permutation(len(stacked))
    pq.write_table(
        pa.table({
            "action": pa.array(list(stacked[order]), type=pa.list_(pa.float32())),
            "episode_index": episode_index[order],
            "frame_index": frame_index[order],
            "timestamp": (frame_index[order] / FPS).astype(np.float32),
        }),
        root / "data" / "chunk-000" / "file-000.parquet",
    )
    encode_video(root / "videos" / CAMERA / "chunk-000" / "file-000.mp4", np.concatenate(frames), FPS, codec)
    starts = np.cumsum([0, *lengths[:-1]])
    rows = [{
        "episode_index": i, "tasks": [tasks[i]], "length": n,
        "data/chunk_index": 0, "data/file_index": 0,
        "dataset_from_index": int(starts[i]), "dataset_to_index": int(starts[i] + n),
        f"videos/{CAMERA}/chunk_index": 0, f"videos/{CAMERA}/file_index": 0,
        f"videos/{CAMERA}/from_timestamp": float(starts[i] / FPS), f"videos/{CAMERA}/to_timestamp": float((starts[i] + n) / FPS),
    } for i, n in enumerate(lengths)]
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return tasks, actions, frames


@pytest.mark.parametrize("codec", ["h264", "libsvtav1"])
def test_lerobot_v3_import(tmp_path, codec):
    tasks, actions, frames = build_lerobot_v3(tmp_path / "lerobot", codec=codec)
    dataset = import_lerobot_v3(tmp_path / "lerobot", tmp_path / "ds", BRIDGE_ACTION_SPEC, image_size=16)
    assert len(dataset) == 2
    for i, episode in enumerate(dataset):
        assert episode.instruction == tasks[i]
        # One action per frame in LeRobot; T+1 frames around T actions here.
        np.testing.assert_array_equal(episode.actions, actions[i][:-1])
        assert episode.frames.shape == (len(frames[i]), 16, 16, 3)
        assert np.abs(episode.frames.mean(axis=(1, 2, 3)) - frames[i].mean(axis=(1, 2, 3))).max() < 6
        assert episode.metadata["robot"] == "widowx"
    assert dataset.action_spec.stats is not None


def test_lerobot_import_rejects_wrong_action_dimension(tmp_path):
    build_lerobot_v3(tmp_path / "lerobot")
    info_path = tmp_path / "lerobot" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["shape"] = [6]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="dimension 6"):
        import_lerobot_v3(tmp_path / "lerobot", tmp_path / "ds", BRIDGE_ACTION_SPEC)


def test_lerobot_import_rejects_old_format(tmp_path):
    build_lerobot_v3(tmp_path / "lerobot")
    info_path = tmp_path / "lerobot" / "meta" / "info.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="codebase_version"):
        import_lerobot_v3(tmp_path / "lerobot", tmp_path / "ds", BRIDGE_ACTION_SPEC)
