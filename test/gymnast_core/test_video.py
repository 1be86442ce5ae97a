"""Video helpers: encoding leaves the caller's thread as it found it."""

import os

import numpy as np
import pytest

from gymnast_core.video import decode_video, encode_video


@pytest.mark.parametrize("codec", ["h264", "libsvtav1"])
def test_encoding_keeps_the_threads_scheduling_policy(tmp_path, codec):
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    frames = np.full((4, 32, 32, 3), 90, np.uint8)
    encode_video(tmp_path / "clip.mp4", frames, fps=5, codec=codec)
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    assert decode_video(tmp_path / "clip.mp4")[0].shape == frames.shape
