"""A task model that proposes its own goal picture: camera model, localiser, goal bank, the command, the runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from task_model_fixtures import GRASP_Z, SIZE, blob_image, camera, make_tiny_task_model

from robot_app.camera import PinholeCamera
from robot_app.cli import main
from robot_app.goal_proposal import GoalBank, default_goals_per_run, held_lift_rows
from robot_app.store import Store, write_store

torch.set_num_threads(1)


def test_camera_round_trip_and_it_matches_the_simulator_render():
    cam = camera()
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(0.35, 0.7, 20), rng.uniform(-0.22, 0.22, 20), np.full(20, GRASP_Z)])
    np.testing.assert_allclose(cam.to_plane(cam.project(points), GRASP_Z), points, atol=1e-9)
    mirrored = points * (1, -1, 1)  # the sim camera sits on the robot's x axis: y -> -y mirrors the image
    assert cam.mirror_symmetric()
    np.testing.assert_allclose(cam.project(mirrored)[:, 0], SIZE - cam.project(points)[:, 0], atol=1e-9)
    assert not PinholeCamera((0.9, 0.2, 1.0), cam.target, cam.up, cam.fov_deg, SIZE).mirror_symmetric()
    assert PinholeCamera.from_dict(json.loads(json.dumps(cam.to_dict()))) == cam

    from sim_worlds import goals
    from sim_worlds.panda_world import HELDOUT_OBJECT

    world = goals.world_for("grasp-heldout", SIZE)
    try:
        for task in goals.make_suite("grasp-heldout", 3, 0, image_size=SIZE):
            image = world.set_state(task.start_state).image.astype(int)
            yellow = (image[..., 0] > 150) & (image[..., 1] > 130) & (image[..., 2] < 90)
            rows, cols = np.nonzero(yellow)
            assert len(rows) > 3, "the held-out object should show as yellow pixels"
            seen = np.array([cols.mean() + 0.5, rows.mean() + 0.5])  # pixel j's centre is j + 0.5
            where = cam.project(task.start_state["objects"][HELDOUT_OBJECT]["position"])
            assert np.linalg.norm(seen - where) < 2.0, (seen, where)
    finally:
        world.close()


def test_localiser_finds_a_blob_and_its_onnx_graph_agrees(tmp_path):
    import onnxruntime as ort

    from robot_app.goal_proposal import LOCALISER_INPUT
    from training.localiser import LocaliserConfig, export_localiser, localise, train_localiser

    rng = np.random.default_rng(0)
    pixels = rng.uniform(10, 54, (64, 2)).round()
    images = np.stack([blob_image(p, rng) for p in pixels])
    net = train_localiser(images, pixels.astype(np.float32), LocaliserConfig(steps=150, channels=16, shift=3, seed=0, mirror=True))
    test_pixels = rng.uniform(10, 54, (16, 2)).round()
    test_images = np.stack([blob_image(p, rng) for p in test_pixels])
    found = localise(net, test_images)
    error = np.linalg.norm(found - test_pixels, axis=1)
    assert np.median(error) < 1.5, error  # a guess at the image centre is ~15 px off

    export_localiser(net, tmp_path / "loc.onnx", SIZE)
    session = ort.InferenceSession(str(tmp_path / "loc.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {LOCALISER_INPUT: test_images})[0], found, atol=1e-3)


TABLE = (150, 120, 90)
YELLOW, RED = (240, 215, 30), (200, 30, 30)


def flat_scene(rng, yellow=None, red=None, arm=None) -> np.ndarray:
    """A table (colour plus a little noise) with optional 4x4 yellow and red squares centred on
    (column, row) pixels, and a grey 'arm' rectangle (c0, r0, c1, r1)."""
    image = np.clip(np.asarray(TABLE) + rng.integers(-4, 5, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    if arm is not None:
        image[arm[1]:arm[3], arm[0]:arm[2]] = 200
    for place, colour in ((red, RED), (yellow, YELLOW)):
        if place is not None:
            c, r = int(round(place[0])), int(round(place[1]))
            image[r - 2:r + 2, c - 2:c + 2] = colour
    return image


def test_a_cutout_takes_the_labelled_object_only_and_a_paste_lands_where_its_label_says():
    from training.localiser import object_cutout, paste_batch

    rng = np.random.default_rng(0)
    scene = flat_scene(rng, yellow=(30, 30), red=(36, 30))  # a red cube 2 px beside the yellow one
    cut = object_cutout(scene, np.array([30.5, 30.5]))
    assert cut is not None and cut.mask.sum() == 16  # the yellow square, not the red one beside it
    assert (cut.pixels[cut.mask] == YELLOW).all()
    assert object_cutout(flat_scene(rng), np.array([30.5, 30.5])) is None  # bare table: nothing to cut

    arm = (0, 0, 64, 26)  # the upper part of every background is "arm"
    backgrounds = np.stack([flat_scene(rng, red=(50, 50), arm=arm) for _ in range(4)])
    places = np.array([[20.0, 40.0], [44.0, 44.0], [32.0, 20.0]])  # the last lies on the arm
    images, labels = paste_batch(backgrounds, [cut], places, 200, np.random.default_rng(1), jitter=3)
    for image, label in zip(images, labels, strict=True):
        ys, xs = np.nonzero((image == YELLOW).all(-1))
        assert len(xs) == 16  # exactly one object, whole
        np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], label, atol=1.0)
    on_arm = (labels[:, 1] < 26 + 2).mean()
    assert on_arm < 0.05, on_arm  # places on the arm are tried again on bare table (8 tries)


def test_pasting_onto_play_frames_teaches_the_object_from_few_scenes(tmp_path):
    """Three labelled scenes, and a red cube always 8 px right of the yellow one in them: pasted
    scenes over play frames (red cubes anywhere, no yellow) still find the yellow cube alone."""
    from training.localiser import LocaliserConfig, localise, train_localiser

    rng = np.random.default_rng(0)
    scenes = [(18, 40), (40, 34), (28, 48)]
    images = np.stack([flat_scene(rng, yellow=p, red=(p[0] + 8, p[1])) for p in scenes for _ in range(8)])
    pixels = np.repeat(np.asarray(scenes, np.float32) + 0.5, 8, axis=0)
    backgrounds = np.stack([flat_scene(rng, red=rng.uniform(8, 56, 2)) for _ in range(64)])
    config = LocaliserConfig(steps=250, channels=16, seed=0, paste_fraction=0.5)
    net = train_localiser(images, pixels, config, backgrounds=backgrounds)
    test = rng.uniform(10, 54, (24, 2)).round()
    red = np.clip(test + rng.choice([-1, 1], (24, 1)) * rng.uniform(8, 16, (24, 2)).round(), 4, 60)  # anywhere near
    found = localise(net, np.stack([flat_scene(rng, yellow=p, red=q) for p, q in zip(test, red, strict=True)]))
    error = np.linalg.norm(found - (test + 0.5), axis=1)
    assert np.median(error) < 2.0, error  # the red cube is 8-23 px away


def test_goal_bank_keeps_held_lifted_frames_one_per_cell(tmp_path):
    gripper = np.array([0.0, 0.35, 0.35, 0.35, 0.95, 0.35, 0.35], dtype=np.float32)  # 0.95: closed on nothing
    ee = np.array([[0.5, 0.0, 0.15], [0.5, 0.0, 0.15], [0.503, 0.002, 0.15], [0.6, 0.1, 0.05],
                   [0.6, 0.1, 0.15], [0.6, 0.1, 0.16], [0.507, 0.0, 0.19]])
    np.testing.assert_array_equal(held_lift_rows(gripper, ee), [1, 2, 5, 6])
    store = Store.open(write_store(tmp_path / "play", [{
        "images": np.arange(7, dtype=np.uint8)[:, None, None, None].repeat(SIZE, 1).repeat(SIZE, 2).repeat(3, 3),
        "actions": np.zeros((7, 5), np.float32), "gripper": gripper, "timestamps": np.arange(7) * 0.1, "ee_position": ee,
    }]))
    bank = GoalBank.from_store(store, cell_m=0.01)
    # rows 1 and 2 share the cell [0.50, 0.51) x [0.00, 0.01); row 2 lies nearer its centre
    assert sorted(bank.images[:, 0, 0, 0].tolist()) == [2, 5]
    assert bank.images[bank.nearest((0.6, 0.1))[0]][0, 0, 0] == 5
    full = GoalBank.from_store(store, cell_m=0)
    assert len(full.images) == 4
    # K nearest, nearest first, but none farther than the spread beyond the nearest
    assert full.images[full.nearest((0.5, 0.0), 3, 0.01), 0, 0, 0].tolist() == [1, 2, 6]
    assert full.images[full.nearest((0.5, 0.0), 3, 0.005), 0, 0, 0].tolist() == [1, 2]
    assert full.images[full.nearest((0.5, 0.0), 9, 1.0), 0, 0, 0].tolist() == [1, 2, 6, 5]

    bank.save(tmp_path / "bank.npz")
    again = GoalBank.load(tmp_path / "bank.npz", SIZE)
    np.testing.assert_array_equal(again.images, bank.images)
    with pytest.raises(ValueError, match="expected uint8"):
        GoalBank.load(tmp_path / "bank.npz", 32)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: not a goal bank"):
        GoalBank.load(tmp_path / "junk.npz", SIZE)


@pytest.fixture(scope="module")
def task_model(tmp_path_factory):
    """A task model built by `robot-app task-goals` from a small goal-conditioned net and synthetic stores."""
    out = tmp_path_factory.mktemp("task_model")
    return out, make_tiny_task_model(out)


def test_task_goals_writes_a_task_model_that_proposes_the_nearest_bank_picture(task_model):
    from robot_app.policy import Policy

    out, spots = task_model
    for name in ("task_model.onnx", "task_model.json", "task_model_localiser.onnx", "task_model_bank.npz", "task_model_goal.png"):
        assert (out / name).is_file(), name
    policy = Policy.load(out / "task_model.onnx")
    assert policy.card.task == "grasp-heldout" and policy.goal_proposer is not None
    assert policy.goal_proposer.grasp_height_m == pytest.approx(GRASP_Z, abs=1e-4)
    assert len(policy.goal_proposer.bank.images) == len(spots)
    assert policy.goal_proposer.goals_per_run == 5  # a single goal model: act toward 5 pictures (1 for a -meanN one)
    assert [default_goals_per_run(a) for a in ("gcbc", "am", "gcbc-mean3")] == [5, 5, 1]
    assert policy.card.goal_proposer["localiser_config"]["paste_fraction"] == 0.5  # pasting is the default
    rng = np.random.default_rng(7)
    hits = 0
    for k in (1, 5, 9):  # the blob under play spot k: the proposal is that spot's picture
        proposal = policy.goal_proposer.propose(blob_image(spots[k], rng))
        hits += int(proposal.goal[0, 0, 0] == 10 * (k + 1))
        assert proposal.goal.shape == (SIZE, SIZE, 3) and proposal.bank_distance_m < 0.05
        assert proposal.goals.shape[1:] == (SIZE, SIZE, 3) and 1 <= len(proposal.goals) <= 5
        assert np.array_equal(proposal.goals[0], proposal.goal)
    assert hits >= 2, "the localiser should put the blob on its own spot's picture"


def test_the_localiser_pastes_onto_the_play_frames_and_never_onto_the_attempts_own(task_model):
    """The attempts' frames already show the object: given as the play store, pasting stays off
    (the same weights as --paste 0), where another play store changes what is learnt."""
    from dataclasses import replace

    from training.localiser import LocaliserConfig, fit_localiser

    out, _ = task_model
    task, play = Store.open(out / "task"), Store.open(out / "play")
    config = LocaliserConfig(steps=5, channels=8, seed=0)

    def weights(config, play_store):
        net, _ = fit_localiser(task, camera(), config, play=play_store)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    off = weights(replace(config, paste_fraction=0.0), play)
    assert torch.equal(weights(config, task), off)
    assert not torch.equal(weights(config, play), off)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        weights(replace(config, paste_fraction=1.5), play)


def test_a_proposing_task_model_keeps_its_first_frame_goal_for_the_episode(task_model):
    from robot_app.evaluation import as_act_fn
    from robot_app.policy import Policy

    out, spots = task_model
    policy = Policy.load(out / "task_model.onnx")
    fed = []
    act_fn = as_act_fn(type("P", (), {"goal_proposer": policy.goal_proposer,
                                      "act": lambda self, i, g, s: fed.append(g[0, 0, 0, 0]) or np.zeros(5)})())
    rng = np.random.default_rng(3)
    suite_goal = np.zeros((SIZE, SIZE, 3), np.uint8)
    act_fn.new_episode()
    for image in (blob_image(spots[1], rng), blob_image(spots[9], rng)):  # the object moves: the goal does not
        act_fn(image, suite_goal, 0.0)
    act_fn.new_episode()
    act_fn(blob_image(spots[9], rng), suite_goal, 0.0)
    assert fed[0] == fed[1] != fed[2] and 0 not in fed  # never the suite's goal
    assert act_fn.goal_pursued(suite_goal)[0, 0, 0] == fed[2]  # what the episode's picture strip shows


def test_acting_toward_several_goal_pictures_is_the_settled_mean_of_acting_toward_each(task_model):
    """A task model acts toward its K proposed pictures at once: the same CEM noise, each goal's
    action, their mean, the gripper by majority."""
    from robot_app.policy import Policy

    out, spots = task_model
    policy = Policy.load(out / "task_model.onnx")
    rng = np.random.default_rng(5)
    image, goals = blob_image(spots[4], rng), policy.goal_proposer.bank.images[[3, 4, 5]]
    policy.reseed(0)
    action, q = policy.act(image, goals, 0.0)
    policy.reseed(0)
    each = [policy.act(image, goal, 0.0) for goal in goals]
    mean = np.mean([a for a, _ in each], axis=0)
    np.testing.assert_allclose(action, policy.card.action_scaling.settle(mean), atol=1e-6)  # binary gripper: majority
    assert q == pytest.approx(np.mean([q for _, q in each]))
    assert len({tuple(np.round(a, 4)) for a, _ in each}) > 1, "the pictures should ask for different actions"
    with pytest.raises(ValueError, match="empty stack"):
        policy.act(image, goals[:0], 0.0)


@pytest.mark.parametrize("damage, message", [
    ("bank", "task_model_bank.npz: not a goal bank"),
    ("localiser", "task_model_localiser.onnx: cannot load the localiser graph"),
    ("camera", "its camera is 32 px"),
    ("camera-fields", "camera .* is not eye/target/up/fov_deg/size"),
])
def test_a_broken_goal_proposer_is_refused_by_name(task_model, tmp_path, damage, message):
    from robot_app.policy import Policy, PolicyLoadError

    out, _ = task_model
    for f in out.glob("task_model*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    if damage.startswith("camera"):
        card = json.loads((tmp_path / "task_model.json").read_text())
        if damage == "camera":
            card["goal_proposer"]["camera"]["size"] = 32
        else:
            del card["goal_proposer"]["camera"]["eye"]
        (tmp_path / "task_model.json").write_text(json.dumps(card))
    else:
        (tmp_path / f"task_model_{damage}.{'npz' if damage == 'bank' else 'onnx'}").write_bytes(b"garbage")
        with pytest.raises(PolicyLoadError, match=f"sha256 .* does not match its card .*the {damage} was modified"):
            Policy.load(tmp_path / "task_model.onnx")
        card = json.loads((tmp_path / "task_model.json").read_text())
        del card["goal_proposer"]["sha256"]  # as a card from before the digests: the file's own check speaks
        (tmp_path / "task_model.json").write_text(json.dumps(card))
    with pytest.raises(PolicyLoadError, match=message):
        Policy.load(tmp_path / "task_model.onnx")


def test_task_goals_refuses_a_task_model_as_its_base(task_model, tmp_path, capsys):
    out, _ = task_model
    code = main(["task-goals", "--model", str(out / "task_model.onnx"), "--data", str(out / "task"), "--play", str(out / "play"),
                 "--out", str(tmp_path / "again.onnx"), "--steps", "1", "--no-progress"])
    assert code == 2 and "a task model already" in capsys.readouterr().err
    assert not (tmp_path / "again.onnx").exists()


def test_task_goals_says_which_store_lacks_the_gripper_positions(task_model, tmp_path, capsys):
    """Stores from bags without ee_pose: the localiser's labels and the bank's keys come from it."""
    out, _ = task_model
    for name in ("task", "play"):
        shutil.copytree(out / name, tmp_path / name)
        (tmp_path / name / "ee_position.npy").unlink()
    for data, play, why in (("task", "play", "the localiser learns from where each attempt's gripper closed"),
                            (str(out / "task"), "play", "the goal bank keys each picture by where the gripper held it")):
        code = main(["task-goals", "--model", str(out / "goal.onnx"), "--data", str(tmp_path / data),
                     "--play", str(tmp_path / play), "--out", str(tmp_path / "t.onnx"), "--steps", "1", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and why in err and "no ee_position" in err and "ee_pose" in err, err
        assert not (tmp_path / "t.onnx").exists()


def test_the_gui_task_gallery_offers_it_as_a_task_that_proposes_its_goal(task_model):
    from gui.gallery import from_models

    out, _ = task_model
    load = from_models(out)
    assert load.problems == []
    (entry,) = load.entries
    assert entry.task == "grasp-heldout" and entry.model == out / "task_model.onnx"
    assert "proposes its goal from the camera" in entry.detail


def test_a_calibrated_camera_file_is_used_and_an_off_axis_one_refuses_the_mirror(task_model, tmp_path):
    """`task-goals --camera FILE` takes a real arm's calibrated camera: an off-axis camera with
    the mirror on is refused before anything is written, without it the card records that
    camera, and a file that is no camera is named with what it lacks."""
    out, _ = task_model
    off_axis = tmp_path / "camera.yaml"
    off_axis.write_text("eye: [0.95, 0.3, 1.05]\ntarget: [0.4, 0.0, 0.05]\nup: [0, 0, 1]\nfov_deg: 36\n")
    command = ["task-goals", "--model", str(out / "goal.onnx"), "--data", str(out / "task"), "--play", str(out / "play"),
               "--out", str(tmp_path / "m.onnx"), "--steps", "1", "--no-progress", "--camera", str(off_axis)]
    assert main(command) == 2
    assert not (tmp_path / "m.onnx").exists()
    assert main([*command, "--no-mirror"]) == 0
    card_camera = json.loads((tmp_path / "m.json").read_text())["goal_proposer"]["camera"]
    assert card_camera == {"eye": [0.95, 0.3, 1.05], "target": [0.4, 0.0, 0.05], "up": [0.0, 0.0, 1.0], "fov_deg": 36.0,
                           "size": SIZE}
    shipped = PinholeCamera.from_file(Path(__file__).resolve().parents[1] / "config" / "sim_camera.yaml", SIZE)
    assert shipped == camera()  # the example file is the simulator's camera
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"eye": [1, 0, 1], "target": [1, 0, 1], "up": [0, 0, 1], "fov_deg": 40}))
    with pytest.raises(ValueError, match="target equals its eye"):
        PinholeCamera.from_file(broken, SIZE)
    broken.write_text(json.dumps({"eye": [1, 0, 1], "up": [0, 0, 1], "fov_deg": 40}))
    with pytest.raises(ValueError, match="broken.json: a camera needs eye, target and up"):
        PinholeCamera.from_file(broken, SIZE)


def test_a_task_model_whose_bank_or_localiser_was_replaced_is_refused(task_model, tmp_path):
    """The card holds the sha256 of its localiser and bank, as of its graph."""
    from robot_app.policy import Policy, PolicyLoadError

    out, _ = task_model
    for path in out.glob("task_model*"):
        shutil.copy(path, tmp_path / path.name)
    card = json.loads((tmp_path / "task_model.json").read_text())
    assert set(card["goal_proposer"]["sha256"]) == {"localiser", "bank"}
    Policy.load(tmp_path / "task_model.onnx")
    with np.load(tmp_path / "task_model_bank.npz") as f:
        images, positions = f["images"].copy(), f["positions"]
    images[0] = 255 - images[0]  # another picture where the first one was
    np.savez_compressed(tmp_path / "task_model_bank.npz", images=images, positions=positions)
    with pytest.raises(PolicyLoadError, match="task_model_bank.npz: sha256 .* does not match its card.*bank was modified"):
        Policy.load(tmp_path / "task_model.onnx")
    (tmp_path / "task_model_bank.npz").unlink()
    with pytest.raises(PolicyLoadError, match="its bank .*task_model_bank.npz is missing"):
        Policy.load(tmp_path / "task_model.onnx")
