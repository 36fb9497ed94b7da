"""The IR's tensor operator kinds: inputs and learned constants, convolutions, linear layers and
matrix products, pooling, elementwise sums and products, concatenation, normalisation,
activations, embeddings, the views (reshape, identity, slice) and NAS-Bench-201's ``zero``.

Each registers with :func:`~dse.graph.ops.register_op_kind` a shape-inference function and a
cost function (units in :mod:`dse.graph.ops`), as :mod:`dse.graph.sequence_ops`,
:mod:`dse.graph.resize_ops` and :mod:`dse.graph.shuffle_ops` register theirs; importing
:mod:`dse.graph` registers them all.
"""

from __future__ import annotations

from dse.graph.ops import GraphError, OpCost, OpNode, Shape, numel, register_op_kind


# ----------------------------------------------------------------------------- shape helpers
def _same_shape(node: OpNode) -> Shape:
    return node.in_shapes[0]


def _all_same(node: OpNode) -> Shape:
    first = node.in_shapes[0]
    for s in node.in_shapes[1:]:
        if s != first:
            raise GraphError(
                f"{node.kind} inputs must have equal shapes, got {list(node.in_shapes)}"
            )
    return first


def _feature_map(node: OpNode) -> tuple[int, int, int]:
    s = node.in_shapes[0]
    if len(s) != 3:
        raise GraphError(f"{node.kind} expects a (C, H, W) input, got {s}")
    return s[0], s[1], s[2]


def _window_out(size: int, kernel: int, stride: int, padding: int) -> int:
    pad = kernel // 2 if padding < 0 else padding
    return (size + 2 * pad - kernel) // stride + 1


# ----------------------------------------------------------------------------- kinds
def _input_infer(node: OpNode) -> Shape:
    if not node.shape:
        raise GraphError("input node needs a shape")
    return node.shape


register_op_kind("input", _input_infer, lambda n, o: OpCost(), arity=(0, 0))


def _constant_infer(node: OpNode) -> Shape:
    if not node.shape:
        raise GraphError("constant node needs a shape")
    return node.shape


# A learned tensor the network reads directly, not through a layer (ViT's class token and
# position embedding): its elements are parameters; it computes nothing.
register_op_kind(
    "constant",
    _constant_infer,
    lambda n, o: OpCost(params=numel(o)),
    arity=(0, 0),
    counted_by_hooks=False,
)


def _conv_infer(node: OpNode) -> Shape:
    c, h, w = _feature_map(node)
    groups = c if node.kind == "dwconv2d" else node.groups
    cout = node.channels or (c if node.kind == "dwconv2d" else 0)
    if cout <= 0:
        raise GraphError(f"{node.kind} needs channels > 0")
    if c % groups or cout % groups:
        raise GraphError(
            f"{node.kind}: channels in {c} / out {cout} not divisible by groups {groups}"
        )
    if node.dilation < 1:
        raise GraphError(f"{node.kind} needs dilation >= 1, got {node.dilation}")
    span = node.dilation * (node.kernel - 1) + 1  # the window a dilated kernel covers
    return (
        cout,
        _window_out(h, span, node.stride, node.padding),
        _window_out(w, span, node.stride, node.padding),
    )


def _conv_cost(node: OpNode, out: Shape) -> OpCost:
    cin = node.in_shapes[0][0]
    groups = cin if node.kind == "dwconv2d" else node.groups
    per_out = node.kernel * node.kernel * (cin // groups)
    params = out[0] * per_out + (out[0] if node.bias else 0)
    return OpCost(macs=numel(out) * per_out, ops=numel(out) if node.bias else 0, params=params)


register_op_kind("conv2d", _conv_infer, _conv_cost)
register_op_kind("dwconv2d", _conv_infer, _conv_cost)


def _deconv_infer(node: OpNode) -> Shape:
    """A transposed convolution that upsamples by ``stride`` (padding ``kernel // 2`` and output
    padding ``stride - 1``, the decoders of pix2pix and TransNAS-Bench-101)."""
    _, h, w = _feature_map(node)
    if node.channels <= 0:
        raise GraphError("deconv2d needs channels > 0")
    return node.channels, h * node.stride, w * node.stride


def _deconv_cost(node: OpNode, out: Shape) -> OpCost:
    """Every input pixel scatters a ``kernel x kernel x channels`` patch: ``Cin k^2 Cout`` MACs
    per input pixel; the bias adds one op per output element."""
    cin, h, w = node.in_shapes[0]
    per_in = node.kernel * node.kernel * out[0]
    params = cin * per_in + (out[0] if node.bias else 0)
    return OpCost(macs=cin * h * w * per_in, ops=numel(out) if node.bias else 0, params=params)


# NAS-Bench-201's get_model_infos (the counter NASLib reports with) has no hook for transposed
# convolutions, so hook_flops leaves them out as its FLOPs columns do; macs and flops count them.
register_op_kind("deconv2d", _deconv_infer, _deconv_cost, counted_by_hooks=False)


def _linear_infer(node: OpNode) -> Shape:
    if node.channels <= 0:
        raise GraphError("linear needs channels (out features) > 0")
    return node.in_shapes[0][:-1] + (node.channels,)


def _linear_cost(node: OpNode, out: Shape) -> OpCost:
    fin = node.in_shapes[0][-1]
    rows = numel(node.in_shapes[0][:-1])
    params = fin * node.channels + (node.channels if node.bias else 0)
    return OpCost(
        macs=rows * fin * node.channels, ops=rows * node.channels if node.bias else 0, params=params
    )


register_op_kind("linear", _linear_infer, _linear_cost)


def _matmul_infer(node: OpNode) -> Shape:
    a, b = node.in_shapes
    if len(a) < 2 or len(b) < 2 or a[:-2] != b[:-2]:
        raise GraphError(
            f"matmul needs (..., M, K) and (..., K, N) with equal batch dims, got {a}, {b}"
        )
    k_b, n = (b[-1], b[-2]) if node.transpose_b else (b[-2], b[-1])
    if a[-1] != k_b:
        raise GraphError(
            f"matmul inner dimensions differ: {a} x {b} (transpose_b={node.transpose_b})"
        )
    return a[:-1] + (n,)


def _matmul_cost(node: OpNode, out: Shape) -> OpCost:
    return OpCost(macs=numel(out) * node.in_shapes[0][-1])


register_op_kind("matmul", _matmul_infer, _matmul_cost, arity=(2, 2))


def _pool_infer(node: OpNode) -> Shape:
    c, h, w = _feature_map(node)
    if node.mode in ("global_avg", "global_max"):
        return (c, 1, 1)
    if node.mode not in ("avg", "max"):
        raise GraphError(
            f"pool mode must be one of avg, max, global_avg, global_max; got {node.mode!r}"
        )
    return (
        c,
        _window_out(h, node.kernel, node.stride, node.padding),
        _window_out(w, node.kernel, node.stride, node.padding),
    )


def _pool_cost(node: OpNode, out: Shape) -> OpCost:
    if node.mode.startswith("global"):
        return OpCost(ops=numel(node.in_shapes[0]))
    return OpCost(ops=numel(out) * node.kernel * node.kernel)


register_op_kind("pool", _pool_infer, _pool_cost)


def _elementwise_cost(node: OpNode, out: Shape) -> OpCost:
    return OpCost(ops=(len(node.in_shapes) - 1) * numel(out))


register_op_kind(
    "add", _all_same, _elementwise_cost, arity=(1, -1), commutative=True, counted_by_hooks=False
)


def _mul_infer(node: OpNode) -> Shape:
    """Element-wise product with broadcasting of size-1 dims (squeeze-excitation gates)."""
    out = list(node.in_shapes[0])
    for s in node.in_shapes[1:]:
        if len(s) != len(out):
            raise GraphError(f"mul inputs must have equal rank, got {list(node.in_shapes)}")
        for i, (a, b) in enumerate(zip(out, s)):
            if a != b and 1 not in (a, b):
                raise GraphError(f"mul inputs do not broadcast: {list(node.in_shapes)}")
            out[i] = max(a, b)
    return tuple(out)


register_op_kind(
    "mul", _mul_infer, _elementwise_cost, arity=(2, -1), commutative=True, counted_by_hooks=False
)


def _concat_infer(node: OpNode) -> Shape:
    first = node.in_shapes[0]
    for s in node.in_shapes[1:]:
        if s[1:] != first[1:]:
            raise GraphError(
                f"concat inputs must agree except on axis 0, got {list(node.in_shapes)}"
            )
    return (sum(s[0] for s in node.in_shapes),) + first[1:]


register_op_kind(
    "concat", _concat_infer, lambda n, o: OpCost(), arity=(1, -1), counted_by_hooks=False
)


#: normalisation modes: batch (affine), batch_stats (statistics only, no affine parameters:
#: DARTS' search-cell ops, ``affine=False``), layer, group (affine, ``groups`` groups of channels)
NORM_MODES = ("batch", "batch_stats", "layer", "group")


def _norm_cost(node: OpNode, out: Shape) -> OpCost:
    if node.mode not in NORM_MODES:
        raise GraphError(f"norm mode must be one of {', '.join(NORM_MODES)}; got {node.mode!r}")
    channels = out[0] if node.mode != "layer" else out[-1]
    return OpCost(ops=2 * numel(out), params=0 if node.mode == "batch_stats" else 2 * channels)


register_op_kind("norm", _same_shape, _norm_cost)

#: activation modes; ``leaky_relu`` has slope 0.2 (the pix2pix-style decoders that use it)
ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "swish",
    "hswish",
    "hsigmoid",
    "gelu",
    "tanh",
    "softmax",
    "elementwise",  # an operator the importer had no translation for, costed as elementwise
)


def _act_infer(node: OpNode) -> Shape:
    if node.mode not in ACTIVATIONS:
        raise GraphError(
            f"activation mode must be one of {', '.join(ACTIVATIONS)}; got {node.mode!r}"
        )
    return node.in_shapes[0]


register_op_kind("activation", _act_infer, lambda n, o: OpCost(ops=numel(o)))


def _embedding_infer(node: OpNode) -> Shape:
    if len(node.in_shapes[0]) != 1 or node.vocab <= 0 or node.channels <= 0:
        raise GraphError("embedding needs a (T,) input of token ids, vocab > 0 and channels > 0")
    return (node.in_shapes[0][0], node.channels)


register_op_kind("embedding", _embedding_infer, lambda n, o: OpCost(params=n.vocab * n.channels))


def _reshape_infer(node: OpNode) -> Shape:
    """``mode="flatten"`` gives ``(numel,)`` and follows upstream edits; otherwise ``shape``."""
    if node.mode == "flatten":
        return (numel(node.in_shapes[0]),)
    if numel(node.shape) != numel(node.in_shapes[0]):
        raise GraphError(
            f"reshape from {node.in_shapes[0]} to {node.shape} changes the element count"
        )
    return node.shape


register_op_kind("reshape", _reshape_infer, lambda n, o: OpCost(), counted_by_hooks=False)
register_op_kind("identity", _same_shape, lambda n, o: OpCost(), counted_by_hooks=False)


def _slice_infer(node: OpNode) -> Shape:
    """The first ``channels`` channels (axis 0) of the input: NAS-Bench-101's truncation; with
    ``shape``, a part of that shape (a piece of a split, chunk or unbind: a view, costless)."""
    s = node.in_shapes[0]
    if node.shape:
        if numel(node.shape) > numel(s):
            raise GraphError(f"slice of shape {node.shape} is larger than its input {s}")
        return node.shape
    if not 0 < node.channels <= s[0]:
        raise GraphError(f"slice needs 0 < channels <= {s[0]}, got {node.channels}")
    return (node.channels,) + tuple(s[1:])


register_op_kind("slice", _slice_infer, lambda n, o: OpCost(), counted_by_hooks=False)


def _zero_infer(node: OpNode) -> Shape:
    """Zeros of the input's shape, or on a reducing edge (``stride``, ``channels``) of the shape
    the edge's other ops give: ``channels`` x ceil(H / stride) x ceil(W / stride)."""
    s = node.in_shapes[0]
    if node.stride == 1 and not node.channels:
        return s
    c, h, w = _feature_map(node)
    return node.channels or c, -(-h // node.stride), -(-w // node.stride)


# NAS-Bench-201's "none" edge: outputs zeros, costs nothing.
register_op_kind("zero", _zero_infer, lambda n, o: OpCost(), counted_by_hooks=False)
