"""An ONNX model into the graph IR: :func:`from_onnx` (models from any framework).

The model's shapes come from ONNX's own shape inference; each node becomes IR ops through a
translation registered for its ``op_type`` in :data:`ONNX_IMPORTS` (as PyTorch operators do in
:mod:`dse.graph.torch_import`: a new mapping is a registration). Shapes in the IR are per
sample, so the batch dimension is dropped. Nodes that compute only on constants (the shape
arithmetic an exporter writes around a ``Reshape``: ``Shape``, ``Gather``, ``Unsqueeze``,
``Concat`` of integers) are not part of the network and are skipped.

Parameters come from the IR ops, which count what the initializers hold: an export that keeps
batch norms (``torch.onnx.export(..., training=TrainingMode.PRESERVE,
do_constant_folding=False)``) gives the same totals as :func:`~dse.graph.from_torch` of the same
module; a default export folds each batch norm into the convolution before it (two parameters
per channel fewer, the same MACs). An operator without a translation is an error listing every
unmapped node; ``unknown="elementwise"`` costs each as a memory-bound elementwise op. onnx is
imported only when a model is imported (the ``onnx`` extra).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np

from dse.graph.builder import GraphBuilder
from dse.graph.ops import GraphError, unmapped_error
from dse.registry import Registry


@dataclass
class OnnxContext:
    """What a translation reads and writes: the builder, the IR node of every data tensor, the
    inferred shapes (batch included) and the initializers' shapes."""

    builder: GraphBuilder
    nodes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    weights: dict[str, tuple[int, ...]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # constant tensors (numpy)

    def ir(self, name: str) -> int:
        if name not in self.nodes:
            raise GraphError(f"{name!r} is not a tensor computed from the model's input")
        return self.nodes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name) or self.weights[name]


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """An ONNX node attribute as a plain value."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


#: ONNX ``op_type`` -> a translation ``(context, node) -> IR node``
ONNX_IMPORTS: Registry[Callable[[OnnxContext, Any], int]] = Registry("onnx import")


def _square(values: Any, what: str) -> int:
    values = [int(v) for v in (values or [1])]
    if len(set(values)) > 1:
        raise GraphError(f"non-square {what} are not in the IR, got {values}")
    return values[0]


def _conv(ctx: OnnxContext, node: Any) -> int:
    x, w = node.input[0], node.input[1]
    if _square(attribute(node, "dilations"), "dilations") != 1:
        raise GraphError("dilated convolutions are not in the IR yet")
    cout, _, k, _ = ctx.shape(w)
    stride = _square(attribute(node, "strides"), "strides")
    padding = _square(attribute(node, "pads", [0]), "pads")
    groups = int(attribute(node, "group", 1))
    bias = len(node.input) > 2 and bool(node.input[2])
    cin = ctx.shape(x)[1]
    b = ctx.builder
    if groups == cin == cout and groups > 1:
        return b.dwconv(ctx.ir(x), k, stride, padding=padding, bias=bias)
    return b.conv(ctx.ir(x), cout, k, stride, groups=groups, padding=padding, bias=bias)


def _batch_norm(ctx: OnnxContext, node: Any) -> int:
    return ctx.builder.norm(ctx.ir(node.input[0]), "batch")


def _activation(mode: str) -> Callable[[OnnxContext, Any], int]:
    def translate(ctx: OnnxContext, node: Any) -> int:
        return ctx.builder.act(ctx.ir(node.input[0]), mode)

    return translate


def _clip(ctx: OnnxContext, node: Any) -> int:
    bounds = [float(ctx.values[n]) for n in node.input[1:3] if n in ctx.values]
    return ctx.builder.act(ctx.ir(node.input[0]), "relu6" if bounds == [0.0, 6.0] else "relu")


def _elementwise(kind: str) -> Callable[[OnnxContext, Any], int]:
    def translate(ctx: OnnxContext, node: Any) -> int:
        a, c = node.input[0], node.input[1]
        if a in ctx.nodes and c in ctx.nodes:
            return ctx.builder.add(kind, (ctx.ir(a), ctx.ir(c)))
        tensor, constant = (a, c) if a in ctx.nodes else (c, a)
        value = ctx.values.get(constant)
        if kind == "mul" and value is not None and not value.any():
            return ctx.builder.zero(ctx.ir(tensor))
        raise GraphError(f"{kind} of a tensor and a constant is not in the IR")

    return translate


def _pool(mode: str) -> Callable[[OnnxContext, Any], int]:
    def translate(ctx: OnnxContext, node: Any) -> int:
        kernel = _square(attribute(node, "kernel_shape"), "kernels")
        stride = _square(attribute(node, "strides", [kernel]), "strides")
        padding = _square(attribute(node, "pads", [0]), "pads")
        return ctx.builder.pool(ctx.ir(node.input[0]), mode, kernel, stride, padding)

    return translate


def _global_avg(ctx: OnnxContext, node: Any) -> int:
    return ctx.builder.pool(ctx.ir(node.input[0]), "global_avg")


def _reduce_mean(ctx: OnnxContext, node: Any) -> int:
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = list(ctx.values[node.input[1]])
    rank = len(ctx.shape(node.input[0]))
    if sorted(int(a) % rank for a in axes or []) != [2, 3]:
        raise GraphError("a mean over other axes than H and W is not in the IR")
    pooled = ctx.builder.pool(ctx.ir(node.input[0]), "global_avg")
    return pooled if attribute(node, "keepdims", 1) else ctx.builder.flatten(pooled)


def _gemm(ctx: OnnxContext, node: Any) -> int:
    w = ctx.shape(node.input[1])
    features = w[0] if attribute(node, "transB", 0) else w[1]
    bias = len(node.input) > 2 and bool(node.input[2])
    return ctx.builder.linear(ctx.ir(node.input[0]), features, bias=bias)


def _matmul(ctx: OnnxContext, node: Any) -> int:
    a, w = node.input
    if w in ctx.weights:  # x @ W: a linear layer without bias
        return ctx.builder.linear(ctx.ir(a), ctx.weights[w][-1], bias=False)
    return ctx.builder.matmul(ctx.ir(a), ctx.ir(w))


def _flatten(ctx: OnnxContext, node: Any) -> int:
    if int(attribute(node, "axis", 1)) != 1:
        raise GraphError("only a flatten of every dimension after the batch is in the IR")
    return ctx.builder.flatten(ctx.ir(node.input[0]))


def _reshape(ctx: OnnxContext, node: Any) -> int:
    """A reshape to the (constant) target shape: ``0`` copies the input's dimension, ``-1``
    takes what is left. The batch must stay first."""
    x = node.input[0]
    full = ctx.shape(x)
    target = [int(v) for v in ctx.values[node.input[1]]]
    target = [full[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = int(np.prod(full)) // known
    if target[0] != full[0]:
        raise GraphError("it moves the batch dimension (the IR is per sample; keep it first)")
    return ctx.builder.reshape(ctx.ir(x), tuple(target[1:]))


def _transpose(ctx: OnnxContext, node: Any) -> int:
    """A transpose that keeps the batch first: a (costless) reshape to the permuted shape."""
    full = ctx.shape(node.input[0])
    perm = [int(p) for p in (attribute(node, "perm") or reversed(range(len(full))))]
    if perm[0] != 0:
        raise GraphError("it moves the batch dimension (the IR is per sample; keep it first)")
    return ctx.builder.reshape(ctx.ir(node.input[0]), tuple(full[p] for p in perm[1:]))


def _concat(ctx: OnnxContext, node: Any) -> int:
    rank = len(ctx.shape(node.input[0]))
    if int(attribute(node, "axis", 0)) % rank != 1:
        raise GraphError("only a concatenation along channels is in the IR")
    return ctx.builder.concat(*[ctx.ir(n) for n in node.input])


def _slice(ctx: OnnxContext, node: Any) -> int:
    """The first channels of a tensor (``x[:, :c]``), the IR's ``slice``."""
    x = node.input[0]
    full = ctx.shape(x)
    starts, ends = (ctx.values[n].tolist() for n in node.input[1:3])
    axes = ctx.values[node.input[3]].tolist() if len(node.input) > 3 else list(range(len(starts)))
    steps = ctx.values[node.input[4]].tolist() if len(node.input) > 4 else [1] * len(starts)
    cut = {
        int(a) % len(full): (int(s), int(e), int(t))
        for a, s, e, t in zip(axes, starts, ends, steps)
    }
    whole = {a for a, (s, e, t) in cut.items() if s == 0 and t == 1 and e >= full[a]}
    rest = set(cut) - whole
    if not rest:
        return ctx.ir(x)
    if rest != {1} or cut[1][0] != 0 or cut[1][2] != 1:
        raise GraphError("only the first channels of a tensor (x[:, :c]) are a slice in the IR")
    return ctx.builder.slice(ctx.ir(x), min(cut[1][1], full[1]))


def _same(ctx: OnnxContext, node: Any) -> int:
    return ctx.ir(node.input[0])


def _softmax(ctx: OnnxContext, node: Any) -> int:
    return ctx.builder.act(ctx.ir(node.input[0]), "softmax")


for _name, _translate in (
    ("Conv", _conv),
    ("BatchNormalization", _batch_norm),
    ("Relu", _activation("relu")),
    ("Clip", _clip),
    ("Sigmoid", _activation("sigmoid")),
    ("HardSwish", _activation("hswish")),
    ("HardSigmoid", _activation("hsigmoid")),
    ("Tanh", _activation("tanh")),
    ("LeakyRelu", _activation("leaky_relu")),
    ("Gelu", _activation("gelu")),
    ("Add", _elementwise("add")),
    ("Mul", _elementwise("mul")),
    ("AveragePool", _pool("avg")),
    ("MaxPool", _pool("max")),
    ("GlobalAveragePool", _global_avg),
    ("ReduceMean", _reduce_mean),
    ("Gemm", _gemm),
    ("MatMul", _matmul),
    ("Flatten", _flatten),
    ("Reshape", _reshape),
    ("Transpose", _transpose),
    ("Concat", _concat),
    ("Slice", _slice),
    ("Identity", _same),
    ("Dropout", _same),
    ("Softmax", _softmax),
):
    ONNX_IMPORTS.add(_name, _translate)


def _axes(node: Any, ctx: OnnxContext) -> list[int]:
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = ctx.values[node.input[1]]
    return [int(a) for a in axes]


#: shape arithmetic an exporter writes (on constants and ``Shape`` outputs), evaluated here
CONSTANT_OPS: dict[str, Callable[[OnnxContext, Any, list], Any]] = {
    "Constant": lambda ctx, node, xs: numpy_value(attribute(node, "value")),
    "Gather": lambda ctx, node, xs: np.take(xs[0], xs[1], axis=int(attribute(node, "axis", 0))),
    "Unsqueeze": lambda ctx, node, xs: np.expand_dims(xs[0], tuple(_axes(node, ctx))),
    "Squeeze": lambda ctx, node, xs: np.squeeze(xs[0], tuple(_axes(node, ctx))),
    "Concat": lambda ctx, node, xs: np.concatenate(
        [np.atleast_1d(x) for x in xs], axis=int(attribute(node, "axis", 0))
    ),
    "Cast": lambda ctx, node, xs: xs[0],
    "Mul": lambda ctx, node, xs: xs[0] * xs[1],
    "Div": lambda ctx, node, xs: xs[0] // xs[1],
    "Add": lambda ctx, node, xs: xs[0] + xs[1],
    "Sub": lambda ctx, node, xs: xs[0] - xs[1],
}


def numpy_value(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def _dims(value_info: Any) -> tuple[int, ...] | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


def from_onnx(
    path: str | Path | Any,
    name: str = "",
    unknown: Literal["error", "elementwise"] = "error",
) -> nx.DiGraph:
    """The IR graph of the ONNX model at ``path`` (or a loaded ``ModelProto``): one input, a
    fixed batch dimension first (see the module docstring)."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        raise GraphError("from_onnx needs onnx: pip install 'dse[onnx]'") from None
    model: Any = path if hasattr(path, "graph") else onnx.load(str(path))
    model = shape_inference.infer_shapes(model)
    graph = model.graph
    weights = {i.name: tuple(i.dims) for i in graph.initializer}
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise GraphError(f"from_onnx: expected one input tensor, got {[i.name for i in inputs]}")
    shapes = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(info)
        if dims is not None:
            shapes[info.name] = dims
    b = GraphBuilder(name or graph.name or "onnx")
    ctx = OnnxContext(b, shapes=shapes, weights=weights, values=values)
    first = inputs[0].name
    if first not in shapes:
        raise GraphError(f"from_onnx: the input {first!r} has no fixed shape")
    ctx.nodes[first] = b.input(shapes[first][1:])
    batch = shapes[first][0]
    unmapped: list[str] = []
    for node in graph.node:
        if node.op_type == "Shape" and node.input[0] in ctx.nodes:
            ctx.values[node.output[0]] = np.array((batch, *b.shape(ctx.ir(node.input[0]))))
            continue
        if not any(i in ctx.nodes for i in node.input):  # constants and shape arithmetic
            known = all(not i or i in ctx.values for i in node.input)
            if known and node.op_type in CONSTANT_OPS:
                xs = [ctx.values[i] for i in node.input if i]
                ctx.values[node.output[0]] = CONSTANT_OPS[node.op_type](ctx, node, xs)
            continue
        if node.op_type not in ONNX_IMPORTS:
            label = f"{node.op_type} ({node.name or node.output[0]})"
            if unknown != "elementwise":
                unmapped.append(label)
                continue
            data = next(i for i in node.input if i in ctx.nodes)
            warnings.warn(f"costed as elementwise: {label}", stacklevel=2)
            ctx.nodes[node.output[0]] = b.act(ctx.ir(data), "elementwise")
            continue
        try:
            out = ctx.nodes[node.output[0]] = ONNX_IMPORTS[node.op_type](ctx, node)
        except (GraphError, KeyError, ValueError) as exc:
            raise GraphError(f"from_onnx: {node.op_type} ({node.name}): {exc!r}") from None
        ctx.shapes[node.output[0]] = (batch, *b.shape(out))
    if unmapped:
        raise unmapped_error("dse.graph.onnx_import.ONNX_IMPORTS", unmapped)
    return b.build()
