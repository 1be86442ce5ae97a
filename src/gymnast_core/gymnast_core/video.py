"""Video and image helpers shared by importers, recorders and reports."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import imageio.v3 as iio
import numpy as np

from gymnast_core.atomic import atomic_open


def decode_video(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a video as uint8 [N, H, W, 3] RGB and their timestamps in seconds [N]."""
    import av  # PyAV only for MP4 input/output; GIFs and resizing do not need it

    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time))
    except (av.error.FFmpegError, IndexError) as exc:
        raise ValueError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise ValueError(f"{path}: video has no frames")
    return np.stack(frames), np.asarray(times)


@contextmanager
def _scheduling_kept() -> Iterator[None]:
    """Restore the calling thread's scheduling policy: run as root, SVT-AV1 (libsvtav1) leaves it
    SCHED_FIFO 99, and every process started from it afterwards inherits that and can starve the CPU."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy or os.sched_getparam(0) != param:
            os.sched_setscheduler(0, policy, param)


def encode_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "h264") -> None:
    """Write uint8 [N, H, W, 3] RGB frames as an MP4 (even sizes required by yuv420p)."""
    import av

    path = Path(path)
    with _scheduling_kept(), atomic_open(path, "wb") as handle:
        with av.open(handle, mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=int(round(fps)))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            container.mux(stream.encode())


def resize_frames(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 [..., H, W, 3] frames to size x size (or (H, W)) with area averaging."""
    height, width = (size, size) if isinstance(size, int) else size
    if frames.shape[-3:-1] == (height, width):
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in flat])
    return out.reshape(*frames.shape[:-3], height, width, 3)


def save_gif(path: str | Path, videos: Sequence[np.ndarray], fps: float = 5.0, scale: int = 1) -> None:
    """Tile equally long videos [T, H, W, 3] side by side and write them as a looping GIF."""
    length = min(len(v) for v in videos)
    tiled = np.concatenate([np.asarray(v[:length]) for v in videos], axis=2)
    if scale > 1:
        tiled = tiled.repeat(scale, axis=1).repeat(scale, axis=2)
    with atomic_open(path, "wb") as handle:
        iio.imwrite(handle, tiled, extension=".gif", duration=1000.0 / fps, loop=0)
