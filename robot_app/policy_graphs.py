"""The graphs robot_app.policy builds from a verified model to act fast (issue 5).

One action is CEM: the trunk once, the head once per iteration on `samples` candidates, an
elite refit between iterations. On one core the three head runs are ~70% of the time and
already run at the CPU's float32 GEMM peak (~35 us per 64x256x256 layer), so speed comes
from cutting what lies around them:

- `cem_graph`: when the head is the QT-Opt MLP of training/networks.py (`mlp_layers`), the
  whole action (trunk, three heads, elite refits, the best of all iterations) is one
  onnxruntime graph fed the CEM noise: one run per action instead of four, no numpy
  between the heads. Its refit is robot_app.cem's step for step (TopK keeps equal scores
  in index order like the stable sort; sums over the elites in that order; float32
  division), which policy.py checks at load by replaying it in numpy.
- `SplitRunner`: any other split head (e.g. gcbc's scorer) runs bound to fixed numpy
  buffers (IOBinding), with CEM in numpy.

Measured, one thread, same process (full-size QNetwork): numpy CEM over plain sessions
~596 us per action, bound sessions + MLP head ~511 us, one graph ~479 us.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from robot_app.cem import CEMSettings
from robot_app.spec import ACTION_DIM

OUTPUT_NAME = "q"
OPSET = 17


@dataclass(frozen=True)
class MLPLayers:
    """A head that is a plain MLP over [actions, gripper]: layer i computes
    act_i(x @ weights[i] + biases[i] (+ the trunk's features if i == features_layer)),
    act = relu for all but the last; q = sigmoid(last) if `sigmoid`."""

    weights: tuple[np.ndarray, ...]  # (in, out) float32; weights[0] has ACTION_DIM + P rows, the proprio (gripper, ...) last
    biases: tuple[np.ndarray, ...]  # (out,) float32
    features_layer: int  # a hidden layer, never the last
    sigmoid: bool


def mlp_layers(head_bytes: bytes, boundary: list[str], proprio_dim: int = 1) -> MLPLayers | None:
    """The head's layers when it is the QT-Opt MLP of training/networks.py, else None.

    Walks forward from Concat(actions, broadcast gripper) through MatMul/Add/Relu, the one
    Add of the trunk's features, a final Squeeze and Sigmoid; anything else (another
    network, e.g. gcbc's scorer) is not matched. The match is structural only: the caller
    checks the graph built from it numerically against the head it replaces.
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
    if w is None or features_layer is None or features_layer == len(weights):
        return None  # the features must enter a hidden layer, and there must be one
    weights.append(w)
    biases.append(b if b is not None else np.zeros(w.shape[1], np.float32))
    chained = all(a.shape[1] == c.shape[0] for a, c in zip(weights, weights[1:], strict=False))
    if (weights[0].shape[0] != ACTION_DIM + proprio_dim or weights[-1].shape[1] != 1 or not chained
            or any(x.dtype != np.float32 for x in weights + biases)
            or any(bb.shape != (ww.shape[1],) for ww, bb in zip(weights, biases, strict=True))):
        return None
    return MLPLayers(tuple(weights), tuple(biases), features_layer, sigmoid)


class _GraphBuilder:
    """Nodes and initializers of one graph, each node with one named output."""

    def __init__(self, nodes=(), inits=()):
        self.nodes, self.inits = list(nodes), list(inits)

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))  # 0-d stays 0-d
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output


def cem_graph(trunk_bytes: bytes, boundary: str, layers: MLPLayers, settings: CEMSettings, image_size: int) -> bytes:
    """One action as one graph: (image, goal, gripper (1, P), uniform (N,5), normal (I-1,N,5)) ->
    best_action (1,5), best_q (1,), and every iteration's samples (I*N,5) and q (1,I*N).

    The head runs as 2-D Gemm+Relu (fused by onnxruntime) with the gripper and the features
    folded into two biases; its last layer (width 1) as w^T x^T, which onnxruntime runs
    ~2 us faster than the thin x w. These change q by float32 rounding only (<= ~1e-7).
    """
    import onnx
    from onnx import TensorProto, helper

    trunk = onnx.load_from_string(trunk_bytes).graph
    g = _GraphBuilder(trunk.node, trunk.initializer)
    n, iters, last = settings.samples, settings.iterations, len(layers.weights) - 1
    flat = g.const("cem/flat", np.array([-1], np.int64))
    axis0 = g.const("cem/axis0", np.array([0], np.int64))
    count = g.const("cem/elites", np.float32(settings.elites))
    top_k = g.const("cem/top_k", np.array([settings.elites], np.int64))
    min_std = g.const("cem/min_std", np.float32(settings.min_std))
    low, high = g.const("cem/low", np.float32(-1.0)), g.const("cem/high", np.float32(1.0))
    for i, (w, b) in enumerate(zip(layers.weights, layers.biases, strict=True)):
        g.const(f"cem/w{i}", w[:ACTION_DIM] if i == 0 else (w.T if i == last else w))
        g.const(f"cem/b{i}", b)
    # per-action biases: layer 0 takes the proprio rows (1,P)@(P,H), the features layer the features
    proprio_dim = layers.weights[0].shape[0] - ACTION_DIM
    grip = g.node("MatMul", ["gripper", g.const("cem/grip_rows", layers.weights[0][ACTION_DIM:])], "cem/grip")
    bias = {i: f"cem/b{i}" for i in range(last + 1)}
    bias[0] = g.node("Add", [bias[0], grip], "cem/bias0")
    features = g.node("Reshape", [boundary, flat], "cem/features")
    fl = layers.features_layer
    bias[fl] = g.node("Add", [bias[fl], features], f"cem/bias{fl}_features")

    def head(x: str, k: int) -> str:
        for i in range(last + 1):
            if i == last:
                x = g.node("Gemm", [f"cem/w{i}", x, bias[i]], f"cem/it{k}/h{i}", transB=1)
            else:
                x = g.node("Relu", [g.node("Gemm", [x, f"cem/w{i}", bias[i]], f"cem/it{k}/h{i}")], f"cem/it{k}/r{i}")
        return g.node("Sigmoid", [x], f"cem/it{k}/q") if layers.sigmoid else x  # (1, N)

    samples, mean, std = "uniform", "", ""
    all_samples, all_q = [], []
    for k in range(iters):
        if k > 0:  # clip(mean + std * normal[k-1], -1, 1)
            noise = g.node("Gather", ["normal", g.const(f"cem/it{k}/index", np.int64(k - 1))], f"cem/it{k}/noise", axis=0)
            scaled = g.node("Mul", [noise, std], f"cem/it{k}/scaled")
            samples = g.node("Clip", [g.node("Add", [scaled, mean], f"cem/it{k}/shifted"), low, high], f"cem/it{k}/samples")
        q = head(samples, k)
        all_samples.append(samples)
        all_q.append(q)
        if k + 1 == iters:
            break
        # elites: the top scores, equal ones in index order (ONNX TopK), as the stable sort
        g.nodes.append(helper.make_node("TopK", [g.node("Reshape", [q, flat], f"cem/it{k}/q_flat"), top_k],
                                        [f"cem/it{k}/top_q", f"cem/it{k}/top_i"], axis=0, largest=1, sorted=1))
        elites = g.node("Gather", [samples, f"cem/it{k}/top_i"], f"cem/it{k}/elites", axis=0)
        mean = g.node("Div", [g.node("ReduceSum", [elites, axis0], f"cem/it{k}/sum", keepdims=0), count], f"cem/it{k}/mean")
        dev = g.node("Sub", [elites, mean], f"cem/it{k}/dev")
        var = g.node("Div", [g.node("ReduceSum", [g.node("Mul", [dev, dev], f"cem/it{k}/sq"), axis0], f"cem/it{k}/sqsum", keepdims=0), count], f"cem/it{k}/var")
        std = g.node("Max", [g.node("Sqrt", [var], f"cem/it{k}/sd"), min_std], f"cem/it{k}/std")
    # the first best over iterations in order, as robot_app.cem's strict improvement
    q_all = g.node("Concat", all_q, "q_all", axis=1)
    samples_all = g.node("Concat", all_samples, "samples_all", axis=0)
    best = g.node("ArgMax", [g.node("Reshape", [q_all, flat], "cem/q_all_flat")], "cem/best", axis=0, keepdims=1)
    g.node("Gather", [samples_all, best], "best_action", axis=0)
    g.node("Gather", ["cem/q_all_flat", best], "best_q", axis=0)

    def info(name, shape, dtype=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, dtype, shape)

    size = image_size
    inputs = [info("image", [1, size, size, 3], TensorProto.UINT8), info("goal", [1, size, size, 3], TensorProto.UINT8),
              info("gripper", [1, proprio_dim]), info("uniform", [n, ACTION_DIM]), info("normal", [iters - 1, n, ACTION_DIM])]
    outputs = [info("best_action", [1, ACTION_DIM]), info("best_q", [1]), info("samples_all", [iters * n, ACTION_DIM]),
               info("q_all", [1, iters * n])]
    graph = helper.make_graph(g.nodes, "cem", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid(o.domain, o.version) for o in onnx.load_from_string(trunk_bytes).opset_import]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


class Bound:
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


class FusedCEM:
    """`cem_graph` bound to its buffers. Not re-entrant (shared buffers): Policy.act locks."""

    def __init__(self, session, settings: CEMSettings, image_size: int, proprio_dim: int = 1):
        n, iters = settings.samples, settings.iterations
        self.image = np.zeros((1, image_size, image_size, 3), np.uint8)
        self.goal = np.zeros_like(self.image)
        self.gripper = np.zeros((1, proprio_dim), np.float32)
        self.uniform = np.zeros((n, ACTION_DIM), np.float32)
        self.normal = np.zeros((iters - 1, n, ACTION_DIM), np.float32)
        self.best_action = np.zeros((1, ACTION_DIM), np.float32)
        self.best_q = np.zeros(1, np.float32)
        self.samples_all = np.zeros((iters * n, ACTION_DIM), np.float32)
        self.q_all = np.zeros((1, iters * n), np.float32)
        self.bound = Bound(
            session,
            {"image": self.image, "goal": self.goal, "gripper": self.gripper, "uniform": self.uniform, "normal": self.normal},
            {"best_action": self.best_action, "best_q": self.best_q, "samples_all": self.samples_all, "q_all": self.q_all},
        )

    def act(self, image: np.ndarray, goal: np.ndarray, proprio: np.ndarray, uniform: np.ndarray, normal: np.ndarray):
        """(best (1,5), best q (1,)) from the proprio input (P,) and draw_noise's (uniform (1,N,5),
        normal (I-1,1,N,5)); fresh arrays."""
        self.image[0] = image
        self.goal[0] = goal
        self.gripper[0] = proprio
        self.uniform[...] = uniform[0]
        self.normal[...] = normal[:, 0]
        self.bound.run()
        return self.best_action.copy(), self.best_q.copy()


class SplitRunner:
    """The split graph bound to buffers, for CEM in numpy: `encode` runs the trunk once per
    action, `score` the head once per iteration. Not re-entrant: Policy.act locks."""

    def __init__(self, trunk, head, boundary: list[str], boundary_values: list[np.ndarray], samples: int, image_size: int,
                 proprio_dim: int = 1):
        self.image = np.zeros((1, image_size, image_size, 3), np.uint8)
        self.goal = np.zeros_like(self.image)
        self.features = {name: np.zeros_like(v) for name, v in zip(boundary, boundary_values, strict=True)}
        self.gripper = np.zeros((1, proprio_dim), np.float32)
        self.actions = np.zeros((1, samples, ACTION_DIM), np.float32)
        self.q = np.zeros((1, samples), np.float32)
        self.trunk = Bound(trunk, {"image": self.image, "goal": self.goal}, self.features)
        self.head = Bound(head, {**self.features, "gripper": self.gripper, "actions": self.actions}, {OUTPUT_NAME: self.q})

    def encode(self, image: np.ndarray, goal: np.ndarray, proprio: np.ndarray) -> None:
        self.image[0] = image
        self.goal[0] = goal
        self.gripper[0] = proprio
        self.trunk.run()

    def score(self, actions: np.ndarray) -> np.ndarray:
        """q (1, N) of actions (1, N, 5): a view of the output buffer, valid until the next call."""
        np.copyto(self.actions, actions)
        self.head.run()
        return self.q
