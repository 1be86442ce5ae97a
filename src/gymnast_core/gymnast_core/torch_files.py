"""Torch checkpoint files: atomic saves, and the one loader every checkpoint goes through.

Checkpoints are the files users share (world models, policies, judges), so loading one must never
run code: `torch.load(weights_only=True)` accepts tensors and plain containers only, and a file
that holds anything else is refused with an error that says so.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from gymnast_core.atomic import atomic_open

# torch's refusal names the global it would have had to import, e.g. "GLOBAL posix.system".
_UNSUPPORTED_GLOBAL = re.compile(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)")


class CheckpointError(ValueError):
    """A checkpoint file is damaged, truncated or holds objects that could run code."""


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write tensors and plain Python values (dicts, lists, numbers, strings)."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def load_torch(path: str | os.PathLike, what: str, missing_hint: str = "") -> Any:
    """The contents of a torch file on the CPU; `what` names it in errors ("world-model checkpoint"),
    and `missing_hint` says how to make a missing one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found" + (f" ({missing_hint})" if missing_hint else ""))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        offending = _UNSUPPORTED_GLOBAL.search(str(exc))
        if offending is None:  # not a pickle torch can read at all
            raise CheckpointError(f"{path}: cannot read the {what}: the file is damaged or not a torch file") from exc
        raise CheckpointError(f"{path}: refused to load the {what}: it holds Python objects other than tensors and "
                              f"plain values ({offending.group(1)}), which could run code, so it is not loaded") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, zlib.error, OSError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path}: cannot read the {what}: the file is damaged or truncated "
                              f"({type(exc).__name__}: {first_line})") from exc
