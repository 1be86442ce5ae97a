"""A task: an initial frame and an instruction, stored as a folder with a PNG and a JSON file.

    <tasks_root>/<name>/task.json          {"instruction": ..., "criterion": ..., "env_state": {...}}
    <tasks_root>/<name>/initial_frame.png

`env_state` lets an evaluation environment restore the exact initial state behind the frame
(Meta-World: task name and seed); the dream needs only the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gymnast_core.atomic import atomic_open, read_json, write_json


@dataclass
class Task:
    instruction: str
    initial_frame: np.ndarray | None = None  # uint8 [H, W, 3]
    # Optional partial-credit criterion for the judge (scored 0 / 0.5 / 1).
    criterion: str | None = None
    env_state: dict[str, Any] = field(default_factory=dict)
    # Real frames uint8 [s, H, W, 3] before initial_frame when the task restarts an episode at
    # step s (a dream restarted from a real rollout); None = the episode starts here.
    history: np.ndarray | None = None

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        if self.initial_frame is not None:
            with atomic_open(folder / "initial_frame.png", "wb") as handle:
                Image.fromarray(self.initial_frame).save(handle, format="PNG")
        write_json(folder / "task.json", {"instruction": self.instruction, "criterion": self.criterion, "env_state": self.env_state})

    @classmethod
    def load(cls, folder: str | Path) -> "Task":
        folder = Path(folder)
        meta_path = folder / "task.json"
        meta = read_json(meta_path, "not found; a task folder holds task.json and initial_frame.png")
        if not isinstance(meta.get("instruction"), str) or not meta["instruction"].strip():
            raise ValueError(f"{meta_path}: field 'instruction' must be a non-empty string")
        frame_path = folder / "initial_frame.png"
        frame = np.asarray(Image.open(frame_path).convert("RGB")) if frame_path.exists() else None
        return cls(meta["instruction"], frame, meta.get("criterion"), meta.get("env_state") or {})


def load_tasks(root: str | Path) -> list[Task]:
    """Every task folder under `root`, in name order."""
    folders = sorted(p.parent for p in Path(root).glob("*/task.json"))
    if not folders:
        raise FileNotFoundError(f"{root}: no task folders (*/task.json) found")
    return [Task.load(f) for f in folders]
