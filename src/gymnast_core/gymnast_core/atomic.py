"""JSON and binary files: atomic writes (a reader sees the old file or the new one, never half
of one) and JSON reads whose errors name the file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def config_as_json(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON values (tuples become lists, anything else a string)."""
    return json.loads(json.dumps(asdict(config), default=str))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike, missing: str = "not found", missing_error: type[Exception] = FileNotFoundError,
              error: type[Exception] = ValueError) -> dict[str, Any]:
    """A JSON object from `path`; a missing file raises `missing_error`, bad content `error`."""
    path = Path(path)
    if not path.exists():
        raise missing_error(f"{path}: {missing}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data
