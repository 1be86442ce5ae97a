"""Evaluation environments: the stand-in "reality" and its shifted "software simulator"."""

import os

# EGL renders offscreen on the CPU (Mesa llvmpipe) without a display; it must be chosen
# before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")
