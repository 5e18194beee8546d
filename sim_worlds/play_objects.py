"""Varied play objects: many shapes and colours, never the held-out object's.

Why: sessions 20-24 measured that the held-out grasp (design section 8) transfers from
play only as far as play's objects resemble the held-out one. Play with three cubes in three
colours gives a goal model that grasps a yellow lego brick from its goal image 74% of the
time at best; more updates on the same cubes made it worse. The lever left is the one the
Actionable Models and QT-Opt papers pull: play with many objects. `collect --task
play-varied` draws each episode's objects here.

Each of the episode's slots is, with probability `default_share`, one of the familiar cubes
(so the evaluation scenes stay in the data), otherwise a generated kind in a random colour:
a box of random proportions, an upright cylinder, or a duck, teddy or jenga-block mesh from
pybullet_data scaled to 3.5-5.5 cm across. The held-out object stays unseen in both
respects: its shape (the lego brick) is never drawn and neither is its hue (yellow).

(pybullet_data's 1000 random_urdfs meshes were tried first: TinyRenderer draws most of them
as thin bars a fraction of their collision hull, so what the camera saw was not what the
fingers met.)
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from sim_worlds.panda_world import DEFAULT_OBJECTS, HELDOUT_OBJECT, OBJECT_KINDS, ObjectKind


@dataclass(frozen=True)
class VariedObjectsConfig:
    count: int = 3  # objects per episode, as in the evaluation scenes
    default_share: float = 0.3  # chance a slot holds one of the familiar cubes
    shape_weights: tuple[float, float, float] = (0.45, 0.35, 0.20)  # box, cylinder, mesh
    box_half_range: tuple[float, float] = (0.012, 0.028)  # m, each half extent of a box (x, y)
    box_half_height_range: tuple[float, float] = (0.01, 0.03)
    cylinder_radius_range: tuple[float, float] = (0.014, 0.027)
    cylinder_half_height_range: tuple[float, float] = (0.01, 0.035)
    mesh_size_range: tuple[float, float] = (0.035, 0.055)  # m, a mesh's larger horizontal extent
    excluded_hues: tuple[float, float] = (0.10, 0.21)  # yellow (36-76 degrees): the held-out object's
    saturation_range: tuple[float, float] = (0.45, 1.0)
    value_range: tuple[float, float] = (0.35, 1.0)


MESHES = ("duck_vhacd.urdf", "teddy_vhacd.urdf", "jenga/jenga.urdf")


def draw_play_objects(rng: np.random.Generator, config: VariedObjectsConfig = VariedObjectsConfig()) -> dict[str, ObjectKind]:
    """One episode's objects, name -> kind: familiar cubes by name, generated ones as varied_<slot>."""
    kinds: dict[str, ObjectKind] = {}
    cubes = list(DEFAULT_OBJECTS)
    for slot in range(config.count):
        if cubes and rng.random() < config.default_share:
            name = cubes.pop(int(rng.integers(len(cubes))))
            kinds[name] = OBJECT_KINDS[name]
        else:
            kinds[f"varied_{slot}"] = generated_kind(rng, config)
    return kinds


def generated_kind(rng: np.random.Generator, config: VariedObjectsConfig = VariedObjectsConfig()) -> ObjectKind:
    colour = random_colour(rng, config)
    shape = rng.choice(("box", "cylinder", "mesh"), p=np.asarray(config.shape_weights) / sum(config.shape_weights))
    if shape == "box":
        dims = (*rng.uniform(*config.box_half_range, 2), rng.uniform(*config.box_half_height_range))
        return ObjectKind("box", colour, dims=tuple(float(d) for d in dims))
    if shape == "cylinder":
        dims = (rng.uniform(*config.cylinder_radius_range), rng.uniform(*config.cylinder_half_height_range))
        return ObjectKind("cylinder", colour, dims=tuple(float(d) for d in dims))
    mesh = MESHES[int(rng.integers(len(MESHES)))]
    return ObjectKind(mesh, colour, size=float(rng.uniform(*config.mesh_size_range)))


def random_colour(rng: np.random.Generator, config: VariedObjectsConfig = VariedObjectsConfig()) -> tuple[float, float, float, float]:
    """An opaque rgba whose hue is outside `excluded_hues`, drawn uniformly over the rest."""
    low, high = config.excluded_hues
    hue = rng.uniform(0.0, 1.0 - (high - low))
    if hue >= low:
        hue += high - low
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(*config.saturation_range), rng.uniform(*config.value_range))
    return (float(r), float(g), float(b), 1.0)


def resembles_heldout(kind: ObjectKind, config: VariedObjectsConfig = VariedObjectsConfig()) -> bool:
    """Whether a kind shares the held-out object's shape or hue (a play draw never should)."""
    heldout = OBJECT_KINDS[HELDOUT_OBJECT]
    hue = colorsys.rgb_to_hsv(*kind.rgba[:3])[0]
    return kind.urdf == heldout.urdf or config.excluded_hues[0] <= hue < config.excluded_hues[1]
