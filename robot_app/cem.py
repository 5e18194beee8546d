"""Cross-entropy method over normalised actions: QT-Opt's max over a' (numpy, torch-free).

The algorithm is defined by its noise, so that the runtime (numpy over onnxruntime) and
training (torch, `training/cem.py`) pick the same action from the same random numbers:

    iteration 0:  samples = uniform[-1, 1]                       (drawn as `uniform`)
    iteration k:  samples = clip(mean + std * normal_k, -1, 1)   (drawn as `normal[k-1]`)
    after each:   mean, std = moments of the `elites` best samples, std >= min_std
    result:       the best sample seen over all iterations, and its score

Sampling all candidates of an iteration in one call is what makes it cheap: the network
encodes the state-goal pair once per call and scores N actions with its small head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from robot_app.spec import ACTION_DIM


@dataclass(frozen=True)
class CEMSettings:
    samples: int = 64  # candidate actions per iteration (QT-Opt: 64)
    elites: int = 6  # best candidates refitting the Gaussian (QT-Opt: 6)
    iterations: int = 3  # QT-Opt used 2; a third costs little and sharpens the grip choice
    min_std: float = 0.05  # keeps the search from collapsing onto one point

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CEMSettings:
        types = {"samples": int, "elites": int, "iterations": int, "min_std": float}
        return cls(**{k: types[k](v) for k, v in d.items() if k in types})


def draw_noise(rng: np.random.Generator, batch: int, settings: CEMSettings) -> tuple[np.ndarray, np.ndarray]:
    """The random numbers one CEM call consumes: (uniform (B,N,5), normal (I-1,B,N,5))."""
    shape = (batch, settings.samples, ACTION_DIM)
    uniform = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    normal = rng.standard_normal(size=(settings.iterations - 1, *shape)).astype(np.float32)
    return uniform, normal


def cem_maximize(
    score: Callable[[np.ndarray], np.ndarray],
    settings: CEMSettings,
    uniform: np.ndarray,
    normal: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise score(actions (B,N,5)) -> (B,N) over actions; returns (best (B,5), best score (B,)).

    `score` may return a view of a buffer it overwrites on its next call: each iteration
    is done with its scores before scoring the next samples.
    """
    if uniform.shape[0] == 1 and uniform.dtype == normal.dtype == np.float32:
        return _maximize_one(score, settings, uniform, normal)
    batch = uniform.shape[0]
    rows = np.arange(batch)
    samples = uniform
    best_action = np.zeros((batch, ACTION_DIM), dtype=np.float32)
    best_score = np.full(batch, -np.inf, dtype=np.float32)
    mean = std = np.zeros((batch, ACTION_DIM), dtype=np.float32)  # set by iteration 0 before use
    for k in range(settings.iterations):
        if k > 0:
            samples = mean[:, None, :] + std[:, None, :] * normal[k - 1]
            samples = samples if samples.dtype == np.float32 else samples.astype(np.float32)
            np.clip(samples, -1.0, 1.0, out=samples)  # in place: ~20% of a runtime action's numpy time
        scores = np.asarray(score(samples), dtype=np.float32)
        top = np.argmax(scores, axis=1)
        improved = scores[rows, top] > best_score
        best_score = np.where(improved, scores[rows, top], best_score)
        best_action[improved] = samples[rows, top][improved]
        if k + 1 == settings.iterations:
            break  # no refit after the last scoring: nothing samples from it
        elite_idx = np.argsort(-scores, axis=1, kind="stable")[:, : settings.elites]
        elites = samples[rows[:, None], elite_idx]
        mean = elites.mean(axis=1)
        std = np.maximum(elites.std(axis=1), settings.min_std)
    return best_action, best_score


def _maximize_one(score, settings: CEMSettings, uniform: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cem_maximize for a batch of one, what the runtime does every action: the same float32
    arithmetic in the same order on 2-D arrays (bit for bit the same answer; a runtime test
    checks it), in about half the numpy calls, each ~1 us at this size.

    Moments follow numpy's mean/std step by step (sum over the elites, divide, deviations
    squared, sum, divide, sqrt); the float32 division rounds exactly like numpy's float64
    one rounded back to float32 (53 >= 2 * 24 + 2 bits, so the double rounding is exact).
    """
    count = np.float32(settings.elites)
    samples = uniform[0]
    best_action, best_score = None, np.float32(-np.inf)
    mean = std = None  # set by iteration 0 before use
    for k in range(settings.iterations):
        if k > 0:
            samples = np.multiply(normal[k - 1, 0], std)
            np.add(samples, mean, out=samples)
            np.maximum(samples, -1.0, out=samples)  # clip in two ufuncs: np.clip's wrapper costs more
            np.minimum(samples, 1.0, out=samples)
        scores = np.asarray(score(samples[None]), dtype=np.float32)[0]
        top = int(scores.argmax())
        if scores[top] > best_score:
            best_action, best_score = samples[top], scores[top]
        if k + 1 == settings.iterations:
            break
        elites = samples.take(np.argsort(-scores, kind="stable")[: settings.elites], axis=0)
        mean = np.add.reduce(elites, axis=0)
        np.divide(mean, count, out=mean)
        dev = np.subtract(elites, mean)
        np.square(dev, out=dev)
        std = np.add.reduce(dev, axis=0)
        np.divide(std, count, out=std)
        np.sqrt(std, out=std)
        np.maximum(std, settings.min_std, out=std)
    if best_action is None:  # every score NaN: as the batched path, zeros and -inf
        return np.zeros((1, ACTION_DIM), dtype=np.float32), np.full(1, -np.inf, dtype=np.float32)
    return best_action[None].copy(), np.array([best_score], dtype=np.float32)
