"""A Franka Panda on a table with a tray and small objects, seen by one fixed RGB camera.

PandaWorld implements robot_app.world.World, so collectors, evaluation and the ROS driver
use it exactly as they would use a real arm. Design section 3's action moves the gripper's
grasp target (link 11) in base_link by inverse kinematics at 10 Hz; the gripper always
points down and wz turns it about z. Physics runs at 120 Hz (12 substeps a control step):
scripted cube grasps held as well as at 240 Hz (30 of 30 at both) and a control step costs
about a third less; PandaWorld(physics_hz=240) gives the finer step.

Everything that makes a state (arm joints, gripper, object poses, the commanded target) is
in get_state(), a JSON-serialisable dict, and set_state() restores it exactly: goal suites
are built from such states and their images are pure functions of them, which is what makes
them reproducible bit for bit.

Rendering uses TinyRenderer (the CPU one; the EGL plugin was slower on llvmpipe). Most of
its time goes into the Panda's high-poly visual meshes, so by default the arm is drawn with
its collision meshes (`visuals="fast"`): about 4x faster at 64x64, nearly the same picture.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

from robot_app.camera import PinholeCamera
from robot_app.spec import (
    CONTROL_HZ,
    DEFAULT_SCALING,
    SUPPORTED_IMAGE_SIZES,
    ActionScaling,
    gripper_state_from_fingers,
)
from robot_app.world import ActionSpec, CameraIntrinsics, Observation, ObservationSpec, World

# --- scene constants (metres, radians, base_link = world frame; the table top is z = 0) ---
WORKSPACE_LOW = np.array([0.35, -0.22, 0.02])  # box the grasp target is clamped to
WORKSPACE_HIGH = np.array([0.70, 0.22, 0.25])
YAW_LIMIT = 1.4  # |gripper yaw| limit; cubes are square, so +-pi/4 is all a grasp needs
HOME_POSITION = np.array([0.45, 0.0, 0.22])  # centre of the start region of the gripper
PHYSICS_HZ = 120.0  # 240 works too (physics_hz=); 120 grasps as well and is ~1.5x faster
HELD_OFFSET_Z = 0.002  # a grasped cube's centre sits this far above the grasp target
HELD_DISTANCE = 0.04  # an object this close to the grasp target is between the fingers
STATE_VERSION = 1

TRAY_CENTER = np.array([0.64, 0.15])
TRAY_INNER_HALF = 0.065  # inner half width of the square tray
TRAY_WALL = (0.008, 0.03)  # wall thickness, wall height
OBJECT_REGION_LOW = np.array([0.40, -0.20])  # where objects start (minus the tray)
OBJECT_REGION_HIGH = np.array([0.68, 0.20])
MIN_OBJECT_SEPARATION = 0.085

ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget, between the fingertips
HAND_LINK = 8  # panda_hand; links below it never reach the table inside the workspace
FINGER_OPEN = 0.04  # per finger, metres
FINGER_FORCE = 40.0  # N; 20 N (the URDF's limit) also holds a cube, 40 N is margin
ARM_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
REST_POSE = (0.0, -0.35, 0.0, -2.3, 0.0, 1.95, 0.785)  # elbow up, hand down
JOINT_LOWER = (-2.9, -1.76, -2.9, -3.07, -2.9, -0.02, -2.9)
JOINT_UPPER = (2.9, 1.76, 2.9, -0.07, 2.9, 3.75, 2.9)


@dataclass(frozen=True)
class ObjectKind:
    """A graspable object: which pybullet_data URDF, how big, what colour.

    `size`, when given, replaces `scale`: the URDF is scaled so that its larger horizontal
    extent (at yaw 0) is `size` metres. Varied play objects (sim_worlds.play_objects) come
    from meshes of very different native sizes and must all fit the gripper.
    `urdf` may instead name a primitive, "box" (`dims`: half extents x, y, z) or "cylinder"
    (`dims`: radius, half height), built without a file.
    """

    urdf: str
    rgba: tuple[float, float, float, float]
    scale: float = 1.0
    size: float | None = None
    dims: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"urdf": self.urdf, "rgba": list(self.rgba), "scale": self.scale, "size": self.size, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectKind:
        """The kind `to_dict` wrote (a bag's `robot_app/objects`, a state's `object_kinds`)."""
        try:
            return cls(str(d["urdf"]), tuple(float(v) for v in d["rgba"]), float(d.get("scale", 1.0)),
                       None if d.get("size") is None else float(d["size"]), tuple(float(v) for v in d.get("dims", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"ObjectKind.from_dict: not an object kind ({exc}): {d!r}") from None


OBJECT_KINDS: dict[str, ObjectKind] = {
    "red_cube": ObjectKind("cube_small.urdf", (0.85, 0.12, 0.10, 1.0)),
    "green_cube": ObjectKind("cube_small.urdf", (0.10, 0.70, 0.20, 1.0)),
    "blue_cube": ObjectKind("cube_small.urdf", (0.12, 0.25, 0.90, 1.0)),
    # The held-out object (design section 8): no play collector ever sees it.
    "yellow_lego": ObjectKind("lego/lego.urdf", (0.95, 0.85, 0.10, 1.0), scale=1.5),
}
DEFAULT_OBJECTS = ("red_cube", "green_cube", "blue_cube")
PRIMITIVES = ("box", "cylinder")  # ObjectKind.urdf values built from dims, not loaded
PRIMITIVE_MASS = 0.1  # kg, as cube_small.urdf
# pybullet never frees a removed body's shapes (removeCollisionShape refuses: "it is used"):
# measured, each load costs ~4 KB for a primitive and ~58 KB for a mesh. set_objects starts a
# fresh client after this many loads, which bounds a long collection's memory (~35 MB).
LOADS_PER_CLIENT = 600
HELDOUT_OBJECT = "yellow_lego"

# Fixed camera in front of the table, looking down at the workspace: it sees the height of
# the gripper (which a top-down view would hide) and every object across the workspace.
CAMERA_EYE = (0.95, 0.0, 1.05)
CAMERA_TARGET = (0.40, 0.0, 0.05)
CAMERA_UP = (0.0, 0.0, 1.0)
CAMERA_FOV_DEG = 36.0
CAMERA_NEAR, CAMERA_FAR = 0.05, 3.0
TABLE_RGBA = (0.62, 0.52, 0.40, 1.0)
TRAY_RGBA = (0.35, 0.35, 0.38, 1.0)


_STDOUT_LOCK = threading.Lock()  # one fd-1 redirection at a time, or a thread could restore /dev/null


def _connect_quietly() -> BulletClient:
    """A DIRECT pybullet client, without the "argv[0]=" its C code prints on stdout at
    every connect (it would land in the middle of `robot-app collect`'s or the demo's output).

    fd 1 points at /dev/null for the few milliseconds of the connect, and C's stdout buffer
    is flushed before it is restored (into a pipe, printf only buffers). Where any of that is
    unavailable (no libc through ctypes, no fd 1) the client connects unsilenced. What another
    thread writes to fd 1 during those milliseconds is lost too; nodes log to stderr.
    """

    def connect() -> BulletClient:
        return BulletClient(connection_mode=pybullet.DIRECT)

    with _STDOUT_LOCK:
        try:
            flush_c = ctypes.CDLL(None).fflush
            if sys.stdout is not None:
                sys.stdout.flush()
            flush_c(None)
            saved = os.dup(1)
        except (OSError, AttributeError, TypeError, ValueError):  # no libc, a closed stdout, no fd 1
            return connect()
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            os.close(saved)
            return connect()
        try:
            os.dup2(devnull, 1)
            return connect()
        finally:
            flush_c(None)
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)


def _fast_panda_urdf() -> str:
    """Path of a Panda URDF whose visual meshes are its collision meshes.

    Written once into a cache directory (keyed by the stock URDF's hash, renamed into place
    atomically so parallel processes do not race), with absolute mesh paths so it loads from
    anywhere.
    """
    data = Path(pybullet_data.getDataPath()) / "franka_panda"
    text = (data / "panda.urdf").read_text()
    fast = text.replace("package://meshes/visual/", "package://meshes/collision/")
    fast = fast.replace("package://meshes/", f"{data.as_posix()}/meshes/")
    digest = hashlib.sha256(fast.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robot_app"
    path = cache / f"panda_fast_{digest}.urdf"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".urdf")
        with os.fdopen(fd, "w") as f:
            f.write(fast)
        os.replace(tmp, path)
    return str(path)


def gripper_down_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Orientation of the grasp target pointing straight down, turned by `yaw` about z.

    The fingers then close along the direction at angle yaw - pi/2, so a cube turned by
    theta is gripped square when yaw = theta (mod pi/2).
    """
    return tuple(pybullet.getQuaternionFromEuler((math.pi, 0.0, yaw)))


def square_yaw(object_yaw: float) -> float:
    """The gripper yaw nearest zero that grips a square-footed object square (mod pi/2)."""
    return (object_yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


def quaternion_yaw(quaternion) -> float:
    """Yaw (rotation about z) of a quaternion (x, y, z, w)."""
    x, y, z, w = quaternion
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class PandaWorld(World):
    """The simulated arm. One pybullet client per instance (DIRECT, no GUI)."""

    def __init__(
        self,
        image_size: int = 64,
        seed: int = 0,
        objects: tuple[str, ...] | None = None,
        heldout: bool = False,
        *,
        visuals: str = "fast",
        physics_hz: float = PHYSICS_HZ,
        scaling: ActionScaling = DEFAULT_SCALING,
    ):
        if image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"PandaWorld: image_size {image_size} is not supported; use one of {SUPPORTED_IMAGE_SIZES}"
            )
        if visuals not in ("fast", "stock"):
            raise ValueError(f"PandaWorld: visuals must be 'fast' or 'stock', got {visuals!r}")
        names = tuple(DEFAULT_OBJECTS if objects is None else objects)
        unknown = [n for n in names if n not in OBJECT_KINDS]
        if unknown:
            raise ValueError(f"PandaWorld: unknown object(s) {unknown}; known: {sorted(OBJECT_KINDS)}")
        if HELDOUT_OBJECT in names:
            raise ValueError(
                f"PandaWorld: pass heldout=True to add the held-out object {HELDOUT_OBJECT!r}, not objects="
            )
        if len(set(names)) != len(names):
            raise ValueError(f"PandaWorld: duplicate object names in {names}")
        self.object_names: tuple[str, ...] = ()
        self.object_kinds: dict[str, ObjectKind] = {}
        self.heldout = heldout
        self.image_size = image_size
        self.visuals = visuals
        self.scaling = scaling
        self.physics_hz = float(physics_hz)
        self.substeps = max(1, round(self.physics_hz / CONTROL_HZ))
        self._seed = seed
        self._client: BulletClient | None = None
        self._start_client()
        self._load_objects({n: OBJECT_KINDS[n] for n in names + ((HELDOUT_OBJECT,) if heldout else ())})
        self.joint_names = tuple(self._joint_name(j) for j in ARM_JOINTS + FINGER_JOINTS)
        self.observation_spec = ObservationSpec((image_size, image_size, 3), self.joint_names)
        self.action_spec = ActionSpec()
        self._view = self._p.computeViewMatrix(CAMERA_EYE, CAMERA_TARGET, CAMERA_UP)
        self._proj = self._p.computeProjectionMatrixFOV(CAMERA_FOV_DEG, 1.0, CAMERA_NEAR, CAMERA_FAR)
        self._time = 0.0
        self._obs: Observation | None = None
        self.reset(seed)

    # --- construction ---
    @property
    def _p(self) -> BulletClient:
        if self._client is None:
            raise RuntimeError("PandaWorld: used after close()")
        return self._client

    def _start_client(self) -> None:
        """A fresh pybullet client with the table, tray and arm, and no objects yet."""
        self._client = _connect_quietly()
        self._native_extents: dict[str, tuple[float, float]] = {}
        self._bodies: dict[str, int] = {}
        self._loads = 0
        self._build_scene()

    def _build_scene(self) -> None:
        p = self._p
        p.setAdditionalSearchPath(pybullet_data.getDataPath())
        p.setGravity(0, 0, -9.81)
        p.setTimeStep(1.0 / self.physics_hz)
        # Bullet solves contacts in the order of its overlapping-pair cache, which is a hash
        # table whose order depends on every body that ever touched another in this client.
        # Unsorted, an episode's physics depended on the episodes this world ran before it:
        # `collect --workers 2` gave other episodes than one worker for the same seeds (25
        # against 24 successes of 50), and an evaluation task's outcome depended on the tasks
        # before it in the suite. Sorted pairs make every episode a function of its seed alone,
        # for about 3% of the step rate (bench_sim.py: 479 against 492 steps/s, medians of 7
        # interleaved rounds whose ranges overlap).
        p.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self._table = self._box((0.45, 0.0, -0.025), (0.75, 0.75, 0.025), TABLE_RGBA)
        self._build_tray()
        urdf = _fast_panda_urdf() if self.visuals == "fast" else "franka_panda/panda.urdf"
        self._panda = p.loadURDF(
            urdf, (0, 0, 0), useFixedBase=True, flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES
        )
        for j in FINGER_JOINTS:
            p.changeDynamics(self._panda, j, lateralFriction=1.5, spinningFriction=0.01)
        # Only the hand and fingers can reach the table inside the workspace; the base sits on
        # it. Skipping those pairs saves ~30% of the physics time (contacts every substep).
        for link in range(-1, HAND_LINK):
            p.setCollisionFilterPair(self._table, self._panda, -1, link, 0)

    def set_objects(self, kinds: dict[str, ObjectKind]) -> None:
        """Replace every object on the table by `kinds` (name -> kind); call reset() next.

        Play collection with varied objects swaps them per episode in one world (a load
        costs about a millisecond; a new world costs a connection and the arm). The
        held-out object stays out of this door as out of the constructor's.
        """
        if HELDOUT_OBJECT in kinds or any(k.urdf == OBJECT_KINDS[HELDOUT_OBJECT].urdf for k in kinds.values()):
            raise ValueError(f"PandaWorld.set_objects: the held-out object ({HELDOUT_OBJECT!r}, its shape) is not allowed")
        if not kinds:
            raise ValueError("PandaWorld.set_objects: at least one object is needed")
        if self.heldout:
            raise ValueError("PandaWorld.set_objects: a world with the held-out object keeps its scene")
        if self._loads + len(kinds) > LOADS_PER_CLIENT:
            self._client.disconnect()
            self._start_client()
        for body in self._bodies.values():
            self._p.removeBody(body)
        self._load_objects(dict(kinds))

    def _load_objects(self, kinds: dict[str, ObjectKind]) -> None:
        p = self._p
        self._bodies, self._rest_z, self._half_width = {}, {}, {}
        self._loads += len(kinds)
        for name, kind in kinds.items():
            body = self._load_object(kind)
            p.changeVisualShape(body, -1, rgbaColor=kind.rgba)
            p.changeDynamics(body, -1, lateralFriction=1.2)
            self._bodies[name] = body
            low, high = p.getAABB(body)
            self._rest_z[name] = 0.5 - low[2]
            self._half_width[name] = (high[1] - low[1]) / 2
        self.object_kinds = kinds
        self.object_names = tuple(kinds)
        self._obs = None

    def _load_object(self, kind: ObjectKind) -> int:
        """A body for `kind`, at (0, 0, 0.5): from its URDF or, for a primitive, from `dims`."""
        p = self._p
        if kind.urdf not in PRIMITIVES:
            return p.loadURDF(kind.urdf, (0, 0, 0.5), globalScaling=self._scale_of(kind))
        if kind.urdf == "box":
            shape = {"shapeType": p.GEOM_BOX, "halfExtents": list(kind.dims)}
            collision = p.createCollisionShape(**shape)
        else:
            radius, half_height = kind.dims
            shape = {"shapeType": p.GEOM_CYLINDER, "radius": radius}
            collision = p.createCollisionShape(**shape, height=2 * half_height)
            shape["length"] = 2 * half_height  # the visual shape's name for the same thing
        visual = p.createVisualShape(**shape, rgbaColor=kind.rgba)
        return p.createMultiBody(PRIMITIVE_MASS, collision, visual, basePosition=(0, 0, 0.5))

    def _scale_of(self, kind: ObjectKind) -> float:
        if kind.size is None:
            return kind.scale
        if kind.urdf not in self._native_extents:
            body = self._p.loadURDF(kind.urdf, (0, 0, 0.5))
            low, high = self._p.getAABB(body)
            self._p.removeBody(body)
            self._native_extents[kind.urdf] = (high[0] - low[0], high[1] - low[1])
        return kind.size / max(self._native_extents[kind.urdf])

    def _box(self, center, half, rgba, mass: float = 0.0) -> int:
        p = self._p
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba)
        return p.createMultiBody(mass, col, vis, basePosition=center)

    def _build_tray(self) -> None:
        """A static square tray of five boxes: the place-into goals of the chain family."""
        cx, cy = TRAY_CENTER
        half, (thick, height) = TRAY_INNER_HALF, TRAY_WALL
        outer = half + thick
        self._box((cx, cy, 0.002), (outer, outer, 0.002), TRAY_RGBA)
        for sx, sy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            hx, hy = (thick / 2, outer) if sx else (outer, thick / 2)
            self._box(
                (cx + sx * (half + thick / 2), cy + sy * (half + thick / 2), height / 2),
                (hx, hy, height / 2),
                TRAY_RGBA,
            )

    def _joint_name(self, j: int) -> str:
        return self._p.getJointInfo(self._panda, j)[1].decode()

    # --- World interface ---
    def reset(self, seed: int | None = None) -> Observation:
        """Arm at a random pose above the table, gripper open, objects at random places.

        The start state is a pure function of the seed (no physics is stepped to build it),
        so the same seed gives the same state in any world, whatever it did before; with the
        contact pairs sorted (_build_scene), so do the steps that follow the same actions.
        """
        if seed is None:
            seed = self._seed
            self._seed += 1
        rng = np.random.default_rng(seed)
        start = HOME_POSITION + rng.uniform((-0.06, -0.15, -0.03), (0.06, 0.15, 0.03))
        yaw = float(rng.uniform(-0.5, 0.5))
        places = sample_object_places(rng, len(self.object_names))
        for name, (x, y, theta) in zip(self.object_names, places, strict=True):
            self.place_object(name, (x, y, self._rest_z[name]), theta)
        self._time = 0.0
        self.place_arm(start, yaw, grip=0.0)
        return self._observe()

    def observe(self) -> Observation:
        return self._obs if self._obs is not None else self._observe()

    def act(self, action: np.ndarray) -> Observation:
        """Move the grasp target by the action's displacement (clamped to the workspace)."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.action_spec.dim,) or not np.all(np.isfinite(a)):
            raise ValueError(
                f"PandaWorld.act: action must be {self.action_spec.dim} finite numbers, got {action!r}"
            )
        delta, dyaw = self.scaling.step_displacement(a)
        _, _, grip = self.scaling.to_command(a)
        self._target = np.clip(self._target + delta, WORKSPACE_LOW, WORKSPACE_HIGH)
        self._yaw = float(np.clip(self._yaw + dyaw, -YAW_LIMIT, YAW_LIMIT))
        self._grip = grip
        self._command_arm(self._solve_ik(self._target, self._yaw))
        for _ in range(self.substeps):
            self._p.stepSimulation()
        self._time += self.substeps / self.physics_hz
        return self._observe()

    def halt(self) -> None:
        """Hold the arm where it is now: the commanded target becomes the measured pose."""
        self._target = np.clip(self.ee_position(), WORKSPACE_LOW, WORKSPACE_HIGH)
        self._arm_targets = [s[0] for s in self._p.getJointStates(self._panda, ARM_JOINTS)]
        self._command_arm(self._arm_targets)

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    @property
    def camera_intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the OpenGL projection (vertical FOV, square pixels)."""
        f = (self.image_size / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
        c = self.image_size / 2
        return CameraIntrinsics(self.image_size, self.image_size, f, f, c, c)

    # --- state ---
    def get_state(self) -> dict:
        """Everything needed to restore this moment exactly, as plain JSON types."""
        p = self._p
        joints = p.getJointStates(self._panda, ARM_JOINTS + FINGER_JOINTS)
        objects = {}
        for name, body in self._bodies.items():
            pos, orn = p.getBasePositionAndOrientation(body)
            lin, ang = p.getBaseVelocity(body)
            objects[name] = {
                "position": list(pos),
                "orientation": list(orn),
                "linear_velocity": list(lin),
                "angular_velocity": list(ang),
            }
        return {
            "version": STATE_VERSION,
            "time": self._time,
            "joint_positions": [s[0] for s in joints],
            "joint_velocities": [s[1] for s in joints],
            "target": [float(v) for v in self._target],
            "yaw": self._yaw,
            "grip": self._grip,
            "arm_targets": [float(v) for v in self._arm_targets],
            "objects": objects,
            "object_kinds": {name: kind.to_dict() for name, kind in self.object_kinds.items()},
        }

    def set_state(self, state: dict) -> Observation:
        """Restore a state from get_state() (or built by a goal suite) and observe it.

        A state that names its `object_kinds` (every get_state since varied play) brings its
        objects along: a varied scene restores into any world that may swap objects, not only
        into one that happens to hold the same kinds. Without them, the world's own must match.
        """
        kinds = self._check_state(state)
        if kinds is not None and kinds != self.object_kinds:
            self.set_objects(kinds)
        p = self._p
        for j, q, v in zip(
            ARM_JOINTS + FINGER_JOINTS, state["joint_positions"], state["joint_velocities"], strict=True
        ):
            p.resetJointState(self._panda, j, q, v)
        for name, o in state["objects"].items():
            body = self._bodies[name]
            p.resetBasePositionAndOrientation(body, o["position"], o["orientation"])
            p.resetBaseVelocity(body, o["linear_velocity"], o["angular_velocity"])
        self._time = float(state["time"])
        self._target = np.array(state["target"], dtype=np.float64)
        self._yaw = float(state["yaw"])
        self._grip = float(state["grip"])
        self._command_arm(list(state["arm_targets"]))
        return self._observe()

    def _check_state(self, state: dict) -> dict[str, ObjectKind] | None:
        """Everything wrong with `state`, raised before the world changes; its object kinds if it names them."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"PandaWorld.set_state: not a version-{STATE_VERSION} state dict")
        missing = [
            k
            for k in (
                "time",
                "joint_positions",
                "joint_velocities",
                "target",
                "yaw",
                "grip",
                "arm_targets",
                "objects",
            )
            if k not in state
        ]
        if missing:
            raise ValueError(f"PandaWorld.set_state: state lacks {missing}")
        n = len(ARM_JOINTS + FINGER_JOINTS)
        if len(state["joint_positions"]) != n or len(state["joint_velocities"]) != n:
            raise ValueError(f"PandaWorld.set_state: expected {n} joint positions and velocities")
        if isinstance(state.get("object_kinds"), dict):
            kinds = {str(name): ObjectKind.from_dict(d) for name, d in state["object_kinds"].items()}
            if set(kinds) != set(state["objects"]):
                raise ValueError(f"PandaWorld.set_state: the state's object_kinds {sorted(kinds)} and its objects "
                                 f"{sorted(state['objects'])} differ")
            return kinds
        if set(state["objects"]) != set(self.object_names):
            raise ValueError(
                f"PandaWorld.set_state: the state has objects {sorted(state['objects'])} but this world has "
                f"{sorted(self.object_names)}; create the world with matching objects/heldout"
            )
        return None

    # --- direct placement (used by reset, goal suites and held starts) ---
    def place_object(self, name: str, position, yaw: float = 0.0) -> None:
        """Put an object at rest at `position` turned by `yaw` about z."""
        if name not in self._bodies:
            raise ValueError(f"PandaWorld: no object {name!r} in this world (has {list(self._bodies)})")
        body = self._bodies[name]
        self._p.resetBasePositionAndOrientation(
            body, list(position), self._p.getQuaternionFromEuler((0, 0, yaw))
        )
        self._p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))
        self._obs = None

    def place_arm(self, position, yaw: float, grip: float) -> Observation:
        """Teleport the arm so its grasp target is at `position`, at rest, and observe.

        IK starts from the fixed rest pose every time, so the result depends only on the
        arguments (not on where the arm was).
        """
        p = self._p
        target = np.clip(np.asarray(position, dtype=np.float64), WORKSPACE_LOW, WORKSPACE_HIGH)
        yaw = float(np.clip(yaw, -YAW_LIMIT, YAW_LIMIT))
        for j, q in zip(ARM_JOINTS, REST_POSE, strict=True):
            p.resetJointState(self._panda, j, q, 0.0)
        for _ in range(4):
            q = self._solve_ik(target, yaw)
            for j, v in zip(ARM_JOINTS, q, strict=True):
                p.resetJointState(self._panda, j, v, 0.0)
        finger = FINGER_OPEN * (1.0 - grip)
        for j in FINGER_JOINTS:
            p.resetJointState(self._panda, j, finger, 0.0)
        self._target, self._yaw, self._grip = target, yaw, float(grip)
        self._command_arm(list(q))
        return self._observe()

    def place_held(self, name: str, position, yaw: float) -> Observation:
        """Teleport the arm to `position` holding object `name` between closed fingers.

        Builds the "grasped" goal states and the held starts of the carrying collectors;
        the commanded grip is closed, so the first physics step squeezes and keeps it.
        """
        if name not in self._bodies:
            raise ValueError(f"PandaWorld: no object {name!r} in this world (has {list(self._bodies)})")
        self.place_arm(position, yaw, grip=1.0)
        finger = self._half_width[name]
        for j in FINGER_JOINTS:
            self._p.resetJointState(self._panda, j, finger, 0.0)
        self.place_object(name, self.ee_position() + (0.0, 0.0, HELD_OFFSET_Z), self._yaw)
        return self._observe()

    def is_held(self, name: str, min_lift: float = 0.05) -> bool:
        """Whether object `name` is between the fingers and at least `min_lift` above its rest height."""
        position = self.object_positions()[name]
        near = np.linalg.norm(position - self.ee_position()) < HELD_DISTANCE
        return bool(near and position[2] >= self._rest_z[name] + min_lift)

    def rest_height(self, name: str) -> float:
        """Height of an object's centre when it rests on the table."""
        return self._rest_z[name]

    # --- control ---
    def _solve_ik(self, target, yaw: float) -> list[float]:
        q = self._p.calculateInverseKinematics(
            self._panda,
            EE_LINK,
            list(target),
            gripper_down_quaternion(yaw),
            lowerLimits=JOINT_LOWER,
            upperLimits=JOINT_UPPER,
            jointRanges=[u - lo for u, lo in zip(JOINT_UPPER, JOINT_LOWER, strict=True)],
            restPoses=REST_POSE,
            maxNumIterations=40,
            residualThreshold=1e-5,
        )
        return list(q[: len(ARM_JOINTS)])

    def _command_arm(self, arm_targets: list[float]) -> None:
        p = self._p
        self._arm_targets = [float(v) for v in arm_targets]
        p.setJointMotorControlArray(
            self._panda, ARM_JOINTS, p.POSITION_CONTROL, targetPositions=self._arm_targets, forces=ARM_FORCES
        )
        finger = FINGER_OPEN * (1.0 - self._grip)
        p.setJointMotorControlArray(
            self._panda,
            FINGER_JOINTS,
            p.POSITION_CONTROL,
            targetPositions=[finger, finger],
            forces=[FINGER_FORCE] * 2,
        )
        self._obs = None

    # --- observation ---
    def render(self) -> np.ndarray:
        """Camera image of the current state, uint8 HxWx3 (a pure function of the state)."""
        size = self.image_size
        _, _, rgba, _, _ = self._p.getCameraImage(
            size,
            size,
            self._view,
            self._proj,
            renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK,
            shadow=0,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3].copy()

    def ee_position(self) -> np.ndarray:
        return np.array(self._p.getLinkState(self._panda, EE_LINK, computeForwardKinematics=True)[4])

    def ee_yaw(self) -> float:
        return quaternion_yaw(self._p.getLinkState(self._panda, EE_LINK, computeForwardKinematics=True)[5])

    def object_positions(self) -> dict[str, np.ndarray]:
        return {
            name: np.array(self._p.getBasePositionAndOrientation(b)[0]) for name, b in self._bodies.items()
        }

    def object_yaw(self, name: str) -> float:
        return quaternion_yaw(self._p.getBasePositionAndOrientation(self._bodies[name])[1])

    def finger_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self._p.getJointStates(self._panda, FINGER_JOINTS)])

    def _observe(self) -> Observation:
        """Render once and cache: observe() between control steps costs nothing."""
        p = self._p
        joints = p.getJointStates(self._panda, ARM_JOINTS + FINGER_JOINTS)
        link = p.getLinkState(self._panda, EE_LINK, computeForwardKinematics=True)
        positions = np.array([s[0] for s in joints])
        self._obs = Observation(
            image=self.render(),
            gripper=gripper_state_from_fingers(positions[-2:]),
            ee_position=np.array(link[4]),
            ee_orientation=np.array(link[5]),
            joint_names=self.joint_names,
            joint_positions=positions,
            joint_velocities=np.array([s[1] for s in joints]),
            stamp=self._time,
        )
        return self._obs


def sample_object_places(
    rng: np.random.Generator, n: int, avoid: list | None = None
) -> list[tuple[float, float, float]]:
    """n random (x, y, yaw) places on the table, apart from each other, off the tray."""
    places: list[tuple[float, float, float]] = []
    taken = [np.asarray(a, dtype=np.float64)[:2] for a in (avoid or [])]
    for _ in range(n):
        for _attempt in range(1000):
            xy = rng.uniform(OBJECT_REGION_LOW, OBJECT_REGION_HIGH)
            if is_free_table_place(xy, taken):
                break
        else:
            raise RuntimeError("sample_object_places: could not fit the objects on the table")
        taken.append(xy)
        places.append((float(xy[0]), float(xy[1]), float(rng.uniform(-math.pi / 4, math.pi / 4))))
    return places


def is_free_table_place(xy, taken) -> bool:
    """Off the tray (with margin) and MIN_OBJECT_SEPARATION away from every place in `taken`."""
    xy = np.asarray(xy, dtype=np.float64)[:2]
    if np.all(np.abs(xy - TRAY_CENTER) < TRAY_INNER_HALF + TRAY_WALL[0] + 0.04):
        return False
    if np.any(xy < OBJECT_REGION_LOW) or np.any(xy > OBJECT_REGION_HIGH):
        return False
    return all(np.linalg.norm(xy - np.asarray(t)[:2]) >= MIN_OBJECT_SEPARATION for t in taken)


def tray_place(rng: np.random.Generator, spread: float) -> np.ndarray:
    """A random xy over the tray floor, at most `spread` (0..1) of the way from its centre to
    its inner walls: a margin so that an object put there clears the walls."""
    return TRAY_CENTER + rng.uniform(-spread, spread, 2) * TRAY_INNER_HALF


def sim_camera(image_size: int) -> PinholeCamera:
    """The simulator camera's pinhole model (pixels <-> base frame) at an image size."""
    return PinholeCamera(CAMERA_EYE, CAMERA_TARGET, CAMERA_UP, CAMERA_FOV_DEG, image_size)


def in_tray(position) -> bool:
    """Whether a point lies over the tray's floor, inside its walls."""
    return bool(np.all(np.abs(np.asarray(position, dtype=np.float64)[:2] - TRAY_CENTER) < TRAY_INNER_HALF))


__all__ = [
    "DEFAULT_OBJECTS",
    "HELDOUT_OBJECT",
    "OBJECT_KINDS",
    "ObjectKind",
    "PandaWorld",
    "WORKSPACE_HIGH",
    "WORKSPACE_LOW",
    "YAW_LIMIT",
    "gripper_down_quaternion",
    "in_tray",
    "is_free_table_place",
    "sample_object_places",
    "sim_camera",
    "square_yaw",
]
