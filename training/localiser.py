"""Find a task's object in a camera frame: a fully convolutional heatmap localiser.

Why a task model needs one (BENCHMARKS.md, "Session 21"): the goal-conditioned model grasps
the held-out object in ~83% of tasks when shown a picture of *any* cube held where that
object lies, and in ~1% when shown one fixed picture. A task model can therefore keep the
goal input and propose, per scene, the play-data picture of a grasp nearest the object, if
it can find the object to about a centimetre. A CNN regressing table xy from the labelled
attempts misses by 4.2 cm at 50 attempts: a dense regressor has to learn translation from
few examples. A heatmap is translation-equivariant by construction, so a handful of scenes
teach "this colour blob"; its labels are pixels (the gripper's position at each attempt's
first close command, projected by the camera model), and a random shift moves image and
label together exactly, which a table-xy label cannot follow.

Few attempts mean few scenes (25 attempts held 11 successes), and a net fitted to a dozen
scenes learns their arm poses and neighbouring cubes along with the object. So each batch also
holds scenes made by pasting the attempts' object onto play frames at other places: the play
data has thousands of scenes, and no labels are needed for a background.

Predicted pixels go back to the table through the camera model (`robot_app.camera`).
Measured at 50 attempts without pasting: median 1.4 cm (82% of scenes within 2 cm),
BENCHMARKS.md, "Session 22"; at 25 attempts 1.9 cm (51%) without, 1.2 cm (94%) with
(session 31).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class LocaliserConfig:
    # Few scenes, so it overfits: at 50 attempts 1200 updates did no better with the mirror
    # (median 1.5 cm against 1.4), 2000 worse without it (2.1 cm against 1.7 at 300).
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 1e-3
    channels: int = 32
    shift: int = 6  # random shift in pixels, label moved along
    sigma_px: float = 2.0  # target blob width on the input image (1.0 px: median 2.0 cm against 1.8, 600 updates)
    successes_only: bool = True  # a failed attempt may close beside the object
    # Also train on left-right mirrored frames (label mirrored too): twice the scenes, valid
    # only for a camera on the robot's x axis (PinholeCamera.mirror_symmetric). At 50
    # attempts: median 1.4 cm against 1.8 without; at 25: 2.2 cm against 2.6.
    mirror: bool = True
    # Share of each batch made by pasting a labelled scene's object onto an unlabelled play
    # frame at another place (`paste_batch`): 25 attempts give a dozen scenes, the play data
    # thousands of backgrounds (other objects, the arm anywhere). At 25 attempts it found the
    # object within 2 cm in 88 / 94 / 99% of start frames (seeds 0 / 1 / 2) against 48 / 55 / 51%
    # without; the task models grasped 68.3% of 600 fresh tasks against 59.5% (BENCHMARKS.md,
    # session 31). 0 = off. The play frames must not show the task's object.
    paste_fraction: float = 0.5
    paste_backgrounds: int = 2000  # play frames kept as backgrounds (drawn evenly)
    seed: int = 0
    num_threads: int = 1


class HeatmapNet(nn.Module):
    """Image (B, 3, H, W) uint8-range floats -> logits (B, H/2, W/2) over where the object is."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c // 2, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(c // 2, c, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, dilation=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 2, dilation=2), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 4, dilation=4), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 8, dilation=8), nn.ReLU(),
            nn.Conv2d(c, 1, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images / 255.0 - 0.5)[:, 0]


def heatmap_pixels(logits: torch.Tensor, window: int = 2) -> torch.Tensor:
    """(B, 2) continuous input-image (column, row), pixel j's centre at j + 0.5, of each heatmap's peak, refined by a soft-argmax in a
    (2*window+1)^2 neighbourhood: sub-cell precision without a far-away second blob pulling
    the mean (a full-map soft-argmax would)."""
    b, h, w = logits.shape
    flat = logits.reshape(b, -1)
    peak = flat.argmax(1)
    pr, pc = peak // w, peak % w
    rows = torch.arange(h, device=logits.device).view(1, h, 1)
    cols = torch.arange(w, device=logits.device).view(1, 1, w)
    near = ((rows - pr.view(b, 1, 1)).abs() <= window) & ((cols - pc.view(b, 1, 1)).abs() <= window)
    weight = torch.softmax(logits.masked_fill(~near, float("-inf")).reshape(b, -1), 1).reshape(b, h, w)
    r = (weight * rows).sum((1, 2))
    c = (weight * cols).sum((1, 2))
    return torch.stack([c * 2 + 1, r * 2 + 1], 1)  # cell i covers input pixels 2i, 2i+1: centre at 2i + 1


def target_maps(pixels: torch.Tensor, h: int, w: int, sigma_px: float) -> torch.Tensor:
    """(B, h, w) normalised Gaussian targets on the heatmap grid for input-image pixels (B, 2)."""
    rows = (torch.arange(h, dtype=torch.float32) * 2 + 1).view(1, h, 1)
    cols = (torch.arange(w, dtype=torch.float32) * 2 + 1).view(1, 1, w)
    d2 = (cols - pixels[:, 0].view(-1, 1, 1)) ** 2 + (rows - pixels[:, 1].view(-1, 1, 1)) ** 2
    target = torch.exp(-d2 / (2 * max(sigma_px, 0.5) ** 2))
    return target / target.sum((1, 2), keepdim=True)


def shift_images(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image moved by its whole-pixel (columns, rows) offset, edges repeated."""
    size = images.shape[1]
    out = np.empty_like(images)
    grid = np.arange(size)
    for i, (dc, dr) in enumerate(np.asarray(offsets, dtype=np.int64).reshape(-1, 2)):
        out[i] = images[i][np.clip(grid - dr, 0, size - 1)][:, np.clip(grid - dc, 0, size - 1)]
    return out


def shift_batch(images: np.ndarray, pixels: np.ndarray, shift: int, rng: np.random.Generator):
    """Each image moved by a random offset of up to `shift` pixels, its label moved along."""
    offsets = rng.integers(-shift, shift + 1, size=(len(images), 2))
    return shift_images(images, offsets), pixels + offsets


@dataclass
class Cutout:
    """One labelled scene's object: its pixels (h, w, 3), where they are (h, w) bool, and the
    label's offset (column, row) from the patch's top-left corner."""

    pixels: np.ndarray
    mask: np.ndarray
    label_offset: np.ndarray


TABLE_DIFFERENCE = 40  # summed |RGB - the frame's median colour| above which a pixel is not the table
PLACE_TRIES = 8  # places tried for a paste before the last one is taken


def object_cutout(image: np.ndarray, pixel: np.ndarray, radius: int = 5) -> Cutout | None:
    """The object under `pixel` in `image`: the blob of non-table pixels nearest the label in a
    (2 radius + 1)^2 window, the table being the frame's median colour (it fills most of the
    frame). None where nothing there stands out from the table."""
    import cv2

    size = image.shape[0]
    c, r = np.clip(np.round(pixel).astype(int), radius, size - radius - 1)
    patch = image[r - radius:r + radius + 1, c - radius:c + radius + 1]
    table = np.median(image.reshape(-1, 3), axis=0)
    foreground = (np.abs(patch.astype(np.int32) - table).sum(-1) > TABLE_DIFFERENCE).astype(np.uint8)
    count, blobs = cv2.connectedComponents(foreground, connectivity=8)
    if count < 2:
        return None
    ys, xs = np.nonzero(foreground)
    label_at = np.asarray(pixel) - (c - radius, r - radius)  # label within the patch, pixel centres at j + 0.5
    nearest = np.argmin((xs + 0.5 - label_at[0]) ** 2 + (ys + 0.5 - label_at[1]) ** 2)
    mask = blobs == blobs[ys[nearest], xs[nearest]]
    return Cutout(patch.copy(), mask, label_at.astype(np.float32))


def paste_batch(backgrounds: np.ndarray, cutouts: list[Cutout], places: np.ndarray, count: int,
                rng: np.random.Generator, jitter: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`count` scenes made by pasting a cutout onto a background at a labelled place of another
    scene, moved by up to `jitter` pixels; returns (images, their labels). The object keeps its
    look, the scene around it (arm, other objects, where it lies) is new."""
    size = backgrounds.shape[1]
    images = backgrounds[rng.integers(0, len(backgrounds), count)].copy()
    labels = np.empty((count, 2), np.float32)
    for i in range(count):
        cut = cutouts[rng.integers(len(cutouts))]
        h, w = cut.mask.shape
        table = np.median(images[i].reshape(-1, 3), axis=0)
        for _ in range(PLACE_TRIES):  # on bare table: an object pasted over the arm would float in front of it
            at = places[rng.integers(len(places))] + rng.integers(-jitter, jitter + 1, 2)
            left, top = np.clip(np.round(at - cut.label_offset).astype(int), 0, (size - w, size - h))
            region = images[i, top:top + h, left:left + w]
            if (np.abs(region[cut.mask].astype(np.int32) - table).sum(-1) <= TABLE_DIFFERENCE).all():
                break
        region[cut.mask] = cut.pixels[cut.mask]
        labels[i] = (left, top) + cut.label_offset
    return images, labels


def train_localiser(images: np.ndarray, pixels: np.ndarray, config: LocaliserConfig, log=None,
                    backgrounds: np.ndarray | None = None) -> HeatmapNet:
    """Fit a heatmap net to frames (N, H, W, 3) uint8 labelled with (N, 2) input pixels;
    `backgrounds` (M, H, W, 3), unlabelled frames without the object, for config.paste_fraction."""
    if not 0.0 <= config.paste_fraction <= 1.0:
        raise ValueError(f"paste fraction {config.paste_fraction}: the share of a batch pasted must be in [0, 1]")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.num_threads)
    rng = np.random.default_rng(config.seed)
    net = HeatmapNet(config.channels)
    optimiser = torch.optim.Adam(net.parameters(), config.learning_rate)
    size = images.shape[1]
    pasted = int(round(config.batch_size * config.paste_fraction)) if backgrounds is not None else 0
    if pasted:
        places, first = np.unique(pixels, axis=0, return_index=True)  # one label per scene; its first frame
        cutouts = [c for c in (object_cutout(images[i], pixels[i]) for i in first) if c is not None]
        pasted = pasted if cutouts else 0
    for step in range(config.steps):
        k = rng.integers(0, len(images), config.batch_size - pasted)
        x, p = images[k], pixels[k].astype(np.float32)
        if pasted:
            px, pp = paste_batch(backgrounds, cutouts, places, pasted, rng)
            x, p = np.concatenate([x, px]), np.concatenate([p, pp])
        x, p = shift_batch(x, p, config.shift, rng)
        if config.mirror:
            flip = rng.random(len(x)) < 0.5
            x[flip] = x[flip][:, :, ::-1]
            p[flip, 0] = size - p[flip, 0]
        logits = net(torch.as_tensor(x).permute(0, 3, 1, 2).float())
        target = target_maps(torch.as_tensor(p, dtype=torch.float32), size // 2, size // 2, config.sigma_px)
        loss = -(target * torch.log_softmax(logits.flatten(1), 1).view_as(logits)).sum((1, 2)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if log and (step % 250 == 0 or step == config.steps - 1):
            log(step, loss.item())
    return net.eval()


def close_pixel_labels(store, camera, successes_only: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """(frame rows, (N, 2) pixel labels, grasp height m) from a labelled task store.

    Every frame before an episode's first close command shows the object where it lies
    (the arm has not touched it yet); the grasp point at that close, projected, is where the
    attempt thought the object was. Successes only by default: their close was on it.
    """
    from .finetune import episode_labels, first_close_rows

    success = episode_labels(store) if successes_only else np.ones(store.num_episodes, dtype=bool)
    ee = np.asarray(store.ee_position)
    rows, pixels, heights = [], [], []
    for episode, ((start, end), close) in enumerate(zip(store.episode_bounds(), first_close_rows(store), strict=True)):
        if close < end and (success[episode] or not successes_only):
            rows += range(start, close)
            pixels += [camera.project(ee[close])] * int(close - start)
            heights.append(ee[close, 2])
    if not rows:
        raise ValueError(f"{store.root}: no {'successful ' if successes_only else ''}episode closes the gripper, "
                         "so nothing says where the object is")
    return np.asarray(rows), np.asarray(pixels, dtype=np.float32), float(np.median(heights))


def fit_localiser(store, camera, config: LocaliserConfig, log=None, play=None) -> tuple[HeatmapNet, float]:
    """(net, grasp height): the localiser for a labelled task store and the plane its pixels map
    to; `play`, an unlabelled store, gives the backgrounds config.paste_fraction pastes onto."""
    rows, pixels, height = close_pixel_labels(store, camera, config.successes_only)
    backgrounds = None
    if config.paste_fraction > 0 and play is not None and Path(play.root).resolve() != Path(store.root).resolve():
        # (the attempts as their own play store: their frames show the object, a paste would add a second one)
        keep = np.linspace(0, len(play) - 1, min(config.paste_backgrounds, len(play))).astype(np.int64)
        backgrounds = np.asarray(play.images)[keep]
    return train_localiser(np.asarray(store.images)[rows], pixels, config, log, backgrounds), height


class PixelLocaliser(nn.Module):
    """Frames (B, H, W, 3) uint8 -> (B, 2) float32 (column, row): the exported graph, so the
    runtime (robot_app/goal_proposal.py) needs onnxruntime only, not this file's peak search."""

    def __init__(self, net: HeatmapNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return heatmap_pixels(self.net(images.permute(0, 3, 1, 2).float()))


@torch.no_grad()
def localise(net: HeatmapNet, images: np.ndarray) -> np.ndarray:
    """(N, 2) input-image (column, row) of the object in frames (N, H, W, 3) uint8."""
    return PixelLocaliser(net.eval())(torch.as_tensor(images)).numpy()


def export_localiser(net: HeatmapNet, path, image_size: int) -> None:
    """Write the localiser as one self-contained ONNX graph (input "image", output "pixel"), atomically."""
    import os
    import tempfile
    import warnings

    from robot_app.goal_proposal import LOCALISER_INPUT, LOCALISER_OUTPUT
    from robot_app.policy import OPSET

    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        example = torch.zeros((1, image_size, image_size, 3), dtype=torch.uint8)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(PixelLocaliser(net.eval()), (example,), tmp, input_names=[LOCALISER_INPUT],
                              output_names=[LOCALISER_OUTPUT], dynamic_axes={LOCALISER_INPUT: {0: "batch"}, LOCALISER_OUTPUT: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------- a task model


def build_task_model(goal_model: str, data: str, play: str, out: str, config: LocaliserConfig,
                     task: str = "grasp-heldout", camera=None, progress: bool = True,
                     goals_per_run: int | None = None, goal_spread_m: float | None = None) -> dict:
    """A task model that keeps its goal input: the goal-conditioned model `goal_model`, plus a
    localiser fitted to the labelled task store `data` and a goal bank from the play store
    `play`. Writes OUT.onnx (the goal model's graph), OUT.json (its card with "task" and
    "goal_proposer"), OUT_localiser.onnx, OUT_bank.npz and OUT_goal.png; returns the card's
    goal_proposer entry. `camera`: the fixed camera's PinholeCamera (default the simulator's).
    `goals_per_run`, `goal_spread_m`: how many bank pictures near the object the model acts
    toward at once (default robot_app.goal_proposal.default_goals_per_run, GOAL_SPREAD_M).
    """
    import shutil
    from dataclasses import asdict, replace

    from tqdm import tqdm

    from robot_app.goal_proposal import GOAL_SPREAD_M, GoalBank, default_goals_per_run
    from robot_app.policy import Policy, sha256_file
    from robot_app.store import Store

    from .finetune import _write_png, task_goal_image

    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the task model's file name must end in .onnx")
    base = Policy.load(goal_model, split=False)
    goals_per_run = default_goals_per_run(base.card.algo) if goals_per_run is None else goals_per_run
    goal_spread_m = GOAL_SPREAD_M if goal_spread_m is None else goal_spread_m
    if goals_per_run < 1 or goal_spread_m < 0:
        raise ValueError(f"goals per run ({goals_per_run}) must be at least 1 and the goal spread ({goal_spread_m} m) >= 0")
    if base.card.task or base.card.goal_proposer:
        raise ValueError(f"{goal_model}: a task model already ({base.card.task!r}); give a goal-conditioned model")
    store = Store.open(data)
    store.require_ee_height("the localiser learns from where each attempt's gripper closed (ee_pose)")
    size = base.image_size
    if store.image_size != size:
        raise ValueError(f"{data}: {store.image_size} px frames, {goal_model} takes {size}")
    if camera is None:
        from sim_worlds.panda_world import sim_camera

        camera = sim_camera(size)
    if config.mirror and not camera.mirror_symmetric():
        raise ValueError("the camera is not on the robot's x axis, so mirrored frames would teach the localiser "
                         "wrong places; turn mirroring off (--no-mirror)")
    play_store = Store.open(play)
    bank = GoalBank.from_store(play_store)
    if bank.images.shape[1] != size:
        raise ValueError(f"{play}: {bank.images.shape[1]} px frames, {goal_model} takes {size}")
    bar = tqdm(total=config.steps, desc="localiser", unit="step", disable=not progress, leave=False)
    last = [0]

    def log(step: int, loss: float) -> None:
        bar.update(step + 1 - last[0])
        last[0] = step + 1
        bar.set_postfix_str(f"loss {loss:.3f}")

    try:
        net, height = fit_localiser(store, camera, config, log, play=play_store)
    finally:
        bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    localiser_path, bank_path, goal_path = (Path(f"{stem}{s}") for s in ("_localiser.onnx", "_bank.npz", "_goal.png"))
    export_localiser(net, localiser_path, size)
    bank.save(bank_path)
    _write_png(goal_path, task_goal_image(store)[0])  # what a chooser shows; the goal fed is proposed per scene
    shutil.copyfile(base.onnx_path, out)
    proposer = {"localiser": localiser_path.name, "bank": bank_path.name, "camera": camera.to_dict(),
                "grasp_height_m": round(height, 4), "goals_per_run": int(goals_per_run), "goal_spread_m": float(goal_spread_m),
                "bank_pictures": len(bank.images), "play_data": str(play),
                "localiser_config": asdict(config),
                "sha256": {"localiser": sha256_file(localiser_path), "bank": sha256_file(bank_path)}}
    source = f"{base.card.source or goal_model} + localiser fitted to {data} ({store.num_episodes} labelled episodes)"
    replace(base.card, onnx_file=out.name, task=task, goal_image=goal_path.name, goal_image_sha256=sha256_file(goal_path),
            goal_proposer=proposer,
            evaluation=None, source=source).write(out.with_suffix(".json"))
    return proposer
