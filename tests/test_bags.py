"""Bags written by robot_app.bags: read back by an independent reader, storages, partials, images."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from episode_fixtures import synthetic_episode

from robot_app import bags
from robot_app.cli import main
from robot_app.spec import DEFAULT_SCALING, EPISODE_TOPICS, Topics


def _mcap_messages(bag: Path) -> list[tuple[str, int, object]]:
    """Decode with the `mcap` + `mcap_ros2` libraries, which share no code with rosbags."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (file,) = bag.glob("*.mcap")
    with file.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        return [
            (ch.topic, msg.log_time, dec)
            for _, ch, msg, dec in reader.iter_decoded_messages(log_time_order=True)
        ]


def test_episode_round_trip_through_independent_reader(tmp_path):
    episode = synthetic_episode(steps=6, success=True)
    bag = bags.write_episode(tmp_path / "ep", episode, start_ns=1_700_000_000_000_000_000)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert {name: topics[name]["topic_metadata"]["type"] for name in EPISODE_TOPICS} == EPISODE_TOPICS
    assert all(t["topic_metadata"]["type_description_hash"].startswith("RIHS01_") for t in topics.values())
    assert topics[Topics.IMAGE]["message_count"] == 7 and topics[Topics.CMD_EE_DELTA]["message_count"] == 6

    msgs = _mcap_messages(bag)
    by_topic: dict[str, list] = {}
    for topic, log_time, dec in msgs:
        stamp = getattr(dec, "header", None)
        if stamp is not None:  # header stamps are the bag timestamps
            assert stamp.stamp.sec * 1_000_000_000 + stamp.stamp.nanosec == log_time
        by_topic.setdefault(topic, []).append((log_time, dec))

    for t, (log_time, img) in enumerate(by_topic[Topics.IMAGE]):
        assert img.encoding == "rgb8" and (img.height, img.width, img.step) == (64, 64, 192)
        assert log_time == 1_700_000_000_000_000_000 + t * 100_000_000
        np.testing.assert_array_equal(
            np.frombuffer(bytes(img.data), np.uint8).reshape(64, 64, 3), episode.observations[t].image
        )
    for t, ((tw_time, tw), (g_time, grip)) in enumerate(
        zip(by_topic[Topics.CMD_EE_DELTA], by_topic[Topics.CMD_GRIPPER], strict=True)
    ):
        assert tw_time == g_time == by_topic[Topics.IMAGE][t][0] + bags.COMMAND_DELAY_NS
        lin = [tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z]
        action = DEFAULT_SCALING.from_command(lin, tw.twist.angular.z, grip.data)
        np.testing.assert_allclose(action, episode.actions[t], atol=1e-6)
    names = list(by_topic[Topics.JOINT_STATES][0][1].name)
    assert names[-2:] == ["panda_finger_joint1", "panda_finger_joint2"]
    ((_, success),) = by_topic[Topics.TASK_SUCCESS]
    assert success.data is True


def test_sqlite3_storage_reads_like_mcap(tmp_path):
    episode = synthetic_episode(steps=3)
    a = bags.write_episode(tmp_path / "a", episode, start_ns=10**18)
    b = bags.write_episode(tmp_path / "b", episode, start_ns=10**18, storage="sqlite3")
    assert list(b.glob("*.db3")) and not list(b.glob("*.mcap"))

    def summary(bag):
        out = []
        for topic, msgtype, stamp, msg in bags.read_bag(bag):
            data = bags.image_from_msg(msg).tobytes() if msgtype.endswith("Image") else repr(msg)
            out.append((topic, msgtype, stamp, data))
        return sorted(out, key=lambda m: (m[2], m[0]))

    assert summary(a) == summary(b)
    assert bags.BagReader(b).custom_data[bags.CUSTOM_TASK] == "play"


def test_writer_renames_only_when_complete(tmp_path):
    final = tmp_path / "ep"
    with bags.BagWriter(final) as writer:
        writer.write("chatter", "std_msgs/msg/Float64", 1, bags.float64_msg(1.0))
        assert not final.exists() and bags.partial_path(final).is_dir()
    assert (final / "metadata.yaml").is_file() and not bags.partial_path(final).exists()
    assert (final / "ep.mcap").is_file()  # the file carries the final name, not ".partial"

    with pytest.raises(RuntimeError), bags.BagWriter(tmp_path / "broken") as writer:
        writer.write("chatter", "std_msgs/msg/Float64", 1, bags.float64_msg(1.0))
        raise RuntimeError("collector crashed")
    assert not (tmp_path / "broken").exists() and bags.partial_path(tmp_path / "broken").is_dir()
    with pytest.raises(bags.BagError, match="unfinished bag"):
        bags.BagWriter(tmp_path / "broken")
    with pytest.raises(bags.BagError, match="already exists"):
        bags.BagWriter(final)


def test_killed_writer_keeps_flushed_messages(tmp_path):
    """A SIGKILLed writer leaves DIR.partial; recover_bag turns it into a bag with all flushed messages."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from robot_app import bags
        w = bags.BagWriter({str(tmp_path / "rec")!r})
        for i in range(30):
            w.write("cmd/gripper", "std_msgs/msg/Float64", 1000 + i, bags.float64_msg(i))
        w.flush()
        w.write("cmd/gripper", "std_msgs/msg/Float64", 5000, bags.float64_msg(-1))  # never flushed
        print("flushed", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "flushed"
    finally:
        proc.kill()
        proc.wait()
    partial = tmp_path / "rec.partial"
    with pytest.raises(bags.BagError, match="rec.partial"):
        list(bags.read_bag(partial))
    assert main(["dataset", "recover", str(partial)]) == 0  # robot_app.bags.recover_bag
    recovered = tmp_path / "rec"
    assert (recovered / "metadata.yaml").is_file() and not partial.exists()
    values = [(stamp, msg.data) for _, _, stamp, msg in bags.read_bag(recovered)]
    assert values == [(1000 + i, float(i)) for i in range(30)]


def _image(encoding: str, pixels: np.ndarray, step: int | None = None):
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    step = step or row.shape[1]
    data = np.zeros((h, step), np.uint8)
    data[:, : row.shape[1]] = row
    msg = bags.image_msg(np.zeros((h, w, 3), np.uint8), 0)
    msg.encoding, msg.step, msg.data = encoding, step, data.reshape(-1)
    return msg


def test_image_encodings_convert_soundly_or_are_refused():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    alpha = np.full((5, 7, 1), 9, np.uint8)
    np.testing.assert_array_equal(
        bags.image_from_msg(_image("rgb8", rgb, step=7 * 3 + 3)), rgb
    )  # padded rows
    np.testing.assert_array_equal(bags.image_from_msg(_image("bgr8", rgb[:, :, ::-1])), rgb)
    np.testing.assert_array_equal(bags.image_from_msg(_image("rgba8", np.concatenate([rgb, alpha], -1))), rgb)
    np.testing.assert_array_equal(
        bags.image_from_msg(_image("bgra8", np.concatenate([rgb[:, :, ::-1], alpha], -1))), rgb
    )
    with pytest.raises(ValueError, match="mono16"):
        bags.image_from_msg(_image("mono16", rgb[:, :, :2]))
    short = _image("rgb8", rgb)
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="do not fit"):
        bags.image_from_msg(short)


def test_fit_image_crops_to_square_then_resizes():
    wide = np.zeros((100, 160, 3), np.uint8)
    wide[:, 30:130] = 200  # the centre square is bright, the side bands dark
    out = bags.fit_image(wide, 64)
    assert out.shape == (64, 64, 3) and out.min() == 200


def test_unreadable_bags_raise_bag_error_naming_the_bag(tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "metadata.yaml").write_text("{{{ not yaml")
    with pytest.raises(bags.BagError, match="garbage"):
        bags.BagReader(tmp_path / "garbage")
    with pytest.raises(bags.BagError, match="does not exist"):
        bags.BagReader(tmp_path / "nothing")
    found, skipped = bags.find_bags([tmp_path, tmp_path / "nothing"])
    assert found == [tmp_path / "garbage"]
    assert skipped == [{"bag": str(tmp_path / "nothing"), "error": "does not exist"}]
