"""dataset build: alignment, storages, topic names, and every kind of bad bag skipped by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from episode_fixtures import synthetic_episode

from robot_app import bags
from robot_app.cli import main
from robot_app.dataset_build import build_dataset, episode_from_bag, parse_topic_map
from robot_app.spec import EPISODE_TOPICS, Topics, gripper_state_from_fingers
from robot_app.store import Store
from robot_app.video import LABEL_COLOURS

MS = 1_000_000


def _check_matches_episode(ep: dict, episode) -> None:
    steps = len(episode.actions)
    assert len(ep["images"]) == steps + 1
    np.testing.assert_allclose(ep["actions"][:steps], episode.actions, atol=1e-5)
    np.testing.assert_allclose(
        ep["actions"][steps], episode.actions[-1], atol=1e-5
    )  # last command stays in force
    for t, obs in enumerate(episode.observations):
        np.testing.assert_array_equal(ep["images"][t], obs.image)
        assert ep["gripper"][t] == pytest.approx(
            gripper_state_from_fingers(obs.joint_positions[-2:]), abs=1e-6
        )
    np.testing.assert_allclose(np.diff(ep["timestamps"]), 0.1, atol=1e-6)


def test_store_from_mcap_and_sqlite3_bags(tmp_path, capsys):
    episodes = [synthetic_episode(steps=5, seed=0, success=True), synthetic_episode(steps=7, seed=1)]
    bags.write_episode(tmp_path / "bags" / "a", episodes[0])
    bags.write_episode(tmp_path / "bags" / "b", episodes[1], storage="sqlite3")
    summary = build_dataset([tmp_path / "bags"], tmp_path / "store", progress=False)
    assert summary["skipped"] == [] and summary["num_episodes"] == 2 and summary["num_steps"] == 6 + 8

    store = Store.open(tmp_path / "store")
    for index, episode in enumerate(episodes):
        start, end = store.episode_bounds()[index]
        ep = {
            k: np.asarray(getattr(store, k)[start:end])
            for k in ("images", "actions", "gripper", "timestamps")
        }
        _check_matches_episode(ep, episode)
    np.testing.assert_array_equal(store.episode_success()[0], 1.0)
    assert np.isnan(store.episode_success()[1])
    records = store.manifest["episodes"]
    assert [r["task"] for r in records] == ["grasp-heldout", "play"]
    assert all(len(r["sha256"]) == 64 for r in records) and records[0]["sha256"] != records[1]["sha256"]

    capsys.readouterr()
    assert main(["dataset", "info", str(tmp_path / "store")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["episodes"], info["steps"], info["labelled_episodes"], info["successes"]) == (2, 14, 1, 1)

    build_dataset(
        [tmp_path / "bags" / "b", tmp_path / "bags" / "a"], tmp_path / "store2", workers=2, progress=False
    )
    parallel = Store.open(tmp_path / "store2")
    for key in ("images", "actions", "gripper", "episode", "timestamps"):
        np.testing.assert_array_equal(getattr(parallel, key), getattr(store, key))
    assert parallel.manifest_hash() == store.manifest_hash()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags", "store", "store2"]  # no temporaries left


def _write_custom_bag(path, topics: dict[str, str], frames, encoding="rgb8", size=64, twists=(), grips=(),
                      fingers=("panda_finger_joint1", "panda_finger_joint2")):
    """A bag as another recorder might write it: chosen topic names, frame times, command times,
    gripper joints (each at 0.01 t at frame t)."""
    rng = np.random.default_rng(0)
    with bags.BagWriter(path) as w:
        for t, stamp in enumerate(frames):
            image = bags.image_msg(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), stamp)
            if encoding != "rgb8":
                image.encoding = encoding
            w.write(topics["image"], EPISODE_TOPICS[Topics.IMAGE], stamp, image)
            js = bags.joint_state_msg(list(fingers), [0.01 * t] * len(fingers), [0] * len(fingers), stamp)
            w.write(topics["joint_states"], EPISODE_TOPICS[Topics.JOINT_STATES], stamp, js)
        for stamp, (vx, wz) in twists:
            w.write(
                topics["ee_delta"],
                EPISODE_TOPICS[Topics.CMD_EE_DELTA],
                stamp,
                bags.twist_msg([vx, 0, 0], wz, stamp),
            )
        for stamp, grip in grips:
            w.write(topics["gripper"], EPISODE_TOPICS[Topics.CMD_GRIPPER], stamp, bags.float64_msg(grip))
    return path


ABSOLUTE = {
    "image": "/camera/image_raw",
    "joint_states": "/joint_states",
    "ee_delta": "/cmd/ee_delta",
    "gripper": "/cmd/gripper",
}


def test_alignment_takes_last_command_before_next_frame_with_absolute_names(tmp_path):
    frames = [0, 100 * MS, 200 * MS, 300 * MS]
    twists = [(150 * MS, (0.1, 0.0)), (160 * MS, (0.2, 0.5)), (250 * MS, (-0.2, -1.0))]
    grips = [(40 * MS, 1.0)]
    bag = _write_custom_bag(tmp_path / "abs", ABSOLUTE, frames, twists=twists, grips=grips)
    ep = episode_from_bag(bag)
    # frame 0: no twist before frame 1 -> 0; the grip at 40 ms -> closed (+1) from then on
    np.testing.assert_allclose(ep["actions"][:, 0], [0.0, 1.0, -1.0, -1.0])  # 0.2 m/s is full scale
    np.testing.assert_allclose(ep["actions"][:, 3], [0.0, 0.5, -1.0, -1.0])
    np.testing.assert_allclose(ep["actions"][:, 4], [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(ep["gripper"], [1.0, 0.75, 0.5, 0.25])
    assert ep["success"] is None and ep["task"] is None


def test_remapped_topics_from_the_command_line(tmp_path):
    topics = {**ABSOLUTE, "image": "/wrist/image_raw"}
    _write_custom_bag(
        tmp_path / "bags" / "wrist", topics, [0, 100 * MS], twists=[(5 * MS, (0.2, 0))], grips=[(5 * MS, 0)]
    )
    out = tmp_path / "store"
    assert main(["dataset", "build", str(tmp_path / "bags"), "-o", str(out)]) == 1  # camera/image_raw missing
    assert not out.exists()
    assert (
        main(["dataset", "build", str(tmp_path / "bags"), "-o", str(out), "--topic", "image=wrist/image_raw"])
        == 0
    )
    assert Store.open(out).actions[0].tolist() == [1.0, 0.0, 0.0, 0.0, -1.0]
    namespaced = {role: "/robot1" + name for role, name in ABSOLUTE.items()}
    bag = _write_custom_bag(
        tmp_path / "ns", namespaced, [0, 100 * MS], twists=[(5 * MS, (0.2, 0))], grips=[(5 * MS, 0)]
    )
    assert episode_from_bag(bag)["actions"][0].tolist() == [1.0, 0.0, 0.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="unknown role 'camera'"):
        parse_topic_map(["camera=/x"])
    # An optional role named on the command line must be there: a typo is not an unlabelled episode.
    assert episode_from_bag(bag)["success"] is None
    with pytest.raises(bags.BagError, match="missing topic '/robot1/task/sucess' \\(success\\)"):
        episode_from_bag(bag, topic_map=parse_topic_map(["success=/robot1/task/sucess"]))


def test_bad_bags_are_skipped_by_name_and_the_rest_builds(tmp_path, capsys):
    root = tmp_path / "bags"
    frames = [0, 100 * MS, 200 * MS]
    cmds = {"twists": [(5 * MS, (0.1, 0))], "grips": [(5 * MS, 0.5)]}
    good = bags.write_episode(root / "good", synthetic_episode(steps=4))
    big = _write_custom_bag(root / "big128", ABSOLUTE, frames, size=128, **cmds)  # sound: resized to 64
    truncated = bags.write_episode(root / "truncated", synthetic_episode(steps=4, seed=3))
    (mcap,) = truncated.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    garbage = bags.write_episode(root / "garbage_meta", synthetic_episode(steps=2, seed=4))
    (garbage / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    mono = _write_custom_bag(root / "mono16", ABSOLUTE, frames, encoding="mono16", **cmds)
    missing = _write_custom_bag(root / "no_gripper", {**ABSOLUTE, "gripper": "/other"}, frames, **cmds)
    with bags.BagWriter(root / "empty"):
        pass
    partial = bags.partial_path(root / "unfinished")
    partial.mkdir()

    out = tmp_path / "store"
    assert main(["dataset", "build", str(root), "-o", str(out)]) == 0
    reasons = {
        item["bag"]: item["error"] for item in json.loads((out / "manifest.json").read_text())["skipped"]
    }
    expected = {
        truncated: "truncated",
        garbage: "cannot open",
        mono: "mono16",
        missing: "missing topic 'cmd/gripper'",
        root / "empty": "empty bag",
        partial: "unfinished",
    }
    assert set(reasons) == {str(p) for p in expected}
    for bag, words in expected.items():
        assert words in reasons[str(bag)]
    err = capsys.readouterr().err
    assert all(f"skipped {bag}" in err for bag in expected)
    store = Store.open(out)
    assert [r["source"] for r in store.manifest["episodes"]] == [str(big), str(good)]
    assert store.images.shape[1:] == (64, 64, 3) and len(store) == 3 + 5


def test_the_store_keeps_each_frames_end_effector_position_and_a_height_input_needs_it(tmp_path):
    """ee_pose travels into the store frame by frame; a store built without it refuses a height-input sampler by name."""
    from training.sampler import GoalSampler, SamplerConfig

    episode = synthetic_episode(steps=6, seed=3)
    bags.write_episode(tmp_path / "bags" / "a", episode)
    build_dataset([tmp_path / "bags"], tmp_path / "store", progress=False)
    store = Store.open(tmp_path / "store")
    want = np.array([obs.ee_position for obs in episode.observations], np.float32)
    np.testing.assert_allclose(store.ee_position, want, atol=1e-6)
    assert store.has_ee_height
    proprio = store.proprio(np.array([0, 4]), height_input=True)
    np.testing.assert_allclose(proprio[:, 1], want[[0, 4], 2] / 0.25, atol=1e-6)
    np.testing.assert_allclose(proprio[:, 0], store.gripper[[0, 4]])
    batch = GoalSampler(store, SamplerConfig(p_chain=0.0), seed=0, height_input=True).sample(8)
    assert batch.gripper.shape == (8, 2) and batch.next_gripper.shape == (8, 2)
    np.testing.assert_allclose(batch.next_gripper[:, 1], want[batch.t + 1, 2] / 0.25, atol=1e-6)

    # Another recorder's bag without ee_pose still builds; only the height input needs positions.
    _write_custom_bag(tmp_path / "other" / "b", ABSOLUTE, [0, 100 * MS, 200 * MS], twists=[(5 * MS, (0.2, 0))], grips=[(5 * MS, 0)])
    build_dataset([tmp_path / "other"], tmp_path / "no_pose", progress=False)
    bare = Store.open(tmp_path / "no_pose")
    assert bare.ee_position is None and not bare.has_ee_height
    assert GoalSampler(bare, SamplerConfig(p_chain=0.0), seed=0).sample(2).gripper.shape == (2, 1)
    with pytest.raises(ValueError, match="no ee_position.*dataset build"):
        GoalSampler(bare, SamplerConfig(p_chain=0.0), seed=0, height_input=True)


def test_dataset_view_writes_episodes_as_videos_and_refuses_a_missing_one(tmp_path, capsys):
    import cv2

    episodes = [synthetic_episode(steps=5, seed=0), synthetic_episode(steps=7, seed=1, success=True),
                synthetic_episode(steps=4, seed=2, success=False), synthetic_episode(steps=6, seed=3, success=True)]
    for i, episode in enumerate(episodes):
        bags.write_episode(tmp_path / "bags" / f"e{i}", episode)
    build_dataset([tmp_path / "bags"], tmp_path / "store", progress=False)
    store = Store.open(tmp_path / "store")
    out = tmp_path / "videos"
    assert main(["dataset", "view", str(tmp_path / "store"), "-o", str(out)]) == 0  # the first, a success, a failure
    assert sorted(p.name for p in out.iterdir()) == ["episode_00000.webm", "episode_00001.webm", "episode_00002.webm",
                                                     "episodes.png"]
    sheet = cv2.imread(str(out / "episodes.png"))[:, :, ::-1]  # the store at a glance: one tile per episode, 6 a row
    tile_w = sheet.shape[1] // 6
    assert sheet.shape[1] == 6 * tile_w and sheet.shape[0] < 2 * tile_w  # one row: 4 tiles and 2 blank
    captions = [sheet[-24:, i * tile_w:(i + 1) * tile_w].reshape(-1, 3).astype(int) for i in range(6)]

    def has(caption, colour):
        return bool((np.abs(caption - colour).sum(axis=1) < 60).any())

    green, red = LABEL_COLOURS[True], LABEL_COLOURS[False]
    assert [(has(c, green), has(c, red)) for c in captions] == [(False, False), (True, False), (False, True),
                                                                (True, False), (False, False), (False, False)]

    frames = []
    video = cv2.VideoCapture(str(out / "episode_00001.webm"))
    while (read := video.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    start, end = store.episode_bounds()[1]
    assert len(frames) == end - start + 10  # every logged frame, then the last held a second
    size = 4 * store.image_size  # a frame, enlarged, beside the episode's last frame
    for t in (0, end - start - 1):
        shown = frames[t][:size, :size].astype(int)
        expected = cv2.resize(np.asarray(store.images[start + t]), (size, size), interpolation=cv2.INTER_NEAREST)
        assert np.abs(shown - expected).mean() < 12  # through a lossy codec
    assert not np.array_equal(store.images[start], store.images[end - 1])

    capsys.readouterr()
    assert main(["dataset", "view", str(tmp_path / "store"), "--episode", "4", "-o", str(out)]) == 1
    assert "no episode 4; it holds episodes 0..3" in capsys.readouterr().err

    # Bags before building: a corrupt one is named, the others are still written.
    (tmp_path / "bags" / "broken").mkdir()
    (tmp_path / "bags" / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    bag_out = tmp_path / "bag_videos"
    sources = [str(tmp_path / "bags" / name) for name in ("e1", "broken", "e2")]
    assert main(["dataset", "view", *sources, "-o", str(bag_out)]) == 1
    assert "broken" in capsys.readouterr().err
    assert sorted(p.name for p in bag_out.iterdir()) == ["e1.webm", "e2.webm"]
    from_bag = cv2.VideoCapture(str(bag_out / "e1.webm"))
    assert sum(1 for _ in iter(lambda: from_bag.read()[0], False)) == len(frames)  # the store's episode 1
    assert main(["dataset", "view", sources[0], "--episode", "1", "-o", str(bag_out)]) == 2
    assert "--episode picks a store's episodes" in capsys.readouterr().err


def test_the_store_hash_is_its_content_not_the_path_the_bags_were_named_by(tmp_path, monkeypatch):
    for i in range(2):
        bags.write_episode(tmp_path / "bags" / f"e{i}", synthetic_episode(steps=4, seed=i))
    monkeypatch.chdir(tmp_path)
    build_dataset(["bags"], tmp_path / "relative", progress=False)
    build_dataset([tmp_path / "bags"], tmp_path / "absolute", progress=False)
    build_dataset([tmp_path / "bags"], tmp_path / "large", image_size=128, progress=False)
    build_dataset([tmp_path / "bags" / "e0"], tmp_path / "one", progress=False)
    hashes = {name: Store.open(tmp_path / name).manifest_hash() for name in ("relative", "absolute", "large", "one")}
    assert hashes["relative"] == hashes["absolute"]  # a resume may name the data either way
    assert len({hashes["absolute"], hashes["large"], hashes["one"]}) == 3


def test_a_store_whose_arrays_its_manifest_does_not_describe_is_refused(tmp_path):
    bags.write_episode(tmp_path / "bags" / "a", synthetic_episode(steps=4, seed=0))
    bags.write_episode(tmp_path / "bags" / "b", synthetic_episode(steps=6, seed=1))
    build_dataset([tmp_path / "bags"], tmp_path / "store", progress=False)
    build_dataset([tmp_path / "bags" / "a"], tmp_path / "small", progress=False)
    (tmp_path / "store" / "manifest.json").write_bytes((tmp_path / "small" / "manifest.json").read_bytes())
    with pytest.raises(ValueError, match="manifest.json counts 5 steps, the arrays hold 12; .* rebuild it"):
        Store.open(tmp_path / "store")


def test_another_grippers_joints_give_the_gripper_state(tmp_path, capsys):
    """A Robotiq-like driver: one `finger_joint`, 0 rad open .. 0.8 closed. Without saying so
    the bag is refused by name; with --gripper-* its state is mapped and recorded."""
    _write_custom_bag(tmp_path / "bags" / "robotiq", ABSOLUTE, [0, 100 * MS, 200 * MS, 300 * MS],
                      twists=[(5 * MS, (0.2, 0))], grips=[(5 * MS, 1)], fingers=("finger_joint",))
    out = tmp_path / "store"
    assert main(["dataset", "build", str(tmp_path / "bags"), "-o", str(out)]) == 1
    assert "lacks the gripper joints ['panda_finger_joint1', 'panda_finger_joint2']" in capsys.readouterr().err
    assert main(["dataset", "build", str(tmp_path / "bags"), "-o", str(out), "--gripper-joints", "finger_joint",
                 "--gripper-open", "0", "--gripper-closed", "0.04"]) == 0
    store = Store.open(out)
    np.testing.assert_allclose(store.gripper, [0.0, 0.25, 0.5, 0.75], atol=1e-6)  # 0.01 t of 0.04
    assert store.manifest["gripper_joints"] == {"names": ["finger_joint"], "open_sum": 0.0, "closed_sum": 0.04}
    assert main(["dataset", "build", str(tmp_path / "bags"), "-o", str(out), "--gripper-open", "0.1",
                 "--gripper-closed", "0.1"]) == 2
    assert "must be finite and differ" in capsys.readouterr().err


def test_commands_faster_than_the_action_range_are_reported_not_silently_clipped(tmp_path, capsys):
    frames = [0, 100 * MS, 200 * MS]
    _write_custom_bag(tmp_path / "bags" / "fast", ABSOLUTE, frames, twists=[(5 * MS, (0.3, 0)), (105 * MS, (0.1, 0))],
                      grips=[(5 * MS, 0)])
    _write_custom_bag(tmp_path / "bags" / "slow", ABSOLUTE, frames, twists=[(5 * MS, (0.2, 1.0))], grips=[(5 * MS, 0)])
    assert main(["dataset", "build", str(tmp_path / "bags"), "-o", str(tmp_path / "store")]) == 0
    err = capsys.readouterr().err
    assert "fast: 1 of 2 velocity commands were faster than the action range (0.2 m/s, 1 rad/s)" in err
    assert "slow" not in err  # at the top speed is not beyond it
    store = Store.open(tmp_path / "store")
    assert [(c["bag"].endswith("fast"), c["clipped"], c["commands"]) for c in store.manifest["clipped"]] == [(True, 1, 2)]
    assert store.actions[0, 0] == 1.0  # what the learner sees: the top speed


def test_steps_before_the_first_grip_command_take_the_measured_grip(tmp_path):
    """A grip target holds until the next one: before a bag's first cmd/gripper the command in
    force shows only in the fingers (closed above spec.GRIPPER_CLOSED_ABOVE), never as 0 (half)."""
    frames = [t * 100 * MS for t in range(6)]  # measured state 1.0, 0.75, 0.5, 0.25, 0.0, 0.0 (clipped)
    twists = [(t * 100 * MS + 5 * MS, (0.1, 0.0)) for t in range(6)]
    bag = _write_custom_bag(tmp_path / "bags" / "late_grip", ABSOLUTE, frames, twists=twists, grips=[(450 * MS, 0.0)])
    ep = episode_from_bag(bag)
    np.testing.assert_allclose(ep["actions"][:, 4], [1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    assert ep["grip_from_state"] == 4  # frames 0-3: nothing before their next frame; frame 4's next is at 500 ms
    summary = build_dataset(tmp_path / "bags", tmp_path / "store", progress=False)
    assert summary["grip_from_state"] == [{"bag": str(bag), "steps": 4, "of": 6}]
    store = Store.open(tmp_path / "store")
    assert store.gripper_is_binary and store.manifest["grip_from_state"] == summary["grip_from_state"]


def _play_episode(length: int, lift_at: int | None, rng) -> dict:
    """A play episode whose hand holds an object (gripper 0.35) from lift_at - 2 on and is 15 cm up
    from lift_at on; lift_at None: the hand stays open at the table."""
    gripper = np.zeros(length, np.float32)
    ee = np.tile(np.array([0.5, 0.0, 0.03], np.float32), (length, 1))
    if lift_at is not None:
        gripper[max(lift_at - 2, 0):] = 0.35
        ee[lift_at:, 2] = 0.15
    return {"images": rng.integers(0, 255, (length, 8, 8, 3), dtype=np.uint8),
            "actions": rng.uniform(-1, 1, (length, 5)).astype(np.float32), "gripper": gripper,
            "timestamps": np.arange(length) * 0.1, "ee_position": ee}


def test_dataset_lifts_keeps_the_lifting_episodes_up_to_their_first_lift(tmp_path, capsys):
    from robot_app.lift_segments import FRAMES_AFTER_LIFT
    from robot_app.store import write_store

    rng = np.random.default_rng(0)
    episodes = [_play_episode(12, None, rng), _play_episode(12, 5, rng), _play_episode(12, 11, rng), _play_episode(10, 2, rng)]
    write_store(tmp_path / "play", episodes)
    assert main(["dataset", "lifts", str(tmp_path / "play"), "-o", str(tmp_path / "lifts")]) == 0
    assert "3 of 4 episodes lift something" in capsys.readouterr().out
    lifts = Store.open(tmp_path / "lifts")
    lengths = [int(b - a) for a, b in lifts.episode_bounds()]
    assert lengths == [5 + FRAMES_AFTER_LIFT, 12, 2 + FRAMES_AFTER_LIFT]  # the last frame, or 3 past the first lift
    for kept, source in zip(range(3), (1, 2, 3), strict=True):
        start, end = lifts.episode_bounds()[kept]
        np.testing.assert_array_equal(lifts.actions[start:end], episodes[source]["actions"][:end - start])
        np.testing.assert_array_equal(np.asarray(lifts.images[start:end]), episodes[source]["images"][:end - start])

    assert main(["dataset", "lifts", str(tmp_path / "play"), "-o", str(tmp_path / "lifts")]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err
    write_store(tmp_path / "still", [_play_episode(6, None, rng)])
    assert main(["dataset", "lifts", str(tmp_path / "still"), "-o", str(tmp_path / "none")]) == 1
    assert "no episode holds an object 12-20 cm up" in capsys.readouterr().err
    no_pose = {k: v for k, v in _play_episode(6, 2, rng).items() if k != "ee_position"}
    write_store(tmp_path / "blind", [no_pose])
    assert main(["dataset", "lifts", str(tmp_path / "blind"), "-o", str(tmp_path / "none")]) == 1
    assert "ee_pose" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
