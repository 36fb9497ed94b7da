"""What each ONNX node becomes in the graph IR: the translations
:func:`~dse.graph.onnx_import.from_onnx` reads a model through.

Each translation is registered for an ``op_type`` in :data:`ONNX_IMPORTS` (a new mapping is a
registration; ``dse.graph.ONNX_IMPORTS`` is where a user adds one) and reads an
:class:`OnnxContext`: the builder, the IR node of every data tensor, the inferred shapes and
the initializers. What an exporter spells in several nodes is read back as the one op a
PyTorch module wrote: ``MatMul`` by a weight and the ``Add`` of its bias, a group norm
(reshape, ``InstanceNormalization``, reshape, scale, shift), a channel shuffle (reshape,
``Transpose``, reshape: :mod:`dse.graph.shuffle_ops`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.graph.builder import GraphBuilder
from dse.graph.onnx_constants import attribute, axes
from dse.graph.ops import GraphError, numel, weight_reader
from dse.graph.shuffle_ops import channel_groups
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
    users: dict[str, list[Any]] = field(default_factory=dict)  # tensor -> the nodes reading it
    aliases: dict[str, str] = field(default_factory=dict)  # a node's output -> the tensor it is
    origins: dict[str, str] = field(default_factory=dict)  # a copied weight -> its initializer
    owned: set[str] = field(default_factory=set)  # initializers an op has counted

    def tied(self, name: str) -> dict[str, Any]:
        """The op attributes of one reading weight ``name``: the first reader counts it, a later
        one is ``tied`` to it (reads it, counts no parameters: shared weights once)."""
        return weight_reader(self.owned, self.origins.get(name, name))

    def is_weight(self, name: str) -> bool:
        """An initializer, or computed from initializers only (a transposed weight)."""
        return name in self.weights or (name in self.values and name not in self.nodes)

    def learned(self, name: str) -> int:
        """The number of elements of ``name`` when it is an initializer or a copy, transpose or
        reshape of one (a learned tensor), else 0."""
        name = self.origins.get(name, name)
        return int(np.prod(self.weights[name])) if name in self.weights else 0

    def ir(self, name: str) -> int:
        if name not in self.nodes:
            raise GraphError(f"{name!r} is not a tensor computed from the model's input")
        return self.nodes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name) or self.weights[name]


#: ONNX ``op_type`` -> a translation ``(context, node) -> IR node``
ONNX_IMPORTS: Registry[Callable[[OnnxContext, Any], int]] = Registry("onnx import")


def _square(values: Any, what: str) -> int:
    values = [int(v) for v in (values or [1])]
    if len(set(values)) > 1:
        raise GraphError(f"non-square {what} are not in the IR, got {values}")
    return values[0]


def _conv(ctx: OnnxContext, node: Any) -> int:
    x, w = node.input[0], node.input[1]
    cout, _, k, _ = ctx.shape(w)
    stride = _square(attribute(node, "strides"), "strides")
    padding = _square(attribute(node, "pads", [0]), "pads")
    groups = int(attribute(node, "group", 1))
    bias = len(node.input) > 2 and bool(node.input[2])
    kw: dict[str, Any] = {"padding": padding, "bias": bias, **ctx.tied(w)}
    dilation = _square(attribute(node, "dilations"), "dilations")
    if dilation != 1:
        kw["dilation"] = dilation
    cin = ctx.shape(x)[1]
    b = ctx.builder
    if groups == cin == cout and groups > 1:
        return b.dwconv(ctx.ir(x), k, stride, **kw)
    return b.conv(ctx.ir(x), cout, k, stride, groups=groups, **kw)


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
        x = ctx.ir(tensor)
        per_sample = ctx.builder.shape(x)
        learned = ctx.learned(constant) if constant in ctx.weights else 0
        if kind == "add" and learned == numel(per_sample) > 1:  # a position table: one sample's
            table = ctx.builder.add("constant", (), shape=per_sample)  # size, over the batch
            return ctx.builder.add("add", (x, table))
        return ctx.builder.act(x, "elementwise")  # a scale, a shift, a mask: elementwise

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
    named = axes(node, ctx)
    rank = len(ctx.shape(node.input[0]))
    if sorted(a % rank for a in named) != [2, 3]:
        raise GraphError("a mean over other axes than H and W is not in the IR")
    pooled = ctx.builder.pool(ctx.ir(node.input[0]), "global_avg")
    return pooled if attribute(node, "keepdims", 1) else ctx.builder.flatten(pooled)


def _gemm(ctx: OnnxContext, node: Any) -> int:
    w = ctx.shape(node.input[1])
    features = w[0] if attribute(node, "transB", 0) else w[1]
    bias = len(node.input) > 2 and bool(node.input[2])
    return ctx.builder.linear(ctx.ir(node.input[0]), features, bias=bias, **ctx.tied(node.input[1]))


def _matmul(ctx: OnnxContext, node: Any) -> int:
    """``x @ W`` with ``W`` an initializer (or one transposed): a linear layer, with the bias
    the ``Add`` after it adds (exporters write ``nn.Linear`` on 3-D inputs so); two tensors:
    the IR's ``matmul``."""
    a, w = node.input
    if not ctx.is_weight(w):
        return ctx.builder.matmul(ctx.ir(a), ctx.ir(w))
    features = int(ctx.shape(w)[-1]) if w in ctx.weights else int(ctx.values[w].shape[-1])
    readers = ctx.users.get(node.output[0], [])
    bias = None
    if len(readers) == 1 and getattr(readers[0], "op_type", None) == "Add":
        other = next(i for i in readers[0].input if i != node.output[0])
        if other in ctx.weights and tuple(ctx.weights[other]) == (features,):
            bias = readers[0].output[0]
    if bias is not None:
        ctx.aliases[bias] = node.output[0]
    return ctx.builder.linear(ctx.ir(a), features, bias=bias is not None, **ctx.tied(w))


def _flatten(ctx: OnnxContext, node: Any) -> int:
    if int(attribute(node, "axis", 1)) != 1:
        raise GraphError("only a flatten of every dimension after the batch is in the IR")
    return ctx.builder.flatten(ctx.ir(node.input[0]))


def _reshape(ctx: OnnxContext, node: Any) -> int:
    """A reshape to the (constant) target shape: ``0`` copies the input's dimension, ``-1``
    takes what is left. The batch must stay first."""
    x = node.input[0]
    full = ctx.shape(x)
    grouped = _group_norm(ctx, node)
    if grouped is not None:
        return grouped
    target = [int(v) for v in ctx.values[node.input[1]]]
    target = [full[i] if v == 0 else v for i, v in enumerate(target)]
    if -1 in target:
        known = int(np.prod([v for v in target if v != -1]))
        target[target.index(-1)] = int(np.prod(full)) // known
    if target[0] != full[0]:
        raise GraphError("it moves the batch dimension (the IR is per sample; keep it first)")
    source = ctx.ir(x)
    groups = _shuffle_groups(ctx, node, tuple(full), tuple(target))
    if groups:  # the shuffle's copy, then the views as exported
        source = ctx.builder.shuffle(source, groups)
    return ctx.builder.reshape(source, tuple(target[1:]))


def _shuffle_groups(ctx: OnnxContext, node: Any, before: tuple, after: tuple) -> int:
    """``g`` where reshape ``node`` splits channels, (n, c, *s) -> (n, g, c / g, *s), its one
    reader is a ``Transpose`` that swaps the two, and a ``Reshape`` reads that back as
    (n, c, *s): ShuffleNet's channel shuffle, which copies every element (0 where it is not
    one)."""
    groups = channel_groups(before, after)
    swap = _only_reader(ctx, node.output[0], "Transpose") if groups else None
    swapped = [0, 2, 1, *range(3, len(after))]
    if swap is None or [int(p) for p in attribute(swap, "perm") or ()] != swapped:
        return 0
    back = _only_reader(ctx, swap.output[0], "Reshape")
    read_back = ctx.shapes.get(back.output[0]) if back else None
    return groups if read_back is not None and tuple(read_back) == before else 0


def _only_reader(ctx: OnnxContext, tensor: str, op_type: str) -> Any:
    readers = ctx.users.get(tensor, [])
    if len(readers) == 1 and getattr(readers[0], "op_type", None) == op_type:
        return readers[0]
    return None


def _group_norm(ctx: OnnxContext, node: Any) -> int | None:
    """``nn.GroupNorm`` as exporters write it: a reshape to (batch, groups, -1), an
    ``InstanceNormalization``, a reshape back, then (affine) a ``Mul`` and an ``Add`` of
    per-channel weights. Found at its first reshape: one IR group norm, the rest aliases of
    it; None where ``node`` starts no such pattern."""
    norm = _only_reader(ctx, node.output[0], "InstanceNormalization")
    back = norm and _only_reader(ctx, norm.output[0], "Reshape")
    if not back:
        return None
    full = ctx.shape(node.input[0])
    groups, channels = int(ctx.shapes[node.output[0]][1]), int(full[1])
    scale = _only_reader(ctx, back.output[0], "Mul")
    shift = scale and _only_reader(ctx, scale.output[0], "Add")
    per_channel = [max(ctx.learned(i) for i in n.input) for n in (scale, shift) if n]
    x = ctx.ir(node.input[0])
    if shift and per_channel == [channels, channels]:
        out = ctx.builder.norm(x, "group", groups=groups)
        tail = [norm, back, scale, shift]
    else:  # without weights (an exporter's ones and zeros, if any, change nothing)
        out = ctx.builder.norm(x, "batch_stats")
        tail = [norm, back] + ([scale, shift] if shift and per_channel == [0, 0] else [])
    for n in tail:
        ctx.aliases[n.output[0]] = node.output[0]
    return out


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
    dims = ctx.values[node.input[3]].tolist() if len(node.input) > 3 else list(range(len(starts)))
    steps = ctx.values[node.input[4]].tolist() if len(node.input) > 4 else [1] * len(starts)
    cut = {
        int(a) % len(full): (int(s), int(e), int(t))
        for a, s, e, t in zip(dims, starts, ends, steps)
    }
    whole = {a for a, (s, e, t) in cut.items() if s == 0 and t == 1 and e >= full[a]}
    rest = set(cut) - whole
    if not rest:
        return ctx.ir(x)
    if 0 in rest:
        raise GraphError("it slices the batch dimension (the IR is per sample)")
    if rest == {1} and cut[1][0] == 0 and cut[1][2] == 1:  # the first channels: x[:, :c]
        return ctx.builder.slice(ctx.ir(x), min(cut[1][1], full[1]))
    shape = list(full)
    for a, (s, e, t) in cut.items():
        shape[a] = len(range(*slice(s, e, t).indices(full[a])))
    return ctx.builder.add("slice", (ctx.ir(x),), shape=tuple(shape[1:]))


def _layer_norm(ctx: OnnxContext, node: Any) -> int:
    affine = len(node.input) > 1 and ctx.learned(node.input[1]) > 0  # not an exporter's ones
    return ctx.builder.norm(ctx.ir(node.input[0]), "layer" if affine else "batch_stats")


def _split(ctx: OnnxContext, node: Any) -> int:
    """Each piece a costless ``slice`` of its inferred shape (the IR's view of a part)."""
    x = ctx.ir(node.input[0])
    full = ctx.shape(node.input[0])
    axis = int(attribute(node, "axis", 0)) % len(full)
    if axis == 0:
        raise GraphError("it splits the batch dimension (the IR is per sample)")
    if len(node.input) > 1 and node.input[1]:
        sizes = [int(v) for v in ctx.values[node.input[1]]]
    else:
        sizes = attribute(node, "split") or [full[axis] // len(node.output)] * len(node.output)
    for out, size in zip(node.output, sizes, strict=True):
        if out in ctx.users:  # a piece nothing reads costs nothing
            shape = (*full[1:axis], int(size), *full[axis + 1 :])
            ctx.nodes[out] = ctx.builder.add("slice", (x,), shape=shape)
            ctx.shapes[out] = (full[0], *shape)
    return ctx.nodes.get(node.output[0], x)


def _gather(ctx: OnnxContext, node: Any) -> int:
    """Rows of a weight table at the input's indices: an ``embedding``; ``x[:, i]`` (a gather
    of one index after the batch): a costless ``slice``."""
    table, index = node.input[0], node.input[1]
    if table in ctx.weights and index in ctx.nodes:
        vocab, dim = ctx.weights[table]
        return ctx.builder.embedding(ctx.ir(index), int(vocab), int(dim), **ctx.tied(table))
    if int(attribute(node, "axis", 0)) % len(ctx.shape(node.input[0])) == 0:
        raise GraphError("it gathers along the batch dimension (the IR is per sample)")
    if node.input[1] not in ctx.values or np.size(ctx.values[node.input[1]]) != 1:
        raise GraphError("only a gather of one constant index is in the IR")
    full, axis = ctx.shape(node.input[0]), int(attribute(node, "axis", 0))
    axis %= len(full)
    kept = () if np.ndim(ctx.values[node.input[1]]) == 0 else (1,)  # x[:, i] or x[:, [i]]
    shape = (*full[1:axis], *kept, *full[axis + 1 :])
    return ctx.builder.add("slice", (ctx.ir(node.input[0]),), shape=shape)


def _squeeze(ctx: OnnxContext, node: Any) -> int:
    """``Squeeze``/``Unsqueeze`` of a data tensor after the batch: a (costless) reshape."""
    full = list(ctx.shape(node.input[0]))
    named = axes(node, ctx)
    if node.op_type == "Squeeze":
        gone = (
            {a % len(full) for a in named} if named else {i for i, d in enumerate(full) if d == 1}
        )
        shape = [d for i, d in enumerate(full) if i not in gone]
    else:
        shape = list(full)
        for a in sorted(a % (len(full) + len(named)) for a in named):
            shape.insert(a, 1)
    if not shape or shape[0] != full[0]:
        raise GraphError("it moves the batch dimension (the IR is per sample; keep it first)")
    return ctx.builder.reshape(ctx.ir(node.input[0]), tuple(shape[1:]))


def _resize(ctx: OnnxContext, node: Any) -> int:
    """``Resize`` of a (batch, C, H, W) map, nearest or linear: the IR's ``upsample`` to the
    output's shape (inferred, or from the node's ``sizes`` or ``scales``)."""
    mode = attribute(node, "mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    modes = {"nearest": "nearest", "linear": "bilinear"}
    if mode not in modes:
        raise GraphError(f"a {mode} resize is not in the IR (nearest and linear are)")
    full = ctx.shape(node.input[0])
    out = ctx.shapes.get(node.output[0])
    if out is None:
        sizes = node.input[3] if len(node.input) > 3 and node.input[3] else None
        if sizes is not None:
            out = tuple(int(v) for v in ctx.values[sizes])
        else:
            scales = ctx.values[node.input[2]]
            out = tuple(int(d * f) for d, f in zip(full, scales, strict=True))
    if out[:2] != full[:2]:
        raise GraphError("only a resize of height and width is in the IR")
    return ctx.builder.upsample(ctx.ir(node.input[0]), out[1:], modes[mode])


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
    ("LayerNormalization", _layer_norm),
    ("Split", _split),
    ("Gather", _gather),
    ("Resize", _resize),
    ("Squeeze", _squeeze),
    ("Unsqueeze", _squeeze),
    ("Sub", _elementwise("add")),
    ("Div", _elementwise("mul")),
):
    ONNX_IMPORTS.add(_name, _translate)
