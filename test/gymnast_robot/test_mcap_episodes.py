"""MCAP teleop episodes: writing with ROS 2 schemas, reading back as Episodes, dataset conversion."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mcap")
pytest.importorskip("mcap_ros2")
pytest.importorskip("rclpy")

from gymnast_core.action_spec import BRIDGE_ACTION_SPEC  # noqa: E402
from gymnast_core.dataset import EpisodeDataset  # noqa: E402
from gymnast_core.ros_msgs import array_to_image, chunk_to_msg  # noqa: E402
from gymnast_robot.mcap_episodes import (  # noqa: E402
    ACTION_TOPIC,
    IMAGE_TOPIC,
    McapEpisodeError,
    McapEpisodeWriter,
    convert_mcap,
    read_mcap_episode,
)

NAMES = list(BRIDGE_ACTION_SPEC.names)
H, W = 12, 16
T0 = 1_700_000_000_000_000_000


def _frame(i: int, size=(H, W)) -> np.ndarray:
    frame = np.zeros((*size, 3), np.uint8)
    frame[..., 0] = 10 * i
    frame[0, 0] = (i, 255 - i, 7)
    return frame


def _actions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.04, 0.04, (n, len(NAMES))).astype(np.float32)
    actions[:, -1] = rng.integers(0, 2, n)
    return actions


def _record(path, n_actions=4, instruction="put the spoon in the pot", success=True, metadata=None,
            images=True, leading_actions=0, seed=0, image_sizes=None):
    """image 0, action 0, image 1, ..., action n-1, image n: n+1 images around n actions."""
    actions = _actions(n_actions + leading_actions, seed)
    writer = McapEpisodeWriter()
    writer.start(path, instruction, metadata or {"task": "spoon", "operator": "test"})
    t = T0
    for k in range(leading_actions):
        writer.write(ACTION_TOPIC, chunk_to_msg(actions[k], NAMES, 0.2), t)
        t += 10
    for i in range(n_actions + 1):
        if images:
            size = image_sizes[i] if image_sizes else (H, W)
            writer.write(IMAGE_TOPIC, array_to_image(_frame(i, size)), t)
        t += 100
        if i < n_actions:
            writer.write(ACTION_TOPIC, chunk_to_msg(actions[leading_actions + i], NAMES, 0.2), t)
            t += 100
    return writer.stop(success=success), actions[leading_actions:]


def test_round_trip(tmp_path):
    path, actions = _record(tmp_path / "ep0.mcap")
    assert path == tmp_path / "ep0.mcap" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["ep0.mcap"]  # no temp file left behind
    episode = read_mcap_episode(path)
    assert episode.frames.shape == (5, H, W, 3)
    for i in range(5):
        np.testing.assert_array_equal(episode.frames[i], _frame(i))
    np.testing.assert_array_equal(episode.actions, actions)
    assert episode.instruction == "put the spoon in the pot"
    assert episode.success is True
    assert episode.metadata["source"] == "teleop"
    assert episode.metadata["task"] == "spoon" and episode.metadata["operator"] == "test"
    assert episode.metadata["mcap"] == str(path)
    assert episode.metadata["fps"] == pytest.approx(5.0)


def test_pairs_actions_with_latest_image_and_drops_leading_actions(tmp_path):
    path, actions = _record(tmp_path / "ep.mcap", n_actions=3, leading_actions=2, success=False)
    episode = read_mcap_episode(path)
    assert episode.num_steps == 3 and episode.success is False
    np.testing.assert_array_equal(episode.actions, actions)
    assert episode.metadata["dropped_actions"] == 2


def test_schema_is_the_full_ros2_definition(tmp_path):
    from mcap.reader import make_reader

    path, _ = _record(tmp_path / "ep.mcap", n_actions=1)
    with open(path, "rb") as handle:
        reader = make_reader(handle)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2"
    schemas = {s.name: s for s in summary.schemas.values()}
    assert set(schemas) == {"sensor_msgs/msg/Image", "gymnast_interfaces/msg/ActionChunk"}
    channels = {c.topic: c for c in summary.channels.values()}
    assert channels[IMAGE_TOPIC].message_encoding == "cdr"
    for schema in schemas.values():
        text = schema.data.decode()
        assert schema.encoding == "ros2msg"
        assert "=" * 80 + "\nMSG: std_msgs/Header\n" in text
        assert "=" * 80 + "\nMSG: builtin_interfaces/Time\n" in text
    assert schemas["gymnast_interfaces/msg/ActionChunk"].data.decode().startswith("# A chunk of K")


def test_writer_state_errors_and_discard(tmp_path):
    writer = McapEpisodeWriter()
    with pytest.raises(RuntimeError, match="before start"):
        writer.write(IMAGE_TOPIC, array_to_image(_frame(0)), T0)
    with pytest.raises(RuntimeError, match="before start"):
        writer.stop(success=True)
    writer.start(tmp_path / "ep.mcap", "wipe the table")
    with pytest.raises(RuntimeError, match="already recording"):
        writer.start(tmp_path / "other.mcap", "wipe the table")
    writer.write(IMAGE_TOPIC, array_to_image(_frame(0)), T0)
    writer.discard()
    assert list(tmp_path.iterdir()) == []
    # The writer is reusable after discard, and does not clobber existing episodes.
    path, _ = _record(tmp_path / "ep.mcap", n_actions=1)
    with pytest.raises(FileExistsError):
        writer.start(path, "wipe the table")


def test_convert_two_files_and_rerun(tmp_path):
    recordings = tmp_path / "recordings"
    _record(recordings / "a.mcap", n_actions=4, seed=1)
    _record(recordings / "b.mcap", n_actions=3, seed=2, success=False)
    out = tmp_path / "dataset"
    dataset = convert_mcap([recordings], out, image_size=8, progress=False)
    assert len(dataset) == 2

    reopened = EpisodeDataset.open(out)
    assert [e.key for e in reopened.entries] == ["a", "b"]
    assert reopened.action_spec.names == BRIDGE_ACTION_SPEC.names
    assert reopened.info["fps"] == pytest.approx(5.0)
    episodes = list(reopened)
    assert [e.num_steps for e in episodes] == [4, 3]
    assert episodes[0].frames.shape == (5, 8, 8, 3)
    assert [e.success for e in episodes] == [True, False]
    assert all(e.metadata["source"] == "teleop" for e in episodes)

    index = (out / "index.json").read_text()
    again = convert_mcap([recordings / "a.mcap", recordings], out, image_size=8, progress=False)
    assert len(again) == 2 and (out / "index.json").read_text() == index


def test_convert_custom_action_names(tmp_path):
    writer = McapEpisodeWriter()
    writer.start(tmp_path / "in" / "ep.mcap", "wave")
    for i in range(3):
        writer.write(IMAGE_TOPIC, array_to_image(_frame(i)), T0 + 2 * i)
        if i < 2:
            writer.write(ACTION_TOPIC, chunk_to_msg(np.array([0.1 * i, 0.5]), ["a", "b"], 0.1), T0 + 2 * i + 1)
    writer.stop(success=None)
    dataset = convert_mcap(tmp_path / "in", tmp_path / "out", progress=False)
    spec = dataset.action_spec
    assert spec.names == ("a", "b") and dataset.info["fps"] == pytest.approx(10.0)
    assert spec.low[0] == pytest.approx(0.0) and spec.high[0] == pytest.approx(0.1)
    assert spec.low[1] < 0.5 < spec.high[1]  # a constant dimension gets a non-empty range
    assert dataset[0].success is None


def test_corrupt_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(McapEpisodeError, match="junk.mcap"):
        read_mcap_episode(junk)

    path, _ = _record(tmp_path / "real.mcap")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(McapEpisodeError, match="truncated.mcap"):
        read_mcap_episode(truncated)

    with pytest.raises(McapEpisodeError, match="truncated.mcap"):
        convert_mcap([truncated], tmp_path / "dataset", progress=False)


def test_malformed_episodes_give_clear_errors(tmp_path):
    no_actions, _ = _record(tmp_path / "no_actions.mcap", n_actions=0)
    with pytest.raises(McapEpisodeError, match="no_actions.mcap: no actions on /wx250s"):
        read_mcap_episode(no_actions)

    no_images, _ = _record(tmp_path / "no_images.mcap", images=False)
    with pytest.raises(McapEpisodeError, match="no_images.mcap: no images"):
        read_mcap_episode(no_images)

    sizes = [(H, W)] * 3 + [(H + 2, W)] * 2
    mixed, _ = _record(tmp_path / "mixed.mcap", image_sizes=sizes)
    with pytest.raises(McapEpisodeError, match="mixed.mcap: image 3 .* all images must have one size"):
        read_mcap_episode(mixed)

    writer = McapEpisodeWriter()
    writer.start(tmp_path / "names.mcap", "wave")
    writer.write(IMAGE_TOPIC, array_to_image(_frame(0)), T0)
    writer.write(ACTION_TOPIC, chunk_to_msg(np.zeros(2), ["a", "b"], 0.2), T0 + 1)
    writer.write(ACTION_TOPIC, chunk_to_msg(np.zeros(2), ["a", "c"], 0.2), T0 + 2)
    names = writer.stop(success=True)
    with pytest.raises(McapEpisodeError, match="names.mcap: action 1 is inconsistent"):
        read_mcap_episode(names)

    from mcap.writer import Writer

    bare = tmp_path / "bare.mcap"
    with open(bare, "wb") as handle:
        raw = Writer(handle)
        raw.start(profile="ros2")
        raw.finish()
    with pytest.raises(McapEpisodeError, match="bare.mcap: no 'gymnast_episode' metadata record"):
        read_mcap_episode(bare)
