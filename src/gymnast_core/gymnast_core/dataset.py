"""A dataset is a folder of episodes with an index.

    <root>/info.json                  format version, ActionSpec (with statistics), fps, and when
                                      known: image_size [H, W], episode_steps, tasks
    <root>/index.json                 one row per episode: key, file, steps, task, source, success
    <root>/episodes/<key>.npz         frames, actions, instruction, success, metadata
    <root>/.lock                      held (flock) by the one writer; holds its pid

Every file is written atomically (temp file + rename), episode first and index second, so
an interrupted writer leaves a valid dataset that simply lacks the last episode. Reads are
validated and errors name the file and field.

EpisodeDataset.open is read-only and takes no lock. EpisodeDataset.create is the only way to
write: it takes an exclusive lock on <root>/.lock for the writer's life (released by close(),
by leaving its `with` block, or by the process ending), so a second writer fails at once
instead of losing episodes. The writer keeps these invariants:
  - every episode has the dataset's frame size (info.json 'image_size', set by the creator or
    by the first episode) and, if the dataset declares 'episode_steps', that many steps;
  - the statistics in info.json cover exactly the indexed episodes: append() clears them
    before it writes, and closing the writer recomputes them. A writer that is interrupted
    leaves no statistics, and the next writer's close() computes them.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tokenize
import zipfile
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

import numpy as np

from gymnast_core.action_spec import ActionSpec, NormStats
from gymnast_core.atomic import atomic_open, read_json, write_json
from gymnast_core.episode import Episode, EpisodeError

FORMAT = "gymnast-episodes"
VERSION = 1
_EPISODE_FIELDS = ("frames", "actions", "instruction", "success", "metadata")
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class IndexEntry:
    key: str
    file: str
    num_steps: int
    instruction: str
    task: str
    source: str
    success: bool | None


class EpisodeDataset:
    """Read episodes in a dataset folder; one created with create() also appends (see the module docstring)."""

    def __init__(self, root: str | Path, info: dict[str, Any], entries: list[IndexEntry], lock: IO[str] | None = None):
        self.root = Path(root)
        self.info = info
        self._entries = entries
        self._keys = {e.key for e in entries}
        self._lock = lock

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, action_spec: ActionSpec, fps: float | None = None,
               image_size: int | Sequence[int] | None = None, episode_steps: int | None = None,
               tasks: Sequence[str] | None = None, **extra: Any) -> "EpisodeDataset":
        """Open the dataset at `root` for writing, creating it if needed; raises DatasetError if
        another writer holds it or it was made with other actions, frame size or episode length.

        image_size (S or (H, W)) and episode_steps fix what every episode must have; None leaves
        the frame size to the first episode and the length free. `tasks` are added to info.json's.
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = _lock(root)
        try:
            if (root / "info.json").exists():
                dataset = cls._read(root, lock)
                dataset._check_compatible(action_spec, image_size, episode_steps, tasks)
                return dataset
            info = {"format": FORMAT, "version": VERSION, "action_spec": action_spec.to_dict(),
                    "fps": fps if fps is not None else action_spec.control_hz,
                    "image_size": None if image_size is None else list(_frame_shape(image_size)),
                    "episode_steps": episode_steps, **({"tasks": list(tasks)} if tasks else {}), **extra}
            (root / "episodes").mkdir(exist_ok=True)
            write_json(root / "info.json", info)
            write_json(root / "index.json", {"episodes": []})
            return cls(root, info, [], lock)
        except BaseException:
            lock.close()
            raise

    @classmethod
    def open(cls, root: str | Path) -> "EpisodeDataset":
        """Open the dataset at `root` read-only (no lock: every file is replaced atomically)."""
        return cls._read(Path(root), None)

    @classmethod
    def _read(cls, root: Path, lock: IO[str] | None) -> "EpisodeDataset":
        info = _read_json(root / "info.json")
        if info.get("format") != FORMAT:
            raise DatasetError(f"{root / 'info.json'}: field 'format' is {info.get('format')!r}, expected {FORMAT!r}")
        if info.get("version") != VERSION:
            raise DatasetError(f"{root / 'info.json'}: field 'version' is {info.get('version')!r}, expected {VERSION}")
        try:
            ActionSpec.from_dict(info["action_spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{root / 'info.json'}: field 'action_spec' is invalid: {exc}") from exc
        index = _read_json(root / "index.json")
        rows = index.get("episodes")
        if not isinstance(rows, list):
            raise DatasetError(f"{root / 'index.json'}: field 'episodes' must be a list")
        return cls(root, info, [_index_entry(row, root / "index.json", i) for i, row in enumerate(rows)], lock)

    def _check_compatible(self, action_spec: ActionSpec, image_size: int | Sequence[int] | None,
                          episode_steps: int | None, tasks: Sequence[str] | None) -> None:
        """For create() on an existing dataset: refuse a different layout, record what was missing."""
        if self.action_spec.names != action_spec.names:
            raise DatasetError(f"{self.root}: exists with actions {self.action_spec.names}, "
                               f"cannot append {action_spec.names}")
        before = json.dumps(self.info)
        if image_size is not None:
            have, want = self.image_shape, _frame_shape(image_size)
            if have is not None and have != want:
                raise DatasetError(f"{self.root}: holds {_size(have)} frames (info.json field 'image_size'), "
                                   f"cannot add {_size(want)} frames")
            self.info["image_size"] = list(want)
        if episode_steps is not None:
            declared = self.info.get("episode_steps")
            lengths = {declared} if declared else {e.num_steps for e in self._entries}
            if lengths - {episode_steps}:
                raise DatasetError(f"{self.root}: holds episodes of {sorted(lengths)} steps (info.json field "
                                   f"'episode_steps'), cannot add {episode_steps}-step episodes")
            self.info["episode_steps"] = episode_steps
        if tasks:
            listed = list(self.info.get("tasks") or [])
            self.info["tasks"] = listed + [t for t in tasks if t not in listed]
        if json.dumps(self.info) != before:
            write_json(self.root / "info.json", self.info)

    # -- writing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Finish writing: compute the statistics if they are missing (episodes were added, now or by
        an interrupted writer), then release the lock."""
        if self._lock is None:
            return
        try:
            if self._entries and self.action_spec.stats is None:
                self.compute_stats()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def __enter__(self) -> "EpisodeDataset":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After an error, keep the dataset as it is: the next writer's close() catches up.
        if exc_type is None:
            self.close()
        else:
            self._release()

    def _check_writable(self, action: str) -> None:
        if self._lock is None:
            raise DatasetError(f"{self.root}: cannot {action}: this EpisodeDataset is read-only (opened with "
                               "EpisodeDataset.open, or a closed writer); write through EpisodeDataset.create")

    # -- metadata ----------------------------------------------------------------------------
    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec.from_dict(self.info["action_spec"])

    @property
    def entries(self) -> list[IndexEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    @property
    def num_frames(self) -> int:
        return sum(e.num_steps + 1 for e in self._entries)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(H, W) of every frame: info.json's 'image_size', else (older datasets) the first episode's."""
        if self.info.get("image_size") is not None:
            try:
                return _frame_shape(self.info["image_size"])
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{self.root / 'info.json'}: field 'image_size' is invalid: {exc}") from exc
        return self.load(0).image_shape if self._entries else None

    # -- episodes ----------------------------------------------------------------------------
    def append(self, episode: Episode, key: str) -> IndexEntry:
        """Write one episode and add it to the index (both atomically)."""
        self._check_writable("append")
        if key in self._keys:
            raise DatasetError(f"{self.root}: an episode with key {key!r} already exists")
        episode.validate()
        spec = self.action_spec
        if episode.actions.shape[1] != spec.dim:
            raise EpisodeError("actions", f"has dimension {episode.actions.shape[1]}, the dataset's ActionSpec has {spec.dim}")
        shape = self.image_shape
        if shape is not None and episode.image_shape != shape:
            raise DatasetError(f"{self.root}: episode {key!r} has {_size(episode.image_shape)} frames, the dataset's "
                               f"are {_size(shape)} (info.json field 'image_size')")
        steps = self.info.get("episode_steps")
        if steps and episode.num_steps != steps:
            raise DatasetError(f"{self.root}: episode {key!r} has {episode.num_steps} steps, the dataset's have "
                               f"{steps} (info.json field 'episode_steps')")
        if spec.stats is not None or self.info.get("image_size") is None:
            # Before the episode lands: stored statistics would no longer cover the index (close()
            # recomputes them), and the first episode fixes the frame size.
            self.info["action_spec"] = spec.with_stats(None).to_dict()
            self.info["image_size"] = list(episode.image_shape)
            write_json(self.root / "info.json", self.info)
        file = f"episodes/{_SAFE_KEY.sub('_', key)}.npz"
        with atomic_open(self.root / file, "wb") as handle:
            np.savez_compressed(
                handle,
                frames=episode.frames,
                actions=episode.actions,
                instruction=np.array(episode.instruction),
                success=np.array(-1 if episode.success is None else int(bool(episode.success)), dtype=np.int8),
                metadata=np.array(json.dumps(episode.metadata, default=_json_default)),
            )
        entry = IndexEntry(
            key=key,
            file=file,
            num_steps=episode.num_steps,
            instruction=episode.instruction,
            task=str(episode.metadata.get("task", "")),
            source=str(episode.metadata.get("source", "")),
            success=None if episode.success is None else bool(episode.success),
        )
        self._entries.append(entry)
        self._keys.add(key)
        self._write_index()
        return entry

    def load(self, item: int | IndexEntry) -> Episode:
        entry = self._entries[item] if isinstance(item, int) else item
        path = self.root / entry.file
        if not path.exists():
            raise DatasetError(f"{path}: episode file listed in index.json is missing")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [f for f in _EPISODE_FIELDS if f not in npz.files]
                if missing:
                    raise DatasetError(f"{path}: missing field(s) {', '.join(missing)}")
                arrays = {f: npz[f] for f in _EPISODE_FIELDS}
        except DatasetError:
            raise
        # What zipfile, zlib and numpy's header parser raise on damaged bytes (a flipped bit can
        # reach each of them: a bad CRC, a broken deflate stream, an unknown compression method).
        except (zipfile.BadZipFile, zlib.error, tokenize.TokenError, NotImplementedError, EOFError, OSError,
                ValueError, KeyError) as exc:
            raise DatasetError(f"{path}: corrupt or truncated episode file ({type(exc).__name__}: {exc})") from exc
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: field 'metadata' is not valid JSON: {exc}") from exc
        success = int(arrays["success"])
        try:
            episode = Episode(
                frames=arrays["frames"],
                actions=arrays["actions"],
                instruction=str(arrays["instruction"]),
                success=None if success < 0 else bool(success),
                metadata=metadata,
            )
        except EpisodeError as exc:
            raise DatasetError(f"{path}: {exc}") from exc
        if episode.num_steps != entry.num_steps:
            raise DatasetError(
                f"{path}: field 'actions' has {episode.num_steps} steps, index.json says {entry.num_steps}"
            )
        if episode.actions.shape[1] != self.action_spec.dim:
            raise DatasetError(
                f"{path}: field 'actions' has dimension {episode.actions.shape[1]}, info.json's ActionSpec has {self.action_spec.dim}"
            )
        return episode

    def __getitem__(self, item: int) -> Episode:
        return self.load(item)

    def __iter__(self) -> Iterator[Episode]:
        for entry in self._entries:
            yield self.load(entry)

    def select(self, predicate: Callable[[IndexEntry], bool]) -> list[IndexEntry]:
        return [e for e in self._entries if predicate(e)]

    # -- statistics --------------------------------------------------------------------------
    def compute_stats(self) -> NormStats:
        """q01/q99 statistics over every action; stored in info.json's ActionSpec."""
        self._check_writable("compute statistics")
        if not self._entries:
            raise DatasetError(f"{self.root}: cannot compute statistics of an empty dataset")
        actions = np.concatenate([self.load(e).actions for e in self._entries])
        stats = NormStats.from_actions(actions)
        self.info["action_spec"] = self.action_spec.with_stats(stats).to_dict()
        write_json(self.root / "info.json", self.info)
        return stats

    def summary(self) -> dict[str, Any]:
        by_source: dict[str, list[bool | None]] = defaultdict(list)
        for e in self._entries:
            by_source[e.source or "unknown"].append(e.success)
        sources = {}
        for source, labels in sorted(by_source.items()):
            known = [s for s in labels if s is not None]
            sources[source] = {
                "episodes": len(labels),
                "success_rate": (sum(known) / len(known)) if known else None,
            }
        return {
            "root": str(self.root),
            "episodes": len(self),
            "frames": self.num_frames,
            "tasks": dict(Counter(e.task for e in self._entries)),
            "sources": sources,
            "action_spec": self.action_spec,
        }

    def _write_index(self) -> None:
        write_json(self.root / "index.json", {"episodes": [e.__dict__ for e in self._entries]})


def _lock(root: Path) -> IO[str]:
    """Lock `root` for one writer; the lock lasts until the returned file is closed (or the process ends)."""
    handle = open(root / ".lock", "a+")  # "a+" so a failed attempt does not erase the holder's pid
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip()
        handle.close()
        holder = "this process is already" if pid == str(os.getpid()) else f"another process (pid {pid or '?'}) is"
        raise DatasetError(f"{root}: {holder} writing to this dataset ({root / '.lock'} is locked); "
                           "wait for it to finish or write to another folder") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


# What each index.json field must hold: its types and how the error describes them.
_ENTRY_TYPES = {f.name: ((str,), "a string") for f in fields(IndexEntry)}
_ENTRY_TYPES["num_steps"] = ((int,), "an integer >= 1")
_ENTRY_TYPES["success"] = ((bool, type(None)), "true, false or null")


def _index_entry(row: Any, path: Path, i: int) -> IndexEntry:
    try:
        entry = IndexEntry(**row)
    except TypeError as exc:
        raise DatasetError(f"{path}: row {i} is malformed: {exc}") from exc
    for name, (types, expected) in _ENTRY_TYPES.items():
        value = getattr(entry, name)
        if not isinstance(value, types) or (name == "num_steps" and (isinstance(value, bool) or value < 1)):
            raise DatasetError(f"{path}: row {i} field {name!r} is {value!r}, expected {expected}")
    return entry


def _frame_shape(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from a square size or a pair."""
    height, width = (size, size) if isinstance(size, int) else size
    return int(height), int(width)


def _size(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path, f"not found (is {path.parent} a gymnast dataset?)", DatasetError, DatasetError)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table of a dataset summary."""
    spec: ActionSpec = summary["action_spec"]
    lines = [
        f"dataset   {summary['root']}",
        f"episodes  {summary['episodes']}",
        f"frames    {summary['frames']}",
        "tasks     " + ", ".join(f"{k} ({v})" for k, v in sorted(summary["tasks"].items())),
        "",
        f"{'source':<10} {'episodes':>8} {'success':>8}",
    ]
    for source, row in summary["sources"].items():
        rate = "n/a" if row["success_rate"] is None else f"{row['success_rate']:.2f}"
        lines.append(f"{source:<10} {row['episodes']:>8} {rate:>8}")
    if spec.stats is not None:
        lines += ["", f"{'action':<10} {'q01':>8} {'q99':>8} {'mean':>8} {'std':>8}"]
        for i, name in enumerate(spec.names):
            s = spec.stats
            lines.append(f"{name:<10} {s.q01[i]:>8.3f} {s.q99[i]:>8.3f} {s.mean[i]:>8.3f} {s.std[i]:>8.3f}")
    return "\n".join(lines)
