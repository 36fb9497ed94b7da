"""What each traced ATen operator becomes in the graph IR: the translations
:func:`~dse.graph.torch_import.from_torch` reads a traced module through.

Each translation is registered for an operator name in :data:`TORCH_IMPORTS` (a new mapping
is a registration, never an if-chain; ``dse.graph.TORCH_IMPORTS`` is where a user adds one)
and reads an :class:`ImportContext`: the builder, the IR node of every traced value and the
traced shapes. Shapes in the IR are per sample, so the traced batch dimension is dropped.
What PyTorch spells in several operators is read back as one IR op where the IR has it: a
chain of single-use adds is one n-ary ``add``; a view that splits the channels into groups, a
swap of the two and a view back is a channel ``shuffle`` (:mod:`dse.graph.shuffle_ops`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dse.graph.builder import GraphBuilder
from dse.graph.ops import GraphError, weight_reader
from dse.graph.shuffle_ops import channel_groups
from dse.registry import Registry


@dataclass
class ImportContext:
    """What a translation reads and writes: the builder, the IR node of every traced value,
    and the traced shapes (batch dimension included)."""

    builder: GraphBuilder
    nodes: dict[str, int] = field(default_factory=dict)  # traced node name -> IR node
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)  # placeholder -> shape
    #: sums not built yet: a chain a + b + c of single-use adds is one n-ary IR ``add``
    pending: dict[str, list[int]] = field(default_factory=dict)
    #: parameters an op has already counted (a second reader of one is tied to it)
    owned: set[str] = field(default_factory=set)

    def summands(self, arg: Any) -> list[int]:
        """The IR operands ``arg`` contributes to a sum (a pending sum's, or itself)."""
        return self.pending.pop(arg.name) if arg.name in self.pending else [self.ir(arg)]

    def ir(self, arg: Any) -> int:
        """The IR node of a traced tensor argument (a parameter read directly, as ViT's position
        embedding is, becomes a ``constant`` node, made once)."""
        name = getattr(arg, "name", None)
        if name in self.params and name not in self.nodes:
            shape = self.params[name]
            self.nodes[name] = self.constant(name, shape[1:] if shape[:1] == (1,) else shape)
        if name not in self.nodes:
            raise GraphError(f"{arg} is not a tensor the IR has (a constant or a parameter)")
        return self.nodes[name]

    def constant(self, name: str, shape: tuple[int, ...]) -> int:
        """A ``constant`` IR node of per-sample ``shape`` holding parameter ``name``."""
        if math.prod(shape) != math.prod(self.params[name]):
            raise GraphError(
                f"parameter {name} of shape {list(self.params[name])} is broadcast to "
                f"{list(shape)} per sample (only a broadcast over the batch is in the IR)"
            )
        return self.builder.add("constant", (), shape=tuple(shape), **self.weights(name))

    def weights(self, arg: Any) -> dict[str, Any]:
        """The op attributes of one reading parameter ``arg``: the first reader counts it, a
        later one is ``tied`` to it (reads it, counts no parameters: shared weights once)."""
        name = arg if isinstance(arg, str) else str(getattr(arg, "name", arg))
        return weight_reader(self.owned, name)

    def shape(self, arg: Any) -> tuple[int, ...]:
        return self.shapes.get(arg.name) or self.params[arg.name]

    def is_tensor(self, arg: Any) -> bool:
        name = getattr(arg, "name", None)
        return name in self.nodes or name in self.pending or name in self.params


#: ATen operator name (``conv2d``, ``add.Tensor``: the overload-less name also matches) -> a
#: translation ``(context, node) -> IR node`` (None: deferred into a later op, as a partial sum)
TORCH_IMPORTS: Registry[Callable[[ImportContext, Any], int | None]] = Registry("torch import")


def _arg(node: Any, i: int, name: str, default: Any) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _pair(v: Any) -> int:
    """One side of a square window or stride (non-square ones are refused: the IR is square)."""
    values = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(set(values)) > 1:
        raise GraphError(f"non-square windows are not in the IR, got {values}")
    return int(values[0]) if values else 1


def _conv(ctx: ImportContext, node: Any) -> int:
    x, w = node.args[0], node.args[1]
    bias = _arg(node, 2, "bias", None) is not None
    stride, padding = _pair(_arg(node, 3, "stride", 1)), _pair(_arg(node, 4, "padding", 0))
    if isinstance(padding, str):
        raise GraphError("padding given by name; give it in pixels")
    kw = {"padding": padding, "bias": bias, **ctx.weights(w)}
    dilation = _pair(_arg(node, 5, "dilation", 1))
    if dilation != 1:
        kw["dilation"] = dilation
    groups = int(_arg(node, 6, "groups", 1))
    cout, cin_g, k, _ = ctx.shape(w)
    cin = ctx.shape(x)[1]
    b = ctx.builder
    if groups == cin and cout == cin and groups > 1:
        return b.dwconv(ctx.ir(x), k, stride, **kw)
    return b.conv(ctx.ir(x), cout, k, stride, groups=groups, **kw)


def _batch_norm(ctx: ImportContext, node: Any) -> int:
    affine = node.args[1] is not None
    return ctx.builder.norm(ctx.ir(node.args[0]), "batch" if affine else "batch_stats")


def _layer_norm(ctx: ImportContext, node: Any) -> int:
    """``layer_norm(x, shape, weight, bias)``; without weights, statistics only."""
    if _arg(node, 2, "weight", None) is None:
        return ctx.builder.norm(ctx.ir(node.args[0]), "batch_stats")
    return ctx.builder.norm(ctx.ir(node.args[0]), "layer")


def _group_norm(ctx: ImportContext, node: Any) -> int:
    """``group_norm(x, groups, weight, bias)``; without weights, statistics only."""
    if _arg(node, 2, "weight", None) is None:
        return ctx.builder.norm(ctx.ir(node.args[0]), "batch_stats")
    return ctx.builder.norm(ctx.ir(node.args[0]), "group", groups=int(node.args[1]))


def _activation(mode: str) -> Callable[[ImportContext, Any], int]:
    def translate(ctx: ImportContext, node: Any) -> int:
        return ctx.builder.act(ctx.ir(node.args[0]), mode)

    return translate


def _sums_into_another_add(node: Any) -> bool:
    """Whether ``node`` (an add of two tensors) is read only by another add of two tensors:
    then both are one n-ary IR ``add`` (as the IR writes a cell's sum of its edges)."""
    users = list(node.users)
    return (
        len(users) == 1
        and op_name(users[0].target)[0] == "add.Tensor"
        and all(hasattr(a, "name") for a in users[0].args[:2])
    )


def _elementwise(kind: str) -> Callable[[ImportContext, Any], int | None]:
    """``add``/``mul`` of two tensors (a chain of adds is one n-ary ``add``); a tensor times
    the constant 0 is the IR's ``zero``."""

    def translate(ctx: ImportContext, node: Any) -> int | None:
        a, other = node.args[0], node.args[1]
        if kind == "add" and ctx.is_tensor(a) and ctx.is_tensor(other):
            operands = ctx.summands(a) + ctx.summands(other)
            if _sums_into_another_add(node):
                ctx.pending[node.name] = operands
                return None
            return ctx.builder.add("add", tuple(operands))
        if ctx.is_tensor(a) and ctx.is_tensor(other):
            return ctx.builder.add(kind, (ctx.ir(a), ctx.ir(other)))
        tensor = a if ctx.is_tensor(a) else other
        constant = other if tensor is a else a
        if not isinstance(constant, (int, float)):
            raise GraphError(f"{kind} of a tensor and {constant!r} is not in the IR")
        if kind == "mul" and constant == 0:
            return ctx.builder.zero(ctx.ir(tensor))
        return _scalar(ctx, node)

    return translate


def _scalar(ctx: ImportContext, node: Any) -> int:
    """A tensor and a number (a scale, a shift): one elementwise op of the tensor's shape."""
    tensor = next(a for a in node.args if ctx.is_tensor(a))
    return ctx.builder.act(ctx.ir(tensor), "elementwise")


def _expand(ctx: ImportContext, node: Any) -> int:
    """``expand`` over the batch: of a parameter (ViT's class token), the parameter as a
    ``constant`` of the expanded per-sample shape; of a tensor, the tensor itself."""
    x, shape = node.args[0], ctx.shapes[node.name][1:]
    if x.name in ctx.params and x.name not in ctx.nodes:
        ctx.nodes[x.name] = ctx.constant(x.name, shape)
        return ctx.nodes[x.name]
    if ctx.builder.shape(ctx.ir(x)) != shape:
        raise GraphError("only an expand over the batch dimension is in the IR")
    return ctx.ir(x)


def _pieces(ctx: ImportContext, node: Any) -> None:
    """``split``/``chunk``/``unbind``: nothing yet; each piece read (``getitem``) is a view."""
    ctx.ir(node.args[0])  # the source must be a tensor the IR has


def _select(ctx: ImportContext, node: Any) -> int:
    """``x[:, i]`` (``select`` of one index along a dim after the batch): a costless view."""
    if int(node.args[1]) % len(ctx.shape(node.args[0])) == 0:
        raise GraphError("it selects along the batch dimension (the IR is per sample)")
    return ctx.builder.add("slice", (ctx.ir(node.args[0]),), shape=ctx.shapes[node.name][1:])


def _getitem(ctx: ImportContext, node: Any) -> int | None:
    """One piece of a split, chunk or unbind: a costless ``slice`` of its traced shape (none
    for a piece nothing reads)."""
    source = node.args[0]
    if not node.users:
        return None
    if op_name(getattr(source, "target", None))[1].split(".")[0] not in SPLITS:
        raise GraphError("only the pieces of a split, chunk or unbind are read by index")
    return ctx.builder.add("slice", (ctx.ir(source.args[0]),), shape=ctx.shapes[node.name][1:])


#: the ATen operators that cut a tensor into pieces read by ``getitem``
SPLITS = ("split", "split_with_sizes", "chunk", "unbind", "tensor_split")


def _pool(mode: str) -> Callable[[ImportContext, Any], int]:
    def translate(ctx: ImportContext, node: Any) -> int:
        kernel = _pair(node.args[1])
        stride = _pair(_arg(node, 2, "stride", None) or kernel)
        padding = _pair(_arg(node, 3, "padding", 0))
        return ctx.builder.pool(ctx.ir(node.args[0]), mode, kernel, stride, padding)

    return translate


def _adaptive_avg_pool(ctx: ImportContext, node: Any) -> int:
    if [int(v) for v in node.args[1]] != [1, 1]:
        raise GraphError(f"adaptive pooling to {list(node.args[1])} is not in the IR (only 1x1)")
    return ctx.builder.pool(ctx.ir(node.args[0]), "global_avg")


def _mean(ctx: ImportContext, node: Any) -> int:
    dims = sorted(int(d) % len(ctx.shape(node.args[0])) for d in node.args[1])
    if dims != [2, 3]:
        raise GraphError(f"a mean over dims {dims} is not in the IR (only a global 2-D mean)")
    pooled = ctx.builder.pool(ctx.ir(node.args[0]), "global_avg")
    keep = _arg(node, 2, "keepdim", False)
    return pooled if keep else ctx.builder.flatten(pooled)


def _linear(ctx: ImportContext, node: Any) -> int:
    features = ctx.shape(node.args[1])[0]
    bias = _arg(node, 2, "bias", None) is not None
    return ctx.builder.linear(
        ctx.ir(node.args[0]), features, bias=bias, **ctx.weights(node.args[1])
    )


def _flatten(ctx: ImportContext, node: Any) -> int:
    """A flatten of everything after the batch is the IR's flatten; of some dims, a reshape."""
    rank = len(ctx.shape(node.args[0]))
    start, end = int(_arg(node, 1, "start_dim", 0)) % rank, int(_arg(node, 2, "end_dim", -1)) % rank
    if start == 0:
        raise GraphError("it flattens the batch dimension (the IR is per sample)")
    if (start, end) == (1, rank - 1):
        return ctx.builder.flatten(ctx.ir(node.args[0]))
    return _reshape(ctx, node)


def _reshape(ctx: ImportContext, node: Any) -> int:
    shape = ctx.shapes[node.name][1:]
    x = ctx.ir(node.args[0])
    groups = _shuffle_groups(ctx, node)
    if groups:  # the shuffle's copy, then the views as traced
        x = ctx.builder.shuffle(x, groups)
    return ctx.builder.reshape(x, shape)


def _swaps_groups(node: Any, rank: int) -> bool:
    """Whether ``node`` swaps dimensions 1 and 2 of a rank-``rank`` tensor (and nothing else)."""
    name = op_name(node.target)[1]
    if name == "transpose.int":
        return {int(node.args[1]) % rank, int(node.args[2]) % rank} == {1, 2}
    if name == "permute":
        return [int(d) % rank for d in node.args[1]] == [0, 2, 1, *range(3, rank)]
    return False


def _shuffle_groups(ctx: ImportContext, node: Any) -> int:
    """``g`` where view ``node`` splits channels, (n, c, *s) -> (n, g, c / g, *s), its one reader
    swaps the two, and that is read back as (n, c, *s) (through any ``contiguous()``): ShuffleNet's
    channel shuffle, whose reshape copies every element (0 where it is not one)."""
    before = ctx.shape(node.args[0])
    groups = channel_groups(before, ctx.shapes[node.name])
    if not groups or len(node.users) != 1:
        return 0
    (swap,) = node.users
    readers = list(swap.users) if _swaps_groups(swap, len(before) + 1) else []
    while len(readers) == 1 and op_name(readers[0].target)[1] in ("contiguous", "clone"):
        readers = list(readers[0].users)
    if len(readers) != 1 or op_name(readers[0].target)[1] not in ("view", "reshape"):
        return 0
    read_back = getattr(readers[0].meta.get("val"), "shape", None)  # not translated yet
    return groups if read_back is not None and tuple(read_back) == before else 0


def _cat(ctx: ImportContext, node: Any) -> int:
    tensors = node.args[0]
    if int(_arg(node, 1, "dim", 0)) % len(ctx.shape(tensors[0])) != 1:
        raise GraphError("only a concatenation along channels is in the IR")
    return ctx.builder.concat(*[ctx.ir(t) for t in tensors])


def _slice(ctx: ImportContext, node: Any) -> int:
    x = node.args[0]
    dim, start = int(_arg(node, 1, "dim", 0)), _arg(node, 2, "start", None)
    end = _arg(node, 3, "end", None)
    full = ctx.shape(x)
    dim %= len(full)
    if dim == 0 and (start in (None, 0)) and (end is None or end >= full[0]):
        return ctx.ir(x)  # the whole batch: a view
    if dim != 1 or start not in (None, 0) or int(_arg(node, 4, "step", 1)) != 1:
        raise GraphError("only the first channels of a tensor (x[:, :c]) are a slice in the IR")
    return ctx.builder.slice(ctx.ir(x), min(int(end), full[1]))


def _same(ctx: ImportContext, node: Any) -> int:
    """An op the IR needs no node for (a dropout in eval, a contiguous copy, a clone)."""
    return ctx.ir(node.args[0])


def _matmul(ctx: ImportContext, node: Any) -> int:
    return ctx.builder.matmul(ctx.ir(node.args[0]), ctx.ir(node.args[1]))


def _view_as_traced(ctx: ImportContext, node: Any) -> int:
    """A transpose or permute that keeps the batch first: the IR keeps the traced shape as a
    (costless) reshape. One that moves the batch dimension has no per-sample meaning."""
    rank = len(ctx.shape(node.args[0]))
    target = op_name(node.target)[0]
    if target.startswith("permute"):
        moved = int(node.args[1][0]) % rank != 0
    elif target.startswith("transpose"):
        moved = 0 in {int(node.args[1]) % rank, int(node.args[2]) % rank}
    else:  # t(): a 2-D transpose, the batch and the features
        moved = True
    if moved:
        raise GraphError("it moves the batch dimension (the IR is per sample; keep it first)")
    return ctx.builder.reshape(ctx.ir(node.args[0]), ctx.shapes[node.name][1:])


def _sdpa(ctx: ImportContext, node: Any) -> int:
    """``scaled_dot_product_attention(q, k, v)``: ``softmax(q k^T) v`` as IR matmuls and a
    softmax, the scores materialised (as an eager framework's math path does)."""
    q, k, v = (ctx.ir(a) for a in node.args[:3])
    b = ctx.builder
    scores = b.matmul(q, k, transpose_b=True)
    return b.matmul(b.act(scores, "softmax"), v)


def _conv_transpose(ctx: ImportContext, node: Any) -> int:
    x, w = node.args[0], node.args[1]
    stride = _pair(_arg(node, 3, "stride", 1))
    padding, output_padding = (
        _pair(_arg(node, 4, "padding", 0)),
        _pair(_arg(node, 5, "output_padding", 0)),
    )
    _, cout, k, _ = ctx.shape(w)
    if int(_arg(node, 6, "groups", 1)) != 1 or padding != k // 2 or output_padding != stride - 1:
        raise GraphError("only an ungrouped, 'same'-padded transposed convolution is in the IR")
    bias = _arg(node, 2, "bias", None) is not None
    return ctx.builder.deconv(ctx.ir(x), cout, k, stride, bias=bias, **ctx.weights(w))


def _embedding(ctx: ImportContext, node: Any) -> int:
    vocab, dim = ctx.shape(node.args[0])
    return ctx.builder.embedding(ctx.ir(node.args[1]), vocab, dim, **ctx.weights(node.args[0]))


def _upsample(mode: str) -> Callable[[ImportContext, Any], int]:
    """``upsample_nearest2d``/``upsample_bilinear2d`` (``nn.Upsample``, ``F.interpolate``) to
    the traced shape, by size or by scale alike."""

    def translate(ctx: ImportContext, node: Any) -> int:
        return ctx.builder.upsample(ctx.ir(node.args[0]), ctx.shapes[node.name][1:], mode)

    return translate


def _softmax(ctx: ImportContext, node: Any) -> int:
    return ctx.builder.act(ctx.ir(node.args[0]), "softmax")


for _name, _translate in (
    ("conv2d", _conv),
    ("convolution", _conv),
    ("batch_norm", _batch_norm),
    ("_native_batch_norm_legit_no_training", _batch_norm),
    ("layer_norm", _layer_norm),
    ("group_norm", _group_norm),
    ("relu", _activation("relu")),
    ("relu_", _activation("relu")),
    ("hardtanh", _activation("relu6")),
    ("hardtanh_", _activation("relu6")),
    ("relu6", _activation("relu6")),
    ("sigmoid", _activation("sigmoid")),
    ("silu", _activation("swish")),
    ("hardswish", _activation("hswish")),
    ("hardsigmoid", _activation("hsigmoid")),
    ("gelu", _activation("gelu")),
    ("tanh", _activation("tanh")),
    ("leaky_relu", _activation("leaky_relu")),
    ("add.Tensor", _elementwise("add")),
    ("add_.Tensor", _elementwise("add")),
    ("mul.Tensor", _elementwise("mul")),
    ("mul_.Tensor", _elementwise("mul")),
    ("div.Tensor", _elementwise("mul")),
    ("sub.Tensor", _elementwise("add")),
    ("mul.Scalar", _scalar),
    ("add.Scalar", _scalar),
    ("rsub.Scalar", _scalar),
    ("pow.Tensor_Scalar", _scalar),
    ("expand", _expand),
    ("getitem", _getitem),
    ("select.int", _select),
    ("avg_pool2d", _pool("avg")),
    ("max_pool2d", _pool("max")),
    ("adaptive_avg_pool2d", _adaptive_avg_pool),
    ("mean.dim", _mean),
    ("linear", _linear),
    ("flatten.using_ints", _flatten),
    ("view", _reshape),
    ("reshape", _reshape),
    ("cat", _cat),
    ("slice.Tensor", _slice),
    ("dropout", _same),
    ("clone", _same),
    ("contiguous", _same),
    ("matmul", _matmul),
    ("bmm", _matmul),
    ("transpose.int", _view_as_traced),
    ("permute", _view_as_traced),
    ("t", _view_as_traced),
    ("scaled_dot_product_attention", _sdpa),
    ("conv_transpose2d.input", _conv_transpose),
    ("embedding", _embedding),
    ("softmax.int", _softmax),
    ("upsample_nearest2d", _upsample("nearest")),
    ("upsample_nearest2d.vec", _upsample("nearest")),
    ("upsample_bilinear2d", _upsample("bilinear")),
    ("upsample_bilinear2d.vec", _upsample("bilinear")),
    ("_softmax", _softmax),
    *((split, _pieces) for split in ("split.Tensor", "split_with_sizes", "chunk", "unbind.int")),
    ("tensor_split.sections", _pieces),
):
    TORCH_IMPORTS.add(_name, _translate)


def op_name(target: Any) -> tuple[str, str]:
    """(``conv2d.default``, ``conv2d``): an ATen target's name with and without overload."""
    full = str(target).removeprefix("aten.")
    if full.startswith("<built-in"):  # operator.getitem and friends
        full = getattr(target, "__name__", full)
    return full, full.rsplit(".", 1)[0] if full.endswith(".default") else full
