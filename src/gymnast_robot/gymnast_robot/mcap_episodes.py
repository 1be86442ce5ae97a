"""Teleop episodes as MCAP files (ROS 2 encoding), and their conversion into a gymnast dataset.

A recording holds the camera's sensor_msgs/Image messages and the executed actions as
gymnast_interfaces/ActionChunk messages of horizon 1, CDR-encoded with full ROS 2 message
definitions as schemas, so Foxglove and `ros2 bag` read it. Instruction, success label and
free-form metadata live in an MCAP metadata record named "gymnast_episode".

    writer = McapEpisodeWriter()
    writer.start("episodes/2024-05-01_12-00-00.mcap", "put the spoon in the pot", {"task": "spoon"})
    writer.write(IMAGE_TOPIC, image_msg, log_time_ns)      # any number of times
    writer.write(ACTION_TOPIC, action_msg, log_time_ns)
    path = writer.stop(success=True)                                # or writer.discard()

    episode = read_mcap_episode(path)
    dataset = convert_mcap(["episodes/"], "datasets/teleop", image_size=256)

Plain Python: rclpy message classes and serialisation, no node.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gymnast_core.names import ACTION_TOPIC, IMAGE_TOPIC
from gymnast_core.atomic import atomic_open
from gymnast_core.action_spec import BRIDGE_ACTION_SPEC, ActionSpec
from gymnast_core.dataset import DatasetError, EpisodeDataset
from gymnast_core.episode import Episode, EpisodeError
from gymnast_core.ros_msgs import MessageError, image_to_array, msg_to_chunk

METADATA_RECORD = "gymnast_episode"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
_SEPARATOR = "=" * 80
_IMAGE_SCHEMAS = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
_ACTION_SCHEMAS = ("gymnast_interfaces/msg/ActionChunk", "gymnast_interfaces/ActionChunk")


class McapEpisodeError(ValueError):
    """An MCAP episode file is unreadable or malformed; the message names the file."""


# -- ROS 2 message definitions ------------------------------------------------------------------
def message_type_name(msg_class: type) -> tuple[str, str]:
    """(package, Type) of a generated rclpy message class, e.g. ("sensor_msgs", "Image")."""
    module = getattr(msg_class, "__module__", "") or ""
    package, _, rest = module.partition(".")
    if not rest.startswith("msg") or not hasattr(msg_class, "get_fields_and_field_types"):
        raise TypeError(f"{msg_class!r} is not a generated ROS 2 message class")
    return package, msg_class.__name__


def _share_dirs(package: str) -> Iterator[Path]:
    """Candidate share/<package> folders: the ament index, then prefixes around the Python package."""
    try:
        from ament_index_python.packages import get_package_share_directory

        yield Path(get_package_share_directory(package))
    except Exception:  # noqa: BLE001 - no AMENT_PREFIX_PATH, or the package is not indexed
        pass
    try:
        module_file = importlib.import_module(package).__file__
    except ImportError:
        module_file = None
    if module_file:
        # <prefix>/lib/pythonX.Y/site-packages/<package>/__init__.py -> <prefix>/share/<package>
        for parent in Path(module_file).resolve().parents:
            yield parent / "share" / package
    yield Path(sys.prefix) / "share" / package


@functools.lru_cache(maxsize=None)
def _msg_file_text(package: str, name: str) -> str:
    tried = []
    for share in _share_dirs(package):
        path = share / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
        tried.append(str(path.parent))
    raise FileNotFoundError(f"cannot find {package}/msg/{name}.msg; looked in {', '.join(dict.fromkeys(tried))}")


def _nested_types(msg_class: type) -> list[tuple[str, str]]:
    """(package, Type) of every message type a class's fields use directly, in field order."""
    found = []
    for slot in getattr(msg_class, "SLOT_TYPES", ()):
        slot = getattr(slot, "value_type", slot)  # arrays and sequences of messages
        namespaces = getattr(slot, "namespaces", None)
        if namespaces:
            found.append((namespaces[0], slot.name))
    return found


def _import_message(package: str, name: str) -> type:
    return getattr(importlib.import_module(f"{package}.msg"), name)


@functools.lru_cache(maxsize=None)
def message_definition(msg_class: type) -> str:
    """The ROS 2 concatenated message definition (rosbag2's "ros2msg" schema) of a message class:
    the class's .msg text, then for each nested type, depth first and once each, a line of 80
    '=', a line `MSG: pkg/Type` and that type's .msg text."""
    package, name = message_type_name(msg_class)
    parts = [_msg_file_text(package, name).rstrip("\n")]
    seen = {(package, name)}

    def visit(cls: type) -> None:
        for dep in _nested_types(cls):
            if dep in seen:
                continue
            seen.add(dep)
            parts.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{_msg_file_text(*dep).rstrip(chr(10))}")
            visit(_import_message(*dep))

    visit(msg_class)
    return "\n".join(parts) + "\n"


# -- writing ------------------------------------------------------------------------------------
def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class McapEpisodeWriter:
    """Records one episode at a time into an MCAP file, written beside its final path and moved
    into place by `stop` (so a crash never leaves a half-written file under a *.mcap name).

    A writer can record several episodes in turn: start -> write... -> stop or discard -> start.
    Its methods may be called from several threads (e.g. a node's image and action callbacks).
    """

    def __init__(self, chunk_size: int = 4 * 1024 * 1024, compression: str = "zstd"):
        self.chunk_size = chunk_size
        self.compression = compression
        self._path: Path | None = None
        # Holds the open atomic_open() of the file being recorded: closing it commits the file.
        self._file: contextlib.ExitStack | None = None
        self._writer: Any = None
        self._instruction = ""
        self._metadata: dict[str, Any] = {}
        self._schemas: dict[type, int] = {}
        self._channels: dict[str, tuple[int, type]] = {}
        self._sequence: dict[str, int] = {}
        self._lock = threading.RLock()

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def path(self) -> Path | None:
        """Final path of the episode being recorded."""
        return self._path

    @_locked
    def start(self, path: str | os.PathLike, instruction: str, metadata: dict[str, Any] | None = None,
              overwrite: bool = False) -> None:
        from mcap.writer import CompressionType, Writer
        from rclpy.serialization import serialize_message  # noqa: F401 - fail early without rclpy

        if self.recording:
            raise RuntimeError(f"McapEpisodeWriter: already recording {self._path}; stop() or discard() it first")
        path = Path(path)
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"McapEpisodeWriter: instruction must be a non-empty string, got {instruction!r}")
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"McapEpisodeWriter: metadata must be JSON-serialisable: {exc}") from exc
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
        compression = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                       "none": CompressionType.NONE}[self.compression]
        file = contextlib.ExitStack()
        handle = file.enter_context(atomic_open(path, "wb"))
        try:
            writer = Writer(handle, chunk_size=self.chunk_size, compression=compression)
            writer.start(profile="ros2", library="gymnast_robot.mcap_episodes")
        except BaseException as exc:
            file.__exit__(type(exc), exc, exc.__traceback__)  # atomic_open deletes the temporary file
            raise
        self._path, self._file, self._writer = path, file, writer
        self._instruction, self._metadata = instruction, metadata
        self._schemas, self._channels, self._sequence = {}, {}, {}

    @_locked
    def write(self, topic: str, msg: Any, log_time_ns: int | None = None, publish_time_ns: int | None = None) -> None:
        """Serialise `msg` (an rclpy message) onto `topic`; log time defaults to now."""
        from rclpy.serialization import serialize_message

        if not self.recording:
            raise RuntimeError("McapEpisodeWriter: write() before start()")
        msg_class = type(msg)
        channel = self._channels.get(topic)
        if channel is None:
            schema_id = self._schemas.get(msg_class)
            if schema_id is None:
                package, name = message_type_name(msg_class)
                schema_id = self._writer.register_schema(
                    name=f"{package}/msg/{name}", encoding=SCHEMA_ENCODING,
                    data=message_definition(msg_class).encode())
                self._schemas[msg_class] = schema_id
            channel = (self._writer.register_channel(topic=topic, message_encoding=MESSAGE_ENCODING,
                                                     schema_id=schema_id), msg_class)
            self._channels[topic] = channel
            self._sequence[topic] = 0
        channel_id, channel_class = channel
        if msg_class is not channel_class:
            raise TypeError(f"McapEpisodeWriter: topic {topic} carries {channel_class.__name__}, "
                            f"got a {msg_class.__name__}")
        log_time = time.time_ns() if log_time_ns is None else int(log_time_ns)
        self._writer.add_message(channel_id=channel_id, log_time=log_time, data=serialize_message(msg),
                                 publish_time=log_time if publish_time_ns is None else int(publish_time_ns),
                                 sequence=self._sequence[topic])
        self._sequence[topic] += 1

    @_locked
    def stop(self, success: bool | None) -> Path:
        """Write the episode record, finish the file and move it to its final path."""
        if not self.recording:
            raise RuntimeError("McapEpisodeWriter: stop() before start()")
        if success is not None and not isinstance(success, (bool, np.bool_)):
            raise ValueError(f"McapEpisodeWriter: success must be True, False or None, got {success!r}")
        path = self._path
        try:
            self._writer.add_metadata(METADATA_RECORD, {
                "instruction": self._instruction,
                "success": "" if success is None else str(bool(success)).lower(),
                "metadata": json.dumps(self._metadata),
            })
            self._writer.finish()
            self._file.close()  # fsync and rename into place
        except BaseException:
            self.discard()
            raise
        self._reset()
        return path

    @_locked
    def discard(self) -> None:
        """Abandon the episode being recorded and delete its partial file (no-op when idle)."""
        if self._file is not None:
            abandon = RuntimeError("episode discarded")
            self._file.__exit__(RuntimeError, abandon, None)  # atomic_open deletes the temporary file
        self._reset()

    def _reset(self) -> None:
        self._path = self._file = self._writer = None
        self._instruction, self._metadata = "", {}
        self._schemas, self._channels, self._sequence = {}, {}, {}

    def __enter__(self) -> "McapEpisodeWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.discard()  # an episode not stopped explicitly is not kept

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.discard()


# -- reading ------------------------------------------------------------------------------------
def _mcap_call(path: Path, what: str, fn, *args, **kwargs):
    """Run an mcap call, turning whatever it raises on a bad file into McapEpisodeError."""
    try:
        return fn(*args, **kwargs)
    except McapEpisodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - mcap raises McapError, EndOfFile, struct.error, zstd errors...
        raise McapEpisodeError(f"{path}: unreadable MCAP file (not MCAP, truncated or corrupt; {what}: "
                               f"{type(exc).__name__}: {exc})") from exc


def _iter_decoded(path: Path, reader, image_topic: str | None, action_topic: str) -> Iterator[tuple[str, Any]]:
    """(topic, decoded message) in log-time order, wrapping whatever mcap raises."""
    topics = [action_topic] if image_topic is None else [image_topic, action_topic]
    iterator = _mcap_call(path, "reading messages", reader.iter_decoded_messages, topics=topics, log_time_order=True)
    while True:
        item = _mcap_call(path, "reading messages", next, iterator, None)
        if item is None:
            return
        schema, channel, _, decoded = item
        expected = _ACTION_SCHEMAS if channel.topic == action_topic else _IMAGE_SCHEMAS
        if schema is None or schema.name not in expected:
            raise McapEpisodeError(f"{path}: topic {channel.topic} has messages of type "
                                   f"{getattr(schema, 'name', None)!r}, expected {expected[0]}")
        yield channel.topic, decoded


@contextlib.contextmanager
def _open_reader(path: Path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    if not path.is_file():
        raise McapEpisodeError(f"{path}: no such file")
    with open(path, "rb") as handle:
        # A fresh DecoderFactory per file: it caches decoders by schema id, which differ per file.
        yield _mcap_call(path, "header", make_reader, handle, decoder_factories=[DecoderFactory()])


def _read_record(path: Path, reader) -> dict[str, Any]:
    records = [m for m in _mcap_call(path, "metadata", lambda: list(reader.iter_metadata()))
               if m.name == METADATA_RECORD]
    if not records:
        raise McapEpisodeError(f"{path}: no '{METADATA_RECORD}' metadata record (was the recording stopped "
                               "with McapEpisodeWriter.stop?)")
    record = dict(records[-1].metadata)
    instruction = record.get("instruction", "")
    if not instruction.strip():
        raise McapEpisodeError(f"{path}: the '{METADATA_RECORD}' record has no instruction")
    success_text = record.get("success", "")
    if success_text not in ("true", "false", ""):
        raise McapEpisodeError(f"{path}: the '{METADATA_RECORD}' record's success is {success_text!r}, "
                               "expected 'true', 'false' or ''")
    try:
        metadata = json.loads(record.get("metadata") or "{}")
    except json.JSONDecodeError as exc:
        raise McapEpisodeError(f"{path}: the '{METADATA_RECORD}' record's metadata is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise McapEpisodeError(f"{path}: the '{METADATA_RECORD}' record's metadata is not a JSON object")
    return {"instruction": instruction, "success": None if not success_text else success_text == "true",
            "metadata": metadata}


class _ActionChecker:
    """Turns decoded ActionChunks into [A] actions, requiring the same names, period and horizon 1."""

    def __init__(self, path: Path):
        self.path = path
        self.names: list[str] | None = None
        self.control_period: float | None = None
        self.count = 0

    def __call__(self, msg: Any) -> np.ndarray:
        index = self.count
        self.count += 1
        if self.names is None:
            self.names = [str(n) for n in msg.action_names]
            self.control_period = float(msg.control_period)
            if not self.names:
                raise McapEpisodeError(f"{self.path}: action {index} has no action_names")
        try:
            actions = msg_to_chunk(msg, self.names)
        except MessageError as exc:
            raise McapEpisodeError(f"{self.path}: action {index} is inconsistent with action 0: {exc}") from exc
        if actions.shape[0] != 1:
            raise McapEpisodeError(f"{self.path}: action {index} has horizon {actions.shape[0]}; executed actions "
                                   "are recorded one per message (horizon 1)")
        if not np.isclose(float(msg.control_period), self.control_period, rtol=1e-3):
            raise McapEpisodeError(f"{self.path}: action {index} has control_period {msg.control_period}, "
                                   f"action 0 has {self.control_period}")
        return actions[0]


def _to_array(path: Path, topic: str, msg: Any, index: int) -> np.ndarray:
    try:
        return image_to_array(msg)
    except (MessageError, AttributeError) as exc:
        raise McapEpisodeError(f"{path}: image {index} on {topic} is malformed: {exc}") from exc


def read_mcap_episode(path: str | os.PathLike, image_topic: str = IMAGE_TOPIC,
                      action_topic: str = ACTION_TOPIC) -> Episode:
    """An MCAP teleop recording as an Episode.

    Messages are taken in log-time order; each executed action is paired with the latest image
    logged before it (actions before the first image are dropped) and the final frame is the
    latest image of the recording (the last one at or after the last action, if any).
    """
    path = Path(path)
    with _open_reader(path) as reader:
        record = _read_record(path, reader)
        check = _ActionChecker(path)
        frames: list[np.ndarray] = []
        actions: list[np.ndarray] = []
        latest_msg: Any = None  # converted lazily: cameras usually run faster than the control loop
        latest: np.ndarray | None = None
        size: tuple[int, int] | None = None
        images = dropped = 0
        for topic, msg in _iter_decoded(path, reader, image_topic, action_topic):
            if topic == image_topic:
                this_size = (getattr(msg, "width", None), getattr(msg, "height", None))
                if size is None:
                    size = this_size
                elif this_size != size:
                    raise McapEpisodeError(f"{path}: image {images} on {image_topic} is {this_size[0]}x{this_size[1]}, "
                                           f"image 0 is {size[0]}x{size[1]}; all images must have one size")
                latest_msg, latest = (msg, images), None
                images += 1
                continue
            action = check(msg)
            if latest_msg is None:
                dropped += 1
                continue
            if latest is None:
                latest = _to_array(path, image_topic, *latest_msg)
            frames.append(latest)
            actions.append(action)
    if images == 0:
        raise McapEpisodeError(f"{path}: no images on {image_topic}")
    if check.count == 0:
        raise McapEpisodeError(f"{path}: no actions on {action_topic}")
    if not actions:
        raise McapEpisodeError(f"{path}: all {check.count} actions on {action_topic} come before the first image")
    frames.append(latest if latest is not None else _to_array(path, image_topic, *latest_msg))
    metadata = {"source": "teleop", **record["metadata"], "mcap": str(path), "action_names": check.names,
                "image_topic": image_topic, "action_topic": action_topic, "dropped_actions": dropped}
    if check.control_period and check.control_period > 0:
        metadata.setdefault("fps", 1.0 / check.control_period)
    try:
        return Episode(frames=np.stack(frames), actions=np.stack(actions).astype(np.float32),
                       instruction=record["instruction"], success=record["success"], metadata=metadata)
    except EpisodeError as exc:
        raise McapEpisodeError(f"{path}: {exc}") from exc


def _scan_actions(path: Path, action_topic: str) -> tuple[list[str], np.ndarray, float]:
    """Names, all actions [N, A] and control period of a recording, without decoding images."""
    with _open_reader(path) as reader:
        _read_record(path, reader)
        check = _ActionChecker(path)
        actions = [check(msg) for _, msg in _iter_decoded(path, reader, None, action_topic)]
    if not actions:
        raise McapEpisodeError(f"{path}: no actions on {action_topic}")
    return check.names, np.stack(actions), check.control_period


# -- conversion ---------------------------------------------------------------------------------
def find_mcap_files(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """*.mcap files given directly or found (recursively) in folders, sorted, hidden files skipped."""
    files: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files += sorted(p for p in item.rglob("*.mcap") if p.is_file() and not p.name.startswith("."))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    files = list(dict.fromkeys(p.resolve() for p in files))
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            raise McapEpisodeError(f"{p} and {by_stem[p.stem]} have the same name; episode keys are file stems")
        by_stem[p.stem] = p
    return files


def action_spec_for(names: list[str], actions: np.ndarray, control_hz: float) -> ActionSpec:
    """Bridge's ActionSpec for Bridge's action names, else one with the data's range as bounds."""
    if tuple(names) == BRIDGE_ACTION_SPEC.names:
        spec = BRIDGE_ACTION_SPEC
        return spec if np.isclose(spec.control_hz, control_hz) else replace(spec, control_hz=control_hz)
    low = actions.min(axis=0).astype(np.float64)
    high = actions.max(axis=0).astype(np.float64)
    pad = np.maximum(1e-3, 1e-3 * np.abs(low))
    flat = high <= low
    low, high = np.where(flat, low - pad, low), np.where(flat, high + pad, high)
    gripper = names.index("gripper") if "gripper" in names else None
    return ActionSpec(names=tuple(names), low=tuple(map(float, low)), high=tuple(map(float, high)),
                      gripper_index=gripper, control_hz=control_hz)


def convert_mcap(inputs: Iterable[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike,
                 image_size: int | None = None, image_topic: str = IMAGE_TOPIC,
                 action_topic: str = ACTION_TOPIC, progress: bool = True) -> EpisodeDataset:
    """Convert every MCAP recording in `inputs` (files or folders) into the dataset at `out`.

    Episodes are keyed by file stem; files already in the dataset are skipped, so a rerun only
    converts new recordings. A new dataset gets its ActionSpec from the recordings' action
    names (Bridge's spec for Bridge's names) and fps = 1 / control_period.
    """
    from tqdm import tqdm

    from gymnast_core.video import resize_frames

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = find_mcap_files(inputs)
    out = Path(out)
    existing = EpisodeDataset.open(out) if (out / "info.json").exists() else None
    pending = [p for p in files if existing is None or p.stem not in existing]
    if existing is not None and not pending:
        return existing
    if not files:
        raise McapEpisodeError(f"no .mcap files in {', '.join(map(str, inputs))}")

    if existing is None:
        # First pass over the actions only: the spec needs every episode's names and range.
        scans = {p: _scan_actions(p, action_topic) for p in pending}
        names, _, period = scans[pending[0]]
        for p, (other_names, _, other_period) in scans.items():
            if other_names != names:
                raise McapEpisodeError(f"{p}: action names {other_names} differ from {pending[0]}'s {names}")
            if not np.isclose(other_period, period, rtol=1e-3):
                raise McapEpisodeError(f"{p}: control period {other_period} s differs from {pending[0]}'s {period} s")
        if not period > 0:
            raise McapEpisodeError(f"{pending[0]}: control_period is {period}; cannot derive the dataset's fps")
        fps = 1.0 / period
        spec = action_spec_for(names, np.concatenate([a for _, a, _ in scans.values()]), fps)
    else:
        spec, fps = existing.action_spec, float(existing.info.get("fps") or existing.action_spec.control_hz)

    # The writer lock keeps a second conversion out; leaving the block computes the statistics.
    with EpisodeDataset.create(out, spec, fps=fps, image_size=image_size, source="teleop") as dataset:
        for path in tqdm(pending, desc=f"mcap -> {out.name}", unit="episode", disable=not progress):
            episode = read_mcap_episode(path, image_topic, action_topic)
            if episode.metadata["action_names"] != list(spec.names):
                raise McapEpisodeError(f"{path}: action names {episode.metadata['action_names']} differ from the "
                                       f"dataset's {list(spec.names)} ({out})")
            episode_fps = episode.metadata.get("fps")
            if episode_fps is not None and not np.isclose(episode_fps, fps, rtol=1e-3):
                raise McapEpisodeError(f"{path}: recorded at {episode_fps:.4g} Hz, the dataset {out} is {fps:.4g} Hz")
            if image_size:
                episode.frames = resize_frames(episode.frames, image_size)
            try:
                dataset.append(episode, key=path.stem)
            except (EpisodeError, DatasetError) as exc:
                raise McapEpisodeError(f"{path}: {exc}") from exc
    return dataset
