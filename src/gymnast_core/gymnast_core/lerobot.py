"""Import LeRobot v3 datasets (parquet + mp4), the format Bridge V2 is commonly mirrored in.

Layout read (LeRobot codebase version v3.0):
    meta/info.json                             features, fps, path templates
    meta/tasks.parquet                         task string <-> task_index
    meta/episodes/chunk-XXX/file-XXX.parquet   per episode: length, data/video file and offsets
    data/chunk-XXX/file-XXX.parquet            per frame: action, episode_index, frame_index, ...
    videos/<camera>/chunk-XXX/file-XXX.mp4     several episodes per file, located by timestamps

LeRobot stores one action per frame; an Episode has T+1 frames around T actions, so the
action recorded with the last frame is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from gymnast_core.action_spec import ActionSpec
from gymnast_core.dataset import DatasetError, EpisodeDataset
from gymnast_core.episode import Episode
from gymnast_core.video import decode_video, resize_frames


def _read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not path.exists():
        raise DatasetError(f"{path}: not found; not a LeRobot dataset")
    info = json.loads(path.read_text())
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{path}: field 'codebase_version' is {version!r}; this importer reads LeRobot v3.x")
    return info


def _tasks(root: Path) -> dict[int, str]:
    table = pq.read_table(root / "meta" / "tasks.parquet")
    columns = table.column_names
    task_index = table.column("task_index").to_pylist()
    # LeRobot writes the task string as the pandas index ("__index_level_0__" or "task").
    name_col = "task" if "task" in columns else next(c for c in columns if c != "task_index")
    return dict(zip(task_index, table.column(name_col).to_pylist()))


def import_lerobot_v3(
    src: str | Path,
    dst: str | Path,
    action_spec: ActionSpec,
    camera: str | None = None,
    action_key: str = "action",
    image_size: int = 64,
    source: str = "lerobot",
) -> EpisodeDataset:
    """Convert every episode of the LeRobot v3 dataset at `src` into a gymnast dataset at `dst`."""
    root = Path(src)
    info = _read_info(root)
    features = info.get("features", {})
    video_keys = [k for k, v in features.items() if v.get("dtype") == "video"]
    camera = camera or (video_keys[0] if video_keys else None)
    if camera not in video_keys:
        raise DatasetError(f"{root / 'meta/info.json'}: camera {camera!r} is not a video feature; have {video_keys}")
    if action_key not in features:
        raise DatasetError(f"{root / 'meta/info.json'}: no feature {action_key!r}; have {sorted(features)}")
    action_dim = int(np.prod(features[action_key]["shape"]))
    if action_dim != action_spec.dim:
        raise DatasetError(
            f"{root}: feature {action_key!r} has dimension {action_dim}, the ActionSpec has {action_spec.dim} ({action_spec.names})"
        )
    tasks = _tasks(root)
    episode_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    episodes = [row for f in episode_files for row in pq.read_table(f).to_pylist()]
    if not episodes:
        raise DatasetError(f"{root / 'meta/episodes'}: no episode metadata found")

    # Leaving the block computes the statistics; after an error a rerun resumes where this stopped.
    with EpisodeDataset.create(dst, action_spec, fps=info.get("fps"), image_size=image_size,
                               imported_from=str(root)) as dataset:
        # Episodes are stored in file order, so one open data file and one decoded video suffice.
        data_cache: dict[str, dict] = {}
        video_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        fps = float(info["fps"])
        for ep in tqdm(episodes, desc=f"import {root.name}", unit="episode"):
            key = f"{source}/episode_{ep['episode_index']:06d}"
            if key in dataset:
                continue
            data_file = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
            if data_file not in data_cache:
                table = pq.read_table(root / data_file, columns=[action_key, "episode_index", "frame_index"])
                data_cache = {data_file: {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}}
            data = data_cache[data_file]
            rows = np.flatnonzero(data["episode_index"] == ep["episode_index"])
            rows = rows[np.argsort(data["frame_index"][rows])]
            actions = np.stack(data[action_key][rows]).astype(np.float32).reshape(len(rows), action_dim)

            video_file = info["video_path"].format(
                video_key=camera, chunk_index=ep[f"videos/{camera}/chunk_index"], file_index=ep[f"videos/{camera}/file_index"]
            )
            if video_file not in video_cache:
                video_cache = {video_file: decode_video(root / video_file)}
            frames, times = video_cache[video_file]
            start = float(ep[f"videos/{camera}/from_timestamp"])
            # Frame i of the episode sits at start + i / fps; pick the nearest decoded frame.
            wanted = start + np.arange(len(rows)) / fps
            picks = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
            if np.abs(times[picks] - wanted).max() > 0.5 / fps:
                raise DatasetError(f"{root / video_file}: frames of episode {ep['episode_index']} are missing from the video")
            task_ids = ep.get("tasks") or []
            instruction = task_ids[0] if task_ids else tasks.get(int(ep.get("task_index", 0)), "")
            episode = Episode(
                frames=resize_frames(frames[picks], image_size),
                actions=actions[:-1],
                instruction=instruction,
                success=None,
                metadata={"source": source, "task": instruction, "robot": info.get("robot_type", ""), "fps": fps,
                          "lerobot_episode_index": int(ep["episode_index"])},
            )
            dataset.append(episode, key)
    return dataset
