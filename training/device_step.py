"""Training steps that stay on the GPU: the store in GPU memory, each update one CUDA graph replay.

Why: on a GPU the update itself is cheap (about 57 GFLOP for AM at batch 256), so the host
path spends its time elsewhere. It copies three images a sample out of
the memory-mapped store and over PCIe (about 9 MB a batch), and launches several hundred
small kernels one by one from Python (the CEM target alone is a dozen per iteration),
each launch costing more than the kernel runs. Here the store's frames, proprio and
actions are copied to the GPU once (a 1000-episode 64x64 store is 0.6 GB), the host only
draws indices, and the whole gather + random shift (+ hue turn) + update is captured
once as a CUDA graph and replayed each step: one launch instead of hundreds.

What stays the same as the host path, by construction: the indices come from the same
GoalSampler (its numpy RNG, in the checkpoint) and the shift offsets from the same CPU
torch generator, drawn in the same order as `runner.to_torch` draws them, so both paths
train on the same batches and resume the same way; `shift_torch` is the same crop as the
CPU one, and the hue turn the same arithmetic (tests/test_device_step.py compares the two
feeds batch for batch). On a GPU the turn's cos and sin may round a last bit differently,
so a turned pixel can differ by one level.

Graph capture needs the optimizer's step counters on the GPU (Adam's `capturable`), static
input and output tensors, and randomness from generators the graph knows about: the
algorithm's CUDA generator is registered with the graph, so every replay advances it as
the eager update would. If capture fails (an older torch, an op that cannot be captured),
the step says why once and continues eagerly, still with the data on the GPU. Under DDP
the gradient all-reduce sits inside the update, so multi-process runs stay eager.

Measured on an H200 (BENCHMARKS.md): 330 AM updates/s against 53 eager with the data on
the GPU and 40 for plain eager with host batches; the graphed update is then GPU-bound.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from robot_app.store import Store
from training.augment import draw_hue_units, hue_angles, hue_basis, hue_rotations, shift_torch, turn_hues
from training.sampler import GoalSampler

INDEX_ROWS = ("t", "goal", "steps", "success", "chained")
IMAGE_KEYS = ("image", "next_image", "goal")


def copy_to(array: np.ndarray, device: torch.device, chunk_rows: int = 16384) -> torch.Tensor:
    """A (memory-mapped) array as a tensor on the device, read in chunks: never a second whole copy in host memory."""
    out = torch.empty(array.shape, dtype=torch.from_numpy(np.empty(0, array.dtype)).dtype, device=device)
    for start in range(0, len(array), chunk_rows):
        out[start : start + chunk_rows].copy_(torch.from_numpy(np.array(array[start : start + chunk_rows])))
    return out


class DeviceFeed:
    """The store's arrays as tensors on one device; a batch is gathered there from packed indices."""

    def __init__(self, store: Store, device: torch.device, pad: int, aligned: bool, height_input: bool,
                 hue: float = 0.0, hue_keys: tuple[str, ...] = IMAGE_KEYS):
        rows = np.arange(len(store))
        self.device, self.pad, self.aligned = device, int(pad), bool(aligned)
        self.images = copy_to(store.images, device)
        self.proprio = copy_to(store.proprio(rows, height_input), device)
        self.actions = copy_to(np.asarray(store.actions, dtype=np.float32), device)
        self.shift_draws = 0 if self.pad <= 0 else 1 if self.aligned else len(IMAGE_KEYS)
        self.hue, self.hue_keys = float(hue), tuple(hue_keys)
        self.hue_basis = hue_basis(device=device) if self.hue > 0 else None

    def draw(self, sampler: GoalSampler, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(rows, B) int64 on the CPU: sampled indices, the shift offsets, then the hue draws.

        The offsets and hue draws come exactly as runner.to_torch draws them (one (B, 2) draw
        per image, or one for all when aligned; then one uniform a sample when hue > 0), so
        the batches match the host path's. A hue draw is a float32 carried bit for bit in
        an int64 row (as a float64), so one packed tensor is still the graph's only input.
        """
        idx = sampler.sample_indices(batch)
        packed = [torch.from_numpy(np.asarray(idx[name], dtype=np.int64)) for name in INDEX_ROWS]
        for _ in range(self.shift_draws):
            offsets = torch.randint(0, 2 * self.pad + 1, (batch, 2), generator=generator)
            packed += [offsets[:, 0], offsets[:, 1]]
        if self.hue > 0:
            packed.append(draw_hue_units(batch, generator).double().view(torch.int64))
        return torch.stack(packed)

    def gather(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch dict the algorithms take (runner.to_torch's keys and dtypes), from draw()'s output on this device."""
        t, goal, steps, success, chained = packed[: len(INDEX_ROWS)]
        nxt = t + 1
        batch = {
            "image": self.images[t], "next_image": self.images[nxt], "goal": self.images[goal],
            "gripper": self.proprio[t], "next_gripper": self.proprio[nxt], "action": self.actions[t],
            "success": success.bool(), "chained": chained.bool(), "steps_to_goal": steps,
        }
        for i, key in enumerate(IMAGE_KEYS):
            if self.shift_draws:
                row = len(INDEX_ROWS) + 2 * (0 if self.aligned else i)
                batch[key] = shift_torch(batch[key], packed[row : row + 2].T, self.pad)
        if self.hue > 0:
            unit = packed[len(INDEX_ROWS) + 2 * self.shift_draws].view(torch.float64).float()
            rotations = hue_rotations(hue_angles(unit, self.hue), self.hue_basis)
            batch.update(zip(self.hue_keys, turn_hues([batch[k] for k in self.hue_keys], rotations), strict=True))
        return batch


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Adam's step counters on the GPU, so optimizer.step() can be captured (also after a resume)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():
        if "step" in state and torch.is_tensor(state["step"]):
            state["step"] = state["step"].to(device, torch.float32)


class DeviceStep:
    """One training update per call, data gathered on the GPU; after `warmup` eager updates, a CUDA graph replay."""

    def __init__(self, algo, feed: DeviceFeed, sampler: GoalSampler, generator: torch.Generator, batch: int,
                 graph: bool = True, warmup: int = 3):
        self.algo, self.feed, self.sampler, self.generator, self.batch = algo, feed, sampler, generator, batch
        self.use_graph = graph and feed.device.type == "cuda"
        self.warmup, self.eager_done = warmup, 0
        self.graph = self.static_in = self.static_out = None
        self.keys: list[str] = []
        if self.use_graph:
            make_capturable(algo.optimizer, feed.device)
            self.side = torch.cuda.Stream(feed.device)

    @property
    def graphed(self) -> bool:
        return self.graph is not None

    def __call__(self) -> dict[str, torch.Tensor]:
        packed = self.feed.draw(self.sampler, self.batch, self.generator)
        if not self.use_graph:
            return self.algo.update(self.feed.gather(packed.to(self.feed.device)))
        if self.graph is None and self.eager_done < self.warmup:
            return self._warm_update(packed)
        if self.graph is None:
            return self._capture_and_run(packed)
        self._upload(packed)
        self.graph.replay()
        return self._metrics()

    def _upload(self, packed: torch.Tensor) -> None:
        """Indices into the graph's input without waiting for the GPU: through two pinned host buffers
        used in turn, so the host draws the next batch while the GPU runs this one. The copy is
        stream-ordered (after the last replay has read the input); a buffer is refilled only once
        its previous copy has finished."""
        slot = self.uploads % 2
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()
        self.pinned[slot].copy_(packed)
        self.static_in.copy_(self.pinned[slot], non_blocking=True)
        self.copied[slot] = torch.cuda.Event()
        self.copied[slot].record()
        self.uploads += 1

    def _warm_update(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eager updates on a side stream before capture (cuBLAS/cuDNN workspaces, the optimizer's state)."""
        self.eager_done += 1
        current = torch.cuda.current_stream(self.feed.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            metrics = self.algo.update(self.feed.gather(packed.to(self.feed.device)))
        current.wait_stream(self.side)
        return metrics

    def _capture_and_run(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        self.static_in = packed.to(self.feed.device)
        self.pinned = [torch.empty_like(packed).pin_memory() for _ in range(2)]
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.uploads = 0
        graph = torch.cuda.CUDAGraph()
        generator = getattr(self.algo, "generator", None)
        try:
            if generator is not None and generator.device.type == "cuda":
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph):
                metrics = self.algo.update(self.feed.gather(self.static_in))
                self.keys = list(metrics)
                self.static_out = torch.stack([metrics[k].float() for k in self.keys])
        except Exception as error:  # noqa: BLE001 - any capture failure: say so once, keep training eagerly
            print(f"train: CUDA graph capture failed ({type(error).__name__}: {error}); continuing without graphs",
                  file=sys.stderr)
            torch.cuda.synchronize(self.feed.device)
            self.use_graph = False
            return self.algo.update(self.feed.gather(self.static_in))
        self.graph = graph
        graph.replay()  # capture records the update without running it
        return self._metrics()

    def _metrics(self) -> dict[str, torch.Tensor]:
        """This step's metrics, copied out of the graph's output buffer before the next replay overwrites it."""
        return dict(zip(self.keys, self.static_out.clone().unbind(), strict=True))
