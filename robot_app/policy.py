"""The torch-free policy runtime: an exported Q-function, its model card, CEM over onnxruntime.

A robot computer needs only numpy and onnxruntime to act. `Policy.load` refuses anything
that does not match the ONNX contract of design section 6 (inputs `image`, `goal`,
`gripper`, `actions`; output `q`), whose card is missing or invalid, or whose graph is not
the one the card was written for (sha256), so a model never runs with the wrong image
size, action scaling or CEM settings without anyone noticing.

Speed: CEM scores its samples in `iterations` calls, and the convolutional trunk only
depends on (image, goal). When the `onnx` package is importable the runtime splits the
verified graph at the boundary where state-only tensors meet action-dependent ones, and
runs the trunk once per action and only the small head per CEM iteration. The split is
checked against the whole graph at load; without `onnx`, or if the check fails, the whole
graph runs each iteration (same result, slower).

Per action on one core (issue 5) the three head runs are ~70% of the time and are already
at the CPU's float32 GEMM peak, so the rest is overhead to cut: the split sessions are
bound to fixed numpy buffers (IOBinding: no feed dicts, no output allocation), and a head
that is the QT-Opt MLP of training/networks.py runs as a chain of 2-D Gemm+Relu with the
gripper and the trunk's features folded into per-action biases (`_mlp_head`), checked
against the split head at load. Measured numbers: bench/bench_policy_latency.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from robot_app.cem import CEMSettings, cem_maximize, draw_noise
from robot_app.spec import ACTION_DIM, ActionScaling, check_image

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
    algo: str  # "am", "am-nonneg", "am-nochain", "gcbc"
    training_steps: int  # gradient steps of the exported checkpoint
    data_manifest_hash: str  # the training store's manifest hash
    onnx_file: str = ""  # the graph's file name, next to the card
    opset: int = OPSET
    network: dict = field(default_factory=dict)  # NetworkConfig.to_dict() of the trained net
    source: str = ""  # run directory and checkpoint it was exported from
    evaluation: dict | None = None  # `robot-app eval --write-card` results
    task: str = ""  # a fine-tuned task model's task (e.g. "grasp-heldout"); "" for goal-conditioned models
    goal_image: str = ""  # a task model's goal image file beside the card, fed as `goal` (training/finetune.py)
    format_version: int = CARD_FORMAT_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["action_scaling"] = self.action_scaling.to_dict()
        d["cem"] = self.cem.to_dict()
        return d

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
                network=dict(d.get("network") or {}),
                source=_string(d.get("source", ""), "source", empty_ok=True),
                evaluation=d.get("evaluation"),
                task=_string(d.get("task", ""), "task", empty_ok=True),
                goal_image=_string(d.get("goal_image", ""), "goal_image", empty_ok=True),
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


def _hex64(v) -> str:
    if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ValueError(f"onnx_sha256 must be 64 lowercase hex digits, got {v!r}")
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


def _scaling(d) -> ActionScaling:
    if not isinstance(d, dict):
        raise ValueError(f"action_scaling must be an object, got {d!r}")
    scaling = ActionScaling.from_dict(d)
    if min(scaling.max_linear_speed, scaling.max_angular_speed, scaling.control_hz) <= 0:
        raise ValueError(f"action_scaling values must be positive, got {scaling.to_dict()}")
    return scaling


def _cem(d) -> CEMSettings:
    if not isinstance(d, dict):
        raise ValueError(f"cem must be an object, got {d!r}")
    cem = CEMSettings.from_dict(d)
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
    expected = {"image": (None, size, size, 3), "goal": (None, size, size, 3), "gripper": (None, 1), "actions": (None, None, ACTION_DIM)}
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


@dataclass(frozen=True)
class _MLPLayers:
    """A head that is a plain MLP over [actions, gripper]: layer i computes
    act_i(x @ weights[i] + biases[i] (+ the trunk's features if i == features_layer)),
    act = relu for all but the last; q = sigmoid(last) if `sigmoid`."""

    weights: tuple[np.ndarray, ...]  # (in, out) float32; weights[0] has ACTION_DIM + 1 rows, gripper last
    biases: tuple[np.ndarray, ...]  # (out,) float32
    features_layer: int
    sigmoid: bool


def _mlp_head(head_bytes: bytes, boundary: list[str]) -> _MLPLayers | None:
    """The head's layers when it is the QT-Opt MLP of training/networks.py, else None.

    Walks forward from Concat(actions, broadcast gripper) through MatMul/Add/Relu, the one
    Add of the trunk's features, a final Squeeze and Sigmoid; anything else (another
    network, e.g. gcbc's scorer) is not matched and the split head runs as extracted. The
    match is structural only: the caller checks the result numerically against the head.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(head_bytes).graph
    if len(boundary) != 1 or [o.name for o in graph.output] != [OUTPUT_NAME]:
        return None
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = defaultdict(list)
    deps: dict[str, frozenset] = {i.name: frozenset([i.name]) for i in graph.input}
    start = None
    for node in graph.node:
        for i in node.input:
            consumers[i].append(node)
        d = frozenset().union(*(deps.get(i, frozenset()) for i in node.input if i))
        for out in node.output:
            deps[out] = d
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        if (node.op_type == "Concat" and len(node.input) == 2 and node.input[0] == "actions"
                and "gripper" in deps.get(node.input[1], ()) and axis in (-1, 2)):
            start = node
    if start is None:
        return None
    weights, biases, features_layer, sigmoid = [], [], None, False
    w = b = None
    squeezed = False
    cur = start.output[0]
    while cur != OUTPUT_NAME:
        if len(consumers[cur]) != 1:
            return None
        node = consumers[cur][0]
        others = [i for i in node.input if i != cur]
        const = consts.get(others[0]) if len(others) == 1 else None
        if node.op_type == "MatMul" and w is None and not squeezed and node.input[0] == cur and const is not None and const.ndim == 2:
            w = const
        elif node.op_type == "Add" and w is not None and len(others) == 1:
            if const is not None and const.ndim == 1 and b is None:
                b = const
            elif others[0] == boundary[0] and features_layer is None:
                features_layer = len(weights)
            else:
                return None
        elif node.op_type == "Relu" and w is not None and not squeezed:
            weights.append(w)
            biases.append(b if b is not None else np.zeros(w.shape[1], np.float32))
            w = b = None
        elif node.op_type == "Squeeze" and w is not None and not squeezed:
            squeezed = True
        elif node.op_type == "Sigmoid" and node.output[0] == OUTPUT_NAME:
            sigmoid = True
        else:
            return None
        cur = node.output[0]
    if w is None or features_layer is None:
        return None
    weights.append(w)
    biases.append(b if b is not None else np.zeros(w.shape[1], np.float32))
    shapes_chain = all(a.shape[1] == c.shape[0] for a, c in zip(weights, weights[1:], strict=False))
    if (weights[0].shape[0] != ACTION_DIM + 1 or weights[-1].shape[1] != 1 or not shapes_chain
            or any(x.dtype != np.float32 for x in weights + biases)
            or any(bb.shape != (ww.shape[1],) for ww, bb in zip(weights, biases, strict=True))):
        return None
    return _MLPLayers(tuple(weights), tuple(biases), features_layer, sigmoid)


def _mlp_graph(layers: _MLPLayers, samples: int) -> bytes:
    """The MLP head as 2-D Gemm+Relu (fused by onnxruntime): inputs `actions` (N, 5) and one
    bias per layer that takes the gripper (layer 0) or the features; output `q` (N, 1)."""
    from onnx import TensorProto, helper, numpy_helper

    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nodes, inits, inputs = [], [], [info("actions", [samples, ACTION_DIM])]
    x = "actions"
    last = len(layers.weights) - 1
    for i, (w, b) in enumerate(zip(layers.weights, layers.biases, strict=True)):
        w = w[:ACTION_DIM] if i == 0 else w
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w), f"w{i}"))
        if i in (0, layers.features_layer):
            inputs.append(info(f"bias{i}", [w.shape[1]]))
        else:
            inits.append(numpy_helper.from_array(b, f"bias{i}"))
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"bias{i}"], [f"h{i}"]))
        x = f"h{i}"
        if i < last:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    if layers.sigmoid:
        nodes.append(helper.make_node("Sigmoid", [x], [OUTPUT_NAME]))
    else:
        nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME]))
    graph = helper.make_graph(nodes, "mlp_head", inputs, [info(OUTPUT_NAME, [samples, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return model.SerializeToString()


class _Bound:
    """A session bound once to numpy buffers (IOBinding): each run reads its inputs and
    writes its outputs in place, with no feed dict and no output allocation (~10 us less
    per trunk run than session.run, measured)."""

    def __init__(self, session, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        import onnxruntime as ort

        self.session = session
        self.binding = session.io_binding()
        self._values = []  # the OrtValues must outlive the binding
        for name, buf in inputs.items():
            self._values.append(ort.OrtValue.ortvalue_from_numpy(buf))
            self.binding.bind_ortvalue_input(name, self._values[-1])
        for name, buf in outputs.items():
            self._values.append(ort.OrtValue.ortvalue_from_numpy(buf))
            self.binding.bind_ortvalue_output(name, self._values[-1])

    def run(self) -> None:
        self.session.run_with_iobinding(self.binding)


class _SplitRunner:
    """The split graph with its buffers: `encode` runs the trunk once per action, `score`
    one head run per CEM iteration. Not re-entrant (shared buffers): Policy.act locks."""

    def __init__(self, trunk, head, boundary: list[str], boundary_values: list[np.ndarray], samples: int,
                 image_size: int, mlp: tuple | None = None):
        self.image = np.zeros((1, image_size, image_size, 3), np.uint8)
        self.goal = np.zeros_like(self.image)
        self.features = {name: np.zeros_like(v) for name, v in zip(boundary, boundary_values, strict=True)}
        self.trunk = _Bound(trunk, {"image": self.image, "goal": self.goal}, self.features)
        self.mlp = None
        if mlp is not None:  # (session, _MLPLayers): gripper and features become biases
            session, layers = mlp
            self.mlp = layers
            self.grip_row = layers.weights[0][ACTION_DIM]
            self.actions = np.zeros((samples, ACTION_DIM), np.float32)
            self.biases = {i: np.zeros_like(layers.biases[i]) for i in {0, layers.features_layer}}
            self.q = np.zeros((samples, 1), np.float32)
            self.head = _Bound(session, {"actions": self.actions, **{f"bias{i}": b for i, b in self.biases.items()}}, {OUTPUT_NAME: self.q})
            self.q_row = self.q.reshape(1, samples)
        else:
            self.gripper = np.zeros((1, 1), np.float32)
            self.actions = np.zeros((1, samples, ACTION_DIM), np.float32)
            self.q_row = np.zeros((1, samples), np.float32)
            self.head = _Bound(head, {**self.features, "gripper": self.gripper, "actions": self.actions}, {OUTPUT_NAME: self.q_row})

    def encode(self, image: np.ndarray, goal: np.ndarray, gripper: float) -> None:
        self.image[0] = image
        self.goal[0] = goal
        self.trunk.run()
        if self.mlp is None:
            self.gripper[0, 0] = gripper
            return
        layers = self.mlp
        for i, bias in self.biases.items():
            np.copyto(bias, layers.biases[i])
            if i == 0:
                bias += self.grip_row * np.float32(gripper)
            if i == layers.features_layer:
                bias += next(iter(self.features.values())).reshape(-1)

    def score(self, actions: np.ndarray) -> np.ndarray:
        """q (1, N) of actions (1, N, 5), a view of the output buffer (valid until the next call)."""
        np.copyto(self.actions, actions[0] if self.mlp is not None else actions)
        self.head.run()
        return self.q_row


def _read_goal_image(path: Path, card: ModelCard, card_path: Path) -> np.ndarray:
    """A task model's goal image as uint8 RGB of the card's size; PolicyLoadError naming the file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        raise PolicyLoadError(f"{card_path}: its goal image {path} is missing or not an image")
    try:
        return check_image(np.ascontiguousarray(image[:, :, ::-1]), card.image_size, f"{path}")
    except ValueError as exc:
        raise PolicyLoadError(f"{card_path}: goal image {exc}") from None


def _runner_agrees(runner: _SplitRunner, split: Policy, probe: tuple) -> bool:
    """Whether the bound runner scores like the plain split sessions, over a few grippers."""
    image, goal, _, actions = probe
    for gripper in (0.0, float(probe[2][0, 0]), 1.0):
        grip = np.full((1, 1), gripper, np.float32)
        want = split._run_split(image, goal, grip, actions)
        try:
            runner.encode(image[0], goal[0], grip[0, 0])
            got = runner.score(actions)
        except Exception:  # onnxruntime's own exception types
            return False
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=1e-6):
            return False
    return True


class Policy:
    """Goal-conditioned policy: CEM over an exported Q(s, a, g) with a seeded generator."""

    # A fine-tuned task model's goal image (card "goal_image"), None for a goal-conditioned
    # model: evaluation feeds it in place of a suite's rendered goal.
    task_goal: np.ndarray | None = None

    def __init__(self, card: ModelCard, session, onnx_path: Path, card_path: Path, seed: int = 0,
                 trunk=None, head=None, boundary: list[str] | None = None):
        self.card = card
        self.onnx_path = onnx_path
        self.card_path = card_path
        self._session = session
        self._trunk, self._head, self._boundary = trunk, head, boundary or []
        self._runner: _SplitRunner | None = None  # the bound split graph act() runs, set by _try_split
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
            rng.uniform(0, 1, (1, 1)).astype(np.float32),
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
        samples = self.card.cem.samples
        runner = _SplitRunner(trunk, head, boundary, boundary_values, samples, size)
        layers = _mlp_head(head_bytes, boundary)
        if layers is not None:
            try:
                mlp_session = ort.InferenceSession(_mlp_graph(layers, samples), sess_options=head_opts,
                                                   providers=["CPUExecutionProvider"])
                mlp_runner = _SplitRunner(trunk, head, boundary, boundary_values, samples, size, (mlp_session, layers))
            except Exception as exc:  # onnx / onnxruntime exception types
                warnings.warn(f"{self.onnx_path}: MLP head failed to build ({exc}); running the split head", stacklevel=3)
            else:
                if _runner_agrees(mlp_runner, split, probe):
                    runner = mlp_runner
                else:
                    warnings.warn(f"{self.onnx_path}: MLP head disagrees with the split head; running the split head", stacklevel=3)
        if not _runner_agrees(runner, split, probe):
            warnings.warn(f"{self.onnx_path}: bound split graph disagrees with the split graph; running it whole", stacklevel=3)
            return
        self._trunk, self._head, self._boundary, self._runner = trunk, head, boundary, runner

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

    def _inputs(self, image, goal, gripper) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validate one observation and shape it as a batch of one."""
        size = self.image_size
        check_image(image, size, "image")
        check_image(goal, size, "goal image")
        g = float(gripper)
        if not np.isfinite(g) or not 0.0 <= g <= 1.0:
            raise ValueError(f"gripper: expected a state in [0, 1], got {gripper!r}")
        return image[None], goal[None], np.full((1, 1), g, dtype=np.float32)

    def act(self, image: np.ndarray, goal: np.ndarray, gripper: float) -> tuple[np.ndarray, float]:
        """The CEM action in [-1, 1]^5 for this observation and goal, and its Q."""
        with self._lock:  # the split graph's buffers and the generator are shared
            image_b, goal_b, grip_b = self._inputs(image, goal, gripper)
            uniform, normal = draw_noise(self._rng, 1, self.card.cem)
            runner = self._runner
            if runner is not None:
                runner.encode(image, goal, grip_b[0, 0])
                score = runner.score
            else:
                def score(actions: np.ndarray) -> np.ndarray:
                    return self._run_whole(image_b, goal_b, grip_b, actions)

            best, best_q = cem_maximize(score, self.card.cem, uniform, normal)
        return best[0], float(best_q[0])

    def __call__(self, image: np.ndarray, goal: np.ndarray, gripper: float) -> np.ndarray:
        """act_fn form (sim_worlds.goals.run_goal_episode): the action only."""
        return self.act(image, goal, gripper)[0]

    def q_values(self, image: np.ndarray, goal: np.ndarray, gripper: float, actions: np.ndarray) -> np.ndarray:
        """Q of N given actions (N, 5) in this state for this goal: (N,), through the whole graph."""
        image_b, goal_b, grip_b = self._inputs(image, goal, gripper)
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or len(actions) == 0:
            raise ValueError(f"actions: expected shape (N, {ACTION_DIM}) with N >= 1, got {actions.shape}")
        return self._run_whole(image_b, goal_b, grip_b, actions[None])[0]
