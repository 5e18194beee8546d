"""The torch-free policy runtime: an exported Q-function, its model card, CEM over onnxruntime.

A robot computer needs only numpy and onnxruntime to act. `Policy.load` refuses anything
that does not match the ONNX contract of design section 6 (inputs `image`, `goal`,
`gripper`, `actions`; output `q`), whose card is missing or invalid, or whose graph is not
the one the card was written for (sha256), so a model never runs with the wrong image
size, action scaling or CEM settings without anyone noticing.

`gripper` is the robot's proprioception, float32 [B, P]: P = 1 is design section 6's
gripper state; P = 2 adds the end effector height (/ 0.25 m) for a model whose card says
`network.height_input` (QT-Opt's state; robot_app.spec.RobotState says why). Callers
pass a RobotState and the runtime builds what the card asks for, so a model that needs the
height refuses to act without it instead of guessing.

Speed: CEM scores its samples in `iterations` calls, and the convolutional trunk only
depends on (image, goal). When the `onnx` package is importable the runtime splits the
verified graph at the boundary where state-only tensors meet action-dependent ones, and
runs the trunk once per action and only the small head per CEM iteration. The split is
checked against the whole graph at load; without `onnx`, or if the check fails, the whole
graph runs each iteration (same result, slower).

Per action on one core (issue 5) the three head runs are ~70% of the time and already
run at the CPU's float32 GEMM peak, so the rest is overhead to cut (robot_app.policy_graphs):
when the head is the QT-Opt MLP of training/networks.py the whole action, CEM included,
runs as one onnxruntime graph fed the CEM noise; any other split head runs bound to fixed
numpy buffers with CEM in numpy. Both are checked at load against the split graph. The
numbers: bench/bench_policy_latency.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from robot_app.cem import CEMSettings, cem_maximize, draw_noise
from robot_app.goal_proposal import GoalProposer
from robot_app.policy_graphs import FusedCEM, SplitRunner, cem_graph, mlp_layers
from robot_app.spec import ACTION_DIM, ActionScaling, RobotState, check_image, proprio_vector, proprio_width

CARD_FORMAT_VERSION = 1
OPSET = 17  # the legacy torch exporter's opset: one self-contained file
INPUT_NAMES = ("image", "goal", "gripper", "actions")
OUTPUT_NAME = "q"
# name -> (onnxruntime element type, shape with None for a dynamic dimension); H, W from the card
_INPUT_TYPES = {
    "image": "tensor(uint8)",
    "goal": "tensor(uint8)",
    "gripper": "tensor(float)",
    "actions": "tensor(float)",
}
# Where a bare model name is looked up: ./models first, then the repository's models/.
MODELS_DIRS = (Path("models"), Path(__file__).resolve().parents[1] / "models")


class PolicyLoadError(ValueError):
    """A model or card that does not match the contract; the message names file and problem."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """What a deployed model needs besides its weights, and where it came from."""

    onnx_sha256: str  # sha256 of the .onnx file; a mismatch means tampered or replaced
    image_size: int  # square camera frames the graph takes
    action_scaling: ActionScaling  # normalised action -> physical command
    cem: CEMSettings  # how the runtime maximises Q over actions
    algo: str  # "am", "am-nonneg", "am-nochain", "gcbc", "gcivl" (and fine-tuned variants)
    training_steps: int  # gradient steps of the exported checkpoint
    data_manifest_hash: str  # the training store's manifest hash
    onnx_file: str = ""  # the graph's file name, next to the card
    opset: int = OPSET
    network: dict = field(default_factory=dict)  # NetworkConfig.to_dict() of the trained net
    source: str = ""  # run directory and checkpoint it was exported from
    evaluation: dict | None = None  # `robot-app eval --write-card` results
    task: str = ""  # a fine-tuned task model's task (e.g. "grasp-heldout"); "" for goal-conditioned models
    goal_image: str = ""  # a task model's goal image file beside the card, fed as `goal` (training/finetune.py)
    goal_image_sha256: str = ""  # its sha256: a replaced picture would silently change the task ("" = unchecked, older cards)
    # A task model that proposes its goal per scene (robot_app.goal_proposal.GoalProposer):
    # localiser graph, goal bank, camera and grasp height. Its goal_image is then only a
    # representative picture for a chooser; the goal fed is proposed from the first frame.
    goal_proposer: dict = field(default_factory=dict)
    format_version: int = CARD_FORMAT_VERSION
    # Keys this runtime does not read (a person's notes, a newer writer's fields): not a key of
    # its own in the JSON; kept so that rewriting a card (eval --write-card) loses nothing.
    extra: dict = field(default_factory=dict)

    @property
    def height_input(self) -> bool:
        """Whether the graph's `gripper` input also carries the end effector's height (network.height_input)."""
        return bool(self.network.get("height_input", False))

    @property
    def q_means_reached(self) -> bool:
        """Whether `q` is a probability of reaching the goal, so that a high q says it is reached.

        True for Q-learning (AM, its ablations and fine-tuned task models). A cloned policy's
        exported `q` (training/gcbc.py BCScorer, also GCIVL's) only scores how close an action is to the
        policy's own, and is near 1 at the action CEM finds in every state: a Q threshold
        would stop it after a few steps, wherever the arm is.
        """
        return not self.algo.startswith(("gcbc", "gcivl"))

    @property
    def proprio_dim(self) -> int:
        """Width of the graph's `gripper` input: 1 (gripper state) or 2 (and the height)."""
        return proprio_width(self.height_input)

    def to_dict(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        d["action_scaling"] = self.action_scaling.to_dict()
        d["cem"] = self.cem.to_dict()
        return {**extra, **d}

    @classmethod
    def from_dict(cls, d: dict, where: str = "model card") -> ModelCard:
        if not isinstance(d, dict):
            raise PolicyLoadError(f"{where}: expected a JSON object, got {type(d).__name__}")
        required = ("onnx_sha256", "image_size", "action_scaling", "cem", "algo", "training_steps", "data_manifest_hash")
        missing = [k for k in required if k not in d]
        if missing:
            raise PolicyLoadError(f"{where}: missing field(s) {', '.join(missing)}")
        version = d.get("format_version", CARD_FORMAT_VERSION)
        if version != CARD_FORMAT_VERSION:
            raise PolicyLoadError(f"{where}: card format_version {version}, this runtime reads {CARD_FORMAT_VERSION}")
        try:
            card = cls(
                onnx_sha256=_hex64(d["onnx_sha256"]),
                image_size=_positive_int(d["image_size"], "image_size"),
                action_scaling=_scaling(d["action_scaling"]),
                cem=_cem(d["cem"]),
                algo=_string(d["algo"], "algo"),
                training_steps=_nonnegative_int(d["training_steps"], "training_steps"),
                data_manifest_hash=_string(d["data_manifest_hash"], "data_manifest_hash"),
                onnx_file=_file_name(d.get("onnx_file", "")),
                opset=_positive_int(d.get("opset", OPSET), "opset"),
                network=_network(d.get("network")),
                source=_string(d.get("source", ""), "source", empty_ok=True),
                evaluation=d.get("evaluation"),
                task=_string(d.get("task", ""), "task", empty_ok=True),
                goal_image=_string(d.get("goal_image", ""), "goal_image", empty_ok=True),
                goal_image_sha256=_hex64(d["goal_image_sha256"], "goal_image_sha256") if d.get("goal_image_sha256") else "",
                goal_proposer=_object(d["goal_proposer"], "goal_proposer", dict) if d.get("goal_proposer") else {},
                extra={k: v for k, v in d.items() if k not in _CARD_KEYS},
            )
        except (TypeError, ValueError) as exc:
            raise PolicyLoadError(f"{where}: {exc}") from None
        return card

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelCard:
        path = Path(path)
        if not path.is_file():
            raise PolicyLoadError(f"{path}: model card not found (every .onnx needs its .json card beside it)")
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyLoadError(f"{path}: model card is not valid JSON ({exc})") from None
        return cls.from_dict(d, where=str(path))

    def write(self, path: str | os.PathLike) -> None:
        """Atomic write, so a reader never sees half a card."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def with_evaluation(self, evaluation: dict) -> ModelCard:
        return replace(self, evaluation=evaluation)


_CARD_KEYS = frozenset(f.name for f in fields(ModelCard)) - {"extra"}


def _hex64(v, name: str = "onnx_sha256") -> str:
    if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ValueError(f"{name} must be 64 lowercase hex digits, got {v!r}")
    return v


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v


def _nonnegative_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return v


def _string(v, name: str, empty_ok: bool = False) -> str:
    if not isinstance(v, str) or (not v and not empty_ok):
        raise ValueError(f"{name} must be a {'' if empty_ok else 'non-empty '}string, got {v!r}")
    return v


def _file_name(v) -> str:
    """The graph sits beside its card: a bare file name, never a path elsewhere."""
    if not isinstance(v, str) or (v and (Path(v).name != v or not v.endswith(".onnx"))):
        raise ValueError(f"onnx_file must be a file name ending in .onnx beside the card, got {v!r}")
    return v


def _object(d, name: str, parse):
    """parse(d) for a JSON object; a card with a list or a number there is refused by name."""
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be an object, got {d!r}")
    return parse(d)


def _scaling(d) -> ActionScaling:
    scaling = _object(d, "action_scaling", ActionScaling.from_dict)
    if min(scaling.max_linear_speed, scaling.max_angular_speed, scaling.control_hz) <= 0:
        raise ValueError(f"action_scaling values must be positive, got {scaling.to_dict()}")
    return scaling


def _network(d) -> dict:
    """The trained network's config; its height_input, which sets the graph's inputs, must be a bool."""
    network = dict(d or {})
    if not isinstance(network.get("height_input", False), bool):
        raise ValueError(f"network.height_input must be true or false, got {network['height_input']!r}")
    return network


def _cem(d) -> CEMSettings:
    cem = _object(d, "cem", CEMSettings.from_dict)
    if cem.samples < 1 or not 1 <= cem.elites <= cem.samples or cem.iterations < 1 or cem.min_std < 0:
        raise ValueError(f"cem settings are inconsistent: {cem.to_dict()}")
    return cem


def resolve_model(path: str | os.PathLike) -> tuple[Path, Path]:
    """(onnx path, card path) for a path to either file, or a bare name looked up in models/."""
    p = Path(path)
    candidates = [p] if p.suffix in (".onnx", ".json") else []
    if p.parent == Path("."):  # a bare name: models/NAME.onnx (or models/NAME.json)
        candidates += [d / (p.name if p.suffix else f"{p.name}.onnx") for d in MODELS_DIRS]
    elif not p.suffix:
        candidates.append(p.with_name(f"{p.name}.onnx"))
    for c in candidates:
        if c.suffix == ".json" and c.is_file():
            card = ModelCard.read(c)
            return c.parent / (card.onnx_file or f"{c.stem}.onnx"), c
        if c.suffix == ".onnx" and c.is_file():
            return c, c.with_suffix(".json")
    looked = ", ".join(str(c) for c in candidates) or str(p)
    raise PolicyLoadError(f"{path}: no such model (looked for {looked})")


def _session_options(threads: int, allow_spinning: bool | None, fixed_dims: dict | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning workers cut latency with 2+ threads but burn a core between actions;
    # with one thread there is no pool to spin.
    spin = (threads > 1) if allow_spinning is None else allow_spinning
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    for name, value in (fixed_dims or {}).items():
        if name:
            opts.add_free_dimension_override_by_name(name, value)
    return opts


def _check_io(session, card: ModelCard, where: str) -> None:
    """Refuse a graph whose inputs/outputs differ from the contract or from the card."""
    inputs = {i.name: i for i in session.get_inputs()}
    if set(inputs) != set(INPUT_NAMES):
        raise PolicyLoadError(
            f"{where}: graph inputs are {sorted(inputs)}, the contract needs {list(INPUT_NAMES)}"
        )
    size = card.image_size
    expected = {"image": (None, size, size, 3), "goal": (None, size, size, 3), "gripper": (None, card.proprio_dim), "actions": (None, None, ACTION_DIM)}
    for name, want in expected.items():
        arg = inputs[name]
        if arg.type != _INPUT_TYPES[name]:
            raise PolicyLoadError(f"{where}: input {name!r} has type {arg.type}, expected {_INPUT_TYPES[name]}")
        got = tuple(d if isinstance(d, int) else None for d in arg.shape)
        # None in `want` means the dimension must be dynamic (batch B, and CEM's sample count N).
        if len(got) != len(want) or any(g != w for g, w in zip(got, want, strict=True)):
            shown = ["dynamic" if w is None else w for w in want]
            raise PolicyLoadError(
                f"{where}: input {name!r} has shape {list(arg.shape)}, expected {shown} (card image_size {size})"
            )
    outputs = session.get_outputs()
    if [o.name for o in outputs] != [OUTPUT_NAME] or outputs[0].type != "tensor(float)" or len(outputs[0].shape) != 2:
        shown = [(o.name, o.type, o.shape) for o in outputs]
        raise PolicyLoadError(f"{where}: graph outputs are {shown}, the contract needs one float32 'q' [B,N]")


def _split_graph(model_bytes: bytes):
    """(trunk, head, boundary names) protos splitting Q at the state-only frontier, or None.

    A tensor is state-only when it depends on `image`/`goal` and on no other input. The
    frontier is every state-only tensor that an action-dependent node consumes: the trunk
    computes it from (image, goal), the head computes `q` from it plus gripper and actions.
    """
    try:
        import onnx
        import onnx.utils
    except ImportError:
        return None
    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(model_bytes))
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return None  # control flow: keep it simple, run the whole graph
    deps: dict[str, frozenset] = {i.name: frozenset([i.name]) for i in graph.input}
    state = frozenset(("image", "goal"))
    frontier: list[str] = []
    for node in graph.node:
        d = frozenset().union(*(deps.get(i, frozenset()) for i in node.input if i))
        for out in node.output:
            deps[out] = d
        if d - state:
            for i in node.input:
                di = deps.get(i, frozenset())
                if i and di and di <= state and i not in frontier:
                    frontier.append(i)
    if not frontier or any(name in INPUT_NAMES for name in frontier):
        return None
    extractor = onnx.utils.Extractor(model)
    trunk = extractor.extract_model(["image", "goal"], frontier)
    head = extractor.extract_model(frontier + ["gripper", "actions"], [OUTPUT_NAME])
    return trunk.SerializeToString(), head.SerializeToString(), frontier


def _read_goal_image(path: Path, card: ModelCard, card_path: Path) -> np.ndarray:
    """A task model's goal image as uint8 RGB of the card's size; PolicyLoadError naming the file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        raise PolicyLoadError(f"{card_path}: its goal image {path} is missing or not an image")
    if card.goal_image_sha256 and (digest := sha256_file(path)) != card.goal_image_sha256:
        raise PolicyLoadError(f"{path}: sha256 {digest[:12]}... does not match its card {card_path} "
                              f"({card.goal_image_sha256[:12]}...); the goal image was modified or replaced")
    try:
        return check_image(np.ascontiguousarray(image[:, :, ::-1]), card.image_size, f"{path}")
    except ValueError as exc:
        raise PolicyLoadError(f"{card_path}: goal image {exc}") from None


def _fused_agrees(fused: FusedCEM, split: Policy, probe: tuple, settings) -> bool:
    """Whether the one-graph CEM scores like the split head and refits like robot_app.cem.

    Its q of every sample it drew must match the split head's; replaying robot_app.cem in
    numpy on those same q values must draw the same samples and pick the same best. (A
    check of whole actions against the split path would fail on near-ties: rounding
    differences of ~1e-7 in q may reorder them.)
    """
    image, goal, _, _ = probe
    rng = np.random.default_rng(7)
    n = settings.samples
    for gripper in (0.0, float(probe[2][0, 0]), 1.0):
        grip = probe[2].copy()
        grip[0, 0] = gripper
        uniform, normal = draw_noise(rng, 1, settings)
        try:
            best, best_q = fused.act(image[0], goal[0], grip[0], uniform, normal)
        except Exception:  # onnxruntime's own exception types
            return False
        drawn = fused.samples_all.reshape(settings.iterations, 1, n, ACTION_DIM)
        scores = fused.q_all.reshape(settings.iterations, 1, n)
        for k in range(settings.iterations):
            if not np.allclose(split._run_split(image, goal, grip, drawn[k]), scores[k], rtol=0, atol=1e-6):
                return False
        replayed = []

        def replay(actions: np.ndarray, replayed=replayed, scores=scores) -> np.ndarray:
            replayed.append(actions.copy())
            return scores[len(replayed) - 1]

        want, want_q = cem_maximize(replay, settings, uniform, normal)
        if not (np.allclose(np.stack(replayed), drawn, rtol=0, atol=1e-6) and np.allclose(want, best, rtol=0, atol=1e-6)
                and np.allclose(want_q, best_q, rtol=0, atol=1e-6)):
            return False
    return True


def _runner_agrees(runner: SplitRunner, split: Policy, probe: tuple) -> bool:
    """Whether the bound split sessions score like the plain ones."""
    image, goal, grip, actions = probe
    want = split._run_split(image, goal, grip, actions)
    try:
        runner.encode(image[0], goal[0], grip[0])
        got = runner.score(actions)
    except Exception:  # onnxruntime's own exception types
        return False
    return got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-6)


class Policy:
    """Goal-conditioned policy: CEM over an exported Q(s, a, g) with a seeded generator."""

    # A fine-tuned task model's goal image (card "goal_image"), None for a goal-conditioned
    # model: evaluation feeds it in place of a suite's rendered goal.
    task_goal: np.ndarray | None = None
    # A task model that finds its object and proposes the goal per scene (card "goal_proposer"):
    # evaluation and the policy node ask it for the goal from an episode's first frame.
    goal_proposer: GoalProposer | None = None

    def __init__(self, card: ModelCard, session, onnx_path: Path, card_path: Path, seed: int = 0,
                 trunk=None, head=None, boundary: list[str] | None = None):
        self.card = card
        self.onnx_path = onnx_path
        self.card_path = card_path
        self._session = session
        self._trunk, self._head, self._boundary = trunk, head, boundary or []
        self._runner: SplitRunner | None = None  # the bound split graph, set by _try_split
        self._fused: FusedCEM | None = None  # the whole action as one graph, set by _try_split
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int = 1, seed: int = 0,
             allow_spinning: bool | None = None, split: bool = True) -> Policy:
        """Load and verify a model (.onnx, .json, or a name in models/); PolicyLoadError if it does not fit."""
        import onnxruntime as ort

        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        onnx_path, card_path = resolve_model(path)
        card = ModelCard.read(card_path)
        if not onnx_path.is_file():
            raise PolicyLoadError(f"{card_path}: its graph {onnx_path} is missing")
        model_bytes = onnx_path.read_bytes()
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != card.onnx_sha256:
            raise PolicyLoadError(
                f"{onnx_path}: sha256 {digest[:12]}... does not match its card {card_path} "
                f"({card.onnx_sha256[:12]}...); the model was modified or replaced"
            )
        opts = _session_options(threads, allow_spinning)
        try:
            session = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PolicyLoadError(f"{onnx_path}: onnxruntime cannot load it ({exc})") from None
        _check_io(session, card, str(onnx_path))
        policy = cls(card, session, onnx_path, card_path, seed=seed)
        if card.goal_image:
            policy.task_goal = _read_goal_image(card_path.parent / card.goal_image, card, card_path)
        if card.goal_proposer:
            try:
                policy.goal_proposer = GoalProposer.load(card.goal_proposer, card_path.parent, card.image_size, threads)
            except ValueError as exc:
                raise PolicyLoadError(f"{card_path}: {exc}") from None
        if split:
            policy._try_split(model_bytes, threads, allow_spinning)
        return policy

    def _try_split(self, model_bytes: bytes, threads: int, allow_spinning: bool | None) -> None:
        import onnxruntime as ort

        parts = _split_graph(model_bytes)
        if parts is None:
            return
        trunk_bytes, head_bytes, boundary = parts
        # Only act() runs these sessions, always with one state and the card's sample
        # count: fixing B and N lets onnxruntime plan their memory once (~5% per action).
        actions = next(i for i in self._session.get_inputs() if i.name == "actions")
        batch_dim, samples_dim = (d if isinstance(d, str) else None for d in actions.shape[:2])
        fixed = {batch_dim: 1, samples_dim: self.card.cem.samples}
        # Each session has its own pool: only the head's (called back to back by CEM)
        # spins, or the trunk's idle workers would compete with it for the cores.
        trunk_opts = _session_options(threads, bool(allow_spinning), {batch_dim: 1})
        head_opts = _session_options(threads, allow_spinning, fixed)
        trunk = ort.InferenceSession(trunk_bytes, sess_options=trunk_opts, providers=["CPUExecutionProvider"])
        head = ort.InferenceSession(head_bytes, sess_options=head_opts, providers=["CPUExecutionProvider"])
        split = Policy(self.card, self._session, self.onnx_path, self.card_path, trunk=trunk, head=head, boundary=boundary)
        rng = np.random.default_rng(12345)
        size = self.image_size
        probe = (
            rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8),
            rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8),
            rng.uniform(0, 1, (1, self.card.proprio_dim)).astype(np.float32),
            rng.uniform(-1, 1, (1, self.card.cem.samples, ACTION_DIM)).astype(np.float32),
        )
        whole = self._run_whole(*probe)
        try:
            parted = split._run_split(*probe)
        except Exception as exc:  # onnxruntime's own exception types
            warnings.warn(f"{self.onnx_path}: split graph failed ({exc}); running it whole", stacklevel=3)
            return
        if parted.shape != whole.shape or not np.allclose(parted, whole, rtol=0, atol=1e-6):
            warnings.warn(f"{self.onnx_path}: split graph disagrees with the whole graph; running it whole", stacklevel=3)
            return
        boundary_values = list(split._encode(probe[0], probe[1]).values())
        runner = SplitRunner(trunk, head, boundary, boundary_values, self.card.cem.samples, size, self.card.proprio_dim)
        if not _runner_agrees(runner, split, probe):
            warnings.warn(f"{self.onnx_path}: bound split graph disagrees with the split graph; running it whole", stacklevel=3)
            return
        self._fused = self._try_fuse(trunk_bytes, head_bytes, boundary, split, probe, head_opts)
        self._trunk, self._head, self._boundary, self._runner = trunk, head, boundary, runner

    def _try_fuse(self, trunk_bytes: bytes, head_bytes: bytes, boundary: list[str], split: Policy, probe: tuple, opts):
        """The one-graph CEM (policy_graphs.cem_graph) if the head is the QT-Opt MLP and it checks out, else None."""
        import onnxruntime as ort

        layers = mlp_layers(head_bytes, boundary, self.card.proprio_dim)
        if layers is None or self.card.cem.iterations < 1:
            return None  # another head: CEM in numpy over the bound split graph
        try:
            graph = cem_graph(trunk_bytes, boundary[0], layers, self.card.cem, self.image_size)
            session = ort.InferenceSession(graph, sess_options=opts, providers=["CPUExecutionProvider"])
            fused = FusedCEM(session, self.card.cem, self.image_size, self.card.proprio_dim)
        except Exception as exc:  # onnx / onnxruntime exception types
            warnings.warn(f"{self.onnx_path}: one-graph CEM failed to build ({exc}); CEM runs in numpy", stacklevel=4)
            return None
        if not _fused_agrees(fused, split, probe, self.card.cem):
            warnings.warn(f"{self.onnx_path}: one-graph CEM disagrees with the split graph; CEM runs in numpy", stacklevel=4)
            return None
        return fused

    @property
    def image_size(self) -> int:
        return self.card.image_size

    @property
    def split(self) -> bool:
        """Whether the trunk runs once per action (the graph was split at load)."""
        return self._trunk is not None

    def reseed(self, seed: int) -> None:
        """Restart the CEM noise stream, so an episode's actions do not depend on what ran before."""
        self._rng = np.random.default_rng(seed)

    def _run_whole(self, image, goal, gripper, actions) -> np.ndarray:
        feed = {"image": image, "goal": goal, "gripper": gripper, "actions": actions}
        return self._session.run([OUTPUT_NAME], feed)[0]

    def _encode(self, image, goal) -> dict:
        values = self._trunk.run(self._boundary, {"image": image, "goal": goal})
        return dict(zip(self._boundary, values, strict=True))

    def _run_split(self, image, goal, gripper, actions) -> np.ndarray:
        feed = self._encode(image, goal)
        feed.update(gripper=gripper, actions=actions)
        return self._head.run([OUTPUT_NAME], feed)[0]

    def _check(self, image, goal, state) -> np.ndarray:
        """Validate one observation; the graph's proprio input (P,) from the robot state."""
        size = self.image_size
        check_image(image, size, "image")
        check_image(goal, size, "goal image")
        return proprio_vector(state, self.card.height_input)

    def _inputs(self, image, goal, state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate one observation and shape it as a batch of one."""
        return image[None], goal[None], self._check(image, goal, state)[None]

    def act(self, image: np.ndarray, goal: np.ndarray, state: RobotState | float) -> tuple[np.ndarray, float]:
        """The CEM action in [-1, 1]^5 for this observation and goal, and its Q.

        `goal`: one picture (H, W, 3), or K pictures (K, H, W, 3) that each show the task done
        (a task model's proposals, robot_app.goal_proposal): the action is then the mean of
        the K goals' actions, settled (a binary gripper by majority), and the Q their mean.
        `state`: a RobotState (gripper, end effector height), or a bare gripper state for a
        model whose card does not take the height (`card.height_input`).

        The action is settled by the card's scaling (a binary gripper gives a4 = +-1); the Q
        is the score of the searched action before that.
        """
        if isinstance(goal, np.ndarray) and goal.ndim == 4:
            return self._act_toward_all(image, goal, state)
        with self._lock:  # the split graph's buffers and the generator are shared
            runner = self._runner
            if runner is not None:
                g = self._check(image, goal, state)
                uniform, normal = draw_noise(self._rng, 1, self.card.cem)
                if self._fused is not None:
                    best, best_q = self._fused.act(image, goal, g, uniform, normal)
                    return self.card.action_scaling.settle(best[0]), float(best_q[0])
                runner.encode(image, goal, g)
                score = runner.score
            else:
                image_b, goal_b, grip_b = self._inputs(image, goal, state)
                uniform, normal = draw_noise(self._rng, 1, self.card.cem)

                def score(actions: np.ndarray) -> np.ndarray:
                    return self._run_whole(image_b, goal_b, grip_b, actions)

            best, best_q = cem_maximize(score, self.card.cem, uniform, normal)
        return self.card.action_scaling.settle(best[0]), float(best_q[0])

    def _act_toward_all(self, image: np.ndarray, goals: np.ndarray, state: RobotState | float) -> tuple[np.ndarray, float]:
        if len(goals) == 0:
            raise ValueError("goal: an empty stack of goal pictures")
        picked = [self.act(image, goal, state) for goal in goals]
        action = np.mean([a for a, _ in picked], axis=0)
        return self.card.action_scaling.settle(action), float(np.mean([q for _, q in picked]))

    def act_on_blank(self) -> tuple[np.ndarray, float]:
        """One action on blank images and a resting state: a graph that loads but cannot run
        fails here, where it is loaded (the policy node, `doctor`), and not in the middle of a run."""
        blank = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        return self.act(blank, blank, RobotState(0.0, 0.1))  # a model with the height input needs one too

    def __call__(self, image: np.ndarray, goal: np.ndarray, state: RobotState | float) -> np.ndarray:
        """act_fn form (sim_worlds.goals.run_goal_episode): the action only."""
        return self.act(image, goal, state)[0]

    def q_values(self, image: np.ndarray, goal: np.ndarray, state: RobotState | float, actions: np.ndarray) -> np.ndarray:
        """Q of N given actions (N, 5) in this state for this goal: (N,), through the whole graph."""
        image_b, goal_b, grip_b = self._inputs(image, goal, state)
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or len(actions) == 0:
            raise ValueError(f"actions: expected shape (N, {ACTION_DIM}) with N >= 1, got {actions.shape}")
        return self._run_whole(image_b, goal_b, grip_b, actions[None])[0]
