"""JSON and binary files: atomic writes (a reader sees the old file or the new one, never half
of one) and JSON reads whose errors name the file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    The file gets the permissions a plain open() would give it (0o666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not tempfile.mkstemp: it always makes 0o600 files. The kernel applies the umask to this mode.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable: without this a crash can bring back the old file."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Config fields that hold credentials: never written to a run's files.
SECRET_FIELDS = ("api_key", "token", "password")
REDACTED = "<redacted>"


def config_as_json(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON values (tuples become lists, anything else a string), with
    credentials (non-empty SECRET_FIELDS) replaced by REDACTED."""
    return _redacted(json.loads(json.dumps(asdict(config), default=str)))


def _redacted(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: _redacted(value) if isinstance(value, dict) else REDACTED if key in SECRET_FIELDS and value else value
            for key, value in settings.items()}


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
