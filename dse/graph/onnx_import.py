"""An ONNX model into the graph IR: :func:`from_onnx` (models from any framework).

The model's shapes come from ONNX's own shape inference; each node becomes IR ops through a
translation registered for its ``op_type`` in :data:`ONNX_IMPORTS`
(:mod:`dse.graph.onnx_translations`; as PyTorch operators do in
:mod:`dse.graph.aten_translations`: a new mapping is a registration). Shapes in the IR are per
sample, so the batch dimension is dropped. Nodes that compute only on constants (the shape
arithmetic an exporter writes around a ``Reshape``: ``Shape``, ``Gather``, ``Unsqueeze``,
``Concat`` of integers) are not part of the network and are skipped.

What an exporter spells in several nodes is read back as the one op a PyTorch module wrote:
``MatMul`` by a weight and the ``Add`` of its bias (``nn.Linear`` on a 3-D input), a group norm
(reshape, ``InstanceNormalization``, reshape, scale, shift), a class token (``Expand`` of a
parameter), a weight table a second op reads (counted once).

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
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np

from dse.graph.builder import GraphBuilder
from dse.graph.onnx_constants import CONSTANT_OPS, VIEW_OPS
from dse.graph.onnx_translations import ONNX_IMPORTS, OnnxContext
from dse.graph.ops import GraphError, numel, unmapped_error

__all__ = ["ONNX_IMPORTS", "OnnxContext", "from_onnx"]


def _expanded_parameter(ctx: OnnxContext, node: Any) -> int:
    """``Expand`` of a parameter over the batch (a class token): the IR's ``constant``. It has
    no data input, so the import reaches it before the shape arithmetic it stands among."""
    out, weight = node.output[0], node.input[0]
    if out not in ctx.shapes:  # the target shape is shape arithmetic
        target = [int(v) for v in ctx.values[node.input[1]]]
        ctx.shapes[out] = tuple(np.broadcast_shapes(ctx.weights[weight], target))
    shape = tuple(int(v) for v in ctx.shapes[out][1:])
    if ctx.learned(weight) != numel(shape):
        raise GraphError(f"from_onnx: Expand ({node.name}): a parameter broadcast beyond the batch")
    return ctx.builder.add("constant", (), shape=shape)


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
    model = shape_inference.infer_shapes(model, data_prop=True)
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
    for node in graph.node:
        for i in node.input:
            ctx.users.setdefault(i, []).append(node)
        source = node.input[0] if node.input else ""
        if node.op_type in VIEW_OPS and (source in weights or source in ctx.origins):
            ctx.origins[node.output[0]] = ctx.origins.get(source, source)  # the same weights
    for out in graph.output:
        ctx.users.setdefault(out.name, []).append(out)
    unmapped: list[str] = []
    for node in graph.node:
        if node.output and node.output[0] in ctx.aliases:  # a bias add, a group norm's tail
            ctx.nodes[node.output[0]] = ctx.nodes[ctx.aliases[node.output[0]]]
            continue
        if node.op_type == "Expand" and node.input[0] in ctx.weights:  # a class token
            ctx.nodes[node.output[0]] = _expanded_parameter(ctx, node)
            continue
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
        if unmapped:  # keep collecting the unmapped nodes; the rest cannot be built anyway
            continue
        try:
            out = ctx.nodes[node.output[0]] = ONNX_IMPORTS[node.op_type](ctx, node)
        except (GraphError, KeyError, ValueError) as exc:
            raise GraphError(f"from_onnx: {node.op_type} ({node.name}): {exc!r}") from None
        ctx.shapes[node.output[0]] = (batch, *b.shape(out))
    if unmapped:
        raise unmapped_error("dse.graph.onnx_import.ONNX_IMPORTS", unmapped)
    return b.build()
