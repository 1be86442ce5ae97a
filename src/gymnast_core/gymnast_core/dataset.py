"""A dataset is a folder of episodes with an index.

    <root>/info.json                  format version, ActionSpec (with statistics), fps
    <root>/index.json                 one row per episode: key, file, steps, task, source, success
    <root>/episodes/<key>.npz         frames, actions, instruction, success, metadata

Every file is written atomically (temp file + rename), episode first and index second, so
an interrupted writer leaves a valid dataset that simply lacks the last episode. Reads are
validated and errors name the file and field.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

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
    """Read and append episodes in a dataset folder. One writer at a time."""

    def __init__(self, root: str | Path, info: dict[str, Any], entries: list[IndexEntry]):
        self.root = Path(root)
        self.info = info
        self._entries = entries
        self._keys = {e.key for e in entries}

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, action_spec: ActionSpec, fps: float | None = None, **extra: Any) -> "EpisodeDataset":
        """Create an empty dataset, or open an existing one that has the same ActionSpec."""
        root = Path(root)
        if (root / "info.json").exists():
            dataset = cls.open(root)
            if dataset.action_spec.names != action_spec.names:
                raise DatasetError(
                    f"{root}: exists with actions {dataset.action_spec.names}, cannot append {action_spec.names}"
                )
            return dataset
        info = {"format": FORMAT, "version": VERSION, "action_spec": action_spec.to_dict(),
                "fps": fps if fps is not None else action_spec.control_hz, **extra}
        (root / "episodes").mkdir(parents=True, exist_ok=True)
        write_json(root / "info.json", info)
        write_json(root / "index.json", {"episodes": []})
        return cls(root, info, [])

    @classmethod
    def open(cls, root: str | Path) -> "EpisodeDataset":
        root = Path(root)
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
        entries = []
        for i, row in enumerate(rows):
            try:
                entries.append(IndexEntry(**row))
            except TypeError as exc:
                raise DatasetError(f"{root / 'index.json'}: row {i} is malformed: {exc}") from exc
        return cls(root, info, entries)

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

    # -- episodes ----------------------------------------------------------------------------
    def append(self, episode: Episode, key: str) -> IndexEntry:
        """Write one episode and add it to the index (both atomically)."""
        if key in self._keys:
            raise DatasetError(f"{self.root}: an episode with key {key!r} already exists")
        episode.validate()
        spec = self.action_spec
        if episode.actions.shape[1] != spec.dim:
            raise EpisodeError("actions", f"has dimension {episode.actions.shape[1]}, the dataset's ActionSpec has {spec.dim}")
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
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
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
