"""Typed operator nodes of the architecture graph IR and their cost model.

Every node of an architecture graph stores one :class:`OpNode` under the ``"op"`` key. An
``OpNode`` is immutable plain data: the operator kind, the attributes that define it (kernel,
stride, groups, channels, bit-widths), the tensor shapes it reads and writes, and its derived
costs. Costs are computed once, when the node is made, so every proxy and simulator reads the
same numbers.

Shapes exclude the batch dimension: feature maps are ``(C, H, W)``, token sequences ``(T, D)``,
attention tensors ``(heads, T, D)``, token ids ``(T,)``.

Cost units, per sample (batch of one):

* ``macs``: multiply-accumulates of convolutions, linear layers and matmuls.
* ``ops``: other arithmetic (normalisation, activation, pooling, additions), one per element
  touched, two per element for an affine normalisation.
* ``flops`` = ``2 * macs + ops``: floating-point operations as a roofline model counts them.
* ``params``: trainable parameters.
* ``bytes_read`` / ``bytes_written``: inputs and weights read, output written, at the node's
  activation and weight bit-widths; ``bytes_read`` also counts the op's ``transient``
  intermediates (elements it writes and reads back inside itself: attention's L x L scores, an
  FFT convolution's spectra), which memory models add to the op's footprint.

New operator kinds register with :func:`register_op_kind`, giving a shape-inference function and a
cost function; nothing else in the IR needs to change (:mod:`dse.graph.sequence_ops` adds the
sequence kinds this way).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

from dse.registry import Registry

Shape = tuple[int, ...]


class GraphError(ValueError):
    """An architecture graph or an operator is malformed; the message names the node."""


def weight_reader(owned: set[str], name: str) -> dict[str, Any]:
    """The op attributes of one reading weight tensor ``name`` (the importers' rule for shared
    weights): the first reader owns and counts it (``name`` joins ``owned``), a later one is
    ``tied`` to it (reads it, counts no parameters), so a shared tensor is counted once."""
    if name not in owned:
        owned.add(name)
        return {}
    return {"options": {"tied": True}}


def unmapped_error(registry: str, labels: list[str]) -> GraphError:
    """The importers' error for operators without a translation: a line saying how to add
    one, then one line per distinct operator (``label``: its name and where it is)."""
    labels = list(dict.fromkeys(labels))
    return GraphError(
        f"{len(labels)} operator(s) have no IR translation (register one in {registry}, or "
        "pass unknown='elementwise'):\n" + "\n".join(f"  {label}" for label in labels)
    )


@dataclass(frozen=True, slots=True)
class OpCost:
    """Arithmetic and parameter cost of one operator, per sample."""

    macs: int = 0
    ops: int = 0
    params: int = 0
    transient: int = 0  # intermediate elements written and read back inside the op


@dataclass(frozen=True, slots=True)
class OpKind:
    """A registered operator kind: how it infers its output shape and what it costs."""

    name: str
    infer: Callable[[OpNode], Shape]
    cost: Callable[[OpNode, Shape], OpCost]
    arity: tuple[int, int]  # (min inputs, max inputs); max -1 = unbounded
    commutative: bool = False  # input order irrelevant (add, mul): used by the canonical hash
    counted_by_hooks: bool = True  # counted by module-hook FLOP counters (ptflops, NASLib)


#: every operator kind of the IR, by name (:func:`register_op_kind` adds more)
OP_KINDS: Registry[OpKind] = Registry("op kind")


def register_op_kind(
    name: str,
    infer: Callable[[OpNode], Shape],
    cost: Callable[[OpNode, Shape], OpCost],
    arity: tuple[int, int] = (1, 1),
    commutative: bool = False,
    counted_by_hooks: bool = True,
) -> OpKind:
    """Register (or replace) an operator kind with its shape inference and cost functions."""
    kind = OpKind(name, infer, cost, arity, commutative, counted_by_hooks)
    OP_KINDS.add(name, kind)
    clear_op_cache()
    return kind


@dataclass(frozen=True, slots=True)
class OpNode:
    """One operator of an architecture graph: definition, shapes and derived costs.

    Build it with :func:`make_op`, which infers ``out_shape`` and fills the cost fields.
    """

    kind: str
    in_shapes: tuple[Shape, ...]
    out_shape: Shape = ()
    channels: int = 0  # output channels / features (conv, linear, embedding dim)
    kernel: int = 1
    stride: int = 1
    padding: int = -1  # -1: "same" padding, kernel // 2
    groups: int = 1  # conv: groups; norm "group": the number of groups
    dilation: int = 1  # conv: spacing of the kernel's taps (1: dense)
    bias: bool = False
    #: pool: avg|max|global_avg|global_max; act: relu|relu6|...; norm: batch|batch_stats|layer
    mode: str = ""
    vocab: int = 0  # embedding rows
    shape: Shape = ()  # reshape / input: target shape
    transpose_b: bool = False  # matmul: second operand is (..., N, K)
    #: kind-specific settings as sorted (name, value) pairs (sgconv: decay, rate, prune)
    options: tuple[tuple[str, float | str | bool], ...] = ()
    weight_bits: int = 32
    act_bits: int = 32
    macs: int = field(default=0, compare=False)
    ops: int = field(default=0, compare=False)
    params: int = field(default=0, compare=False)
    bytes_read: int = field(default=0, compare=False)
    bytes_written: int = field(default=0, compare=False)
    transient: int = field(default=0, compare=False)  # elements, see the module docstring
    #: interning number from make_op (0: built directly): lets simulators index per-op tables
    #: with a numpy array instead of hashing each node
    uid: int = field(default=0, compare=False, repr=False)

    @property
    def flops(self) -> int:
        """Floating-point operations: two per MAC plus the element-wise ops."""
        return 2 * self.macs + self.ops

    @property
    def weight_bytes(self) -> int:
        """Bytes of parameters at ``weight_bits``."""
        return (self.params * self.weight_bits + 7) // 8

    def __reduce__(self):
        # Pickled ops (Dask workers, multiprocessing) are re-interned by make_op where they land,
        # so their uid is valid in that process and never collides with a local op's.
        if not self.uid:
            return (OpNode, tuple(getattr(self, f.name) for f in fields(OpNode)))
        return (_unpickle_op, (self.kind, self.in_shapes, tuple(sorted(self.attrs().items()))))

    def option(self, name: str, default=None):
        """One of the kind-specific ``options`` (``default`` when it is not set)."""
        for key, value in self.options:
            if key == name:
                return value
        return default

    def attrs(self) -> dict:
        """The defining attributes other than ``kind`` (non-default values only): what
        :func:`make_op` needs, with the input shapes, to rebuild this node."""
        out = {}
        for name, default in _SPEC_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                out[name] = value
        if self.kind == "input":
            out["shape"] = self.shape or self.out_shape
        return out

    def spec(self) -> dict:
        """JSON-ready definition: ``kind`` plus :meth:`attrs`, tuples as lists."""

        def plain(v):
            return [plain(x) for x in v] if isinstance(v, tuple) else v

        return {"kind": self.kind, **{k: plain(v) for k, v in self.attrs().items()}}


_DERIVED = frozenset(
    {"out_shape", "macs", "ops", "params", "bytes_read", "bytes_written", "transient", "uid"}
)
_SPEC_FIELDS = frozenset(f.name for f in fields(OpNode)) - _DERIVED - {"in_shapes", "kind"}
_SPEC_DEFAULTS = tuple((f.name, f.default) for f in fields(OpNode) if f.name in _SPEC_FIELDS)


def numel(shape: Shape) -> int:
    """Number of elements of a tensor shape."""
    return math.prod(shape) if shape else 1


_UIDS = itertools.count(1)  # never reused, so a uid names one interned op for the process


@lru_cache(maxsize=65536)
def _make_op_cached(kind: str, in_shapes: tuple[Shape, ...], attrs: tuple) -> OpNode:
    if kind not in OP_KINDS:
        raise GraphError(
            f"unknown op kind {kind!r}; registered kinds: {', '.join(OP_KINDS.names())}"
        )
    spec = OP_KINDS[kind]
    lo, hi = spec.arity
    n = len(in_shapes)
    if n < lo or (hi >= 0 and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{'any' if hi < 0 else hi}"
        raise GraphError(f"{kind} takes {want} inputs, got {n}")
    node = OpNode(kind, in_shapes, **dict(attrs))
    out = tuple(int(d) for d in spec.infer(node))
    if any(d <= 0 for d in out):
        raise GraphError(f"{kind} with inputs {list(in_shapes)} gives empty output shape {out}")
    cost = spec.cost(node, out)
    bytes_in = (sum(numel(s) for s in in_shapes) + cost.transient) * node.act_bits
    read = (bytes_in + cost.params * node.weight_bits + 7) // 8
    if node.option("tied"):  # reads weights another op owns: read, not counted again
        cost = replace(cost, params=0)
    written = (numel(out) * node.act_bits + 7) // 8 if kind != "input" else 0
    return OpNode(
        kind,
        in_shapes,
        out,
        **dict(attrs),
        macs=cost.macs,
        ops=cost.ops,
        params=cost.params,
        bytes_read=read,
        bytes_written=written,
        transient=cost.transient,
        uid=next(_UIDS),
    )


def _unpickle_op(kind: str, in_shapes: tuple, attrs: tuple) -> OpNode:
    return make_op(kind, in_shapes, **dict(attrs))


def make_op(kind: str, in_shapes, **attrs) -> OpNode:
    """Make an :class:`OpNode`: check arity, infer the output shape, compute costs.

    Identical definitions return the same cached object, which keeps graph building fast.
    """
    bad = set(attrs) - _SPEC_FIELDS
    if bad:
        raise GraphError(f"unknown op attribute(s) {sorted(bad)}; allowed: {sorted(_SPEC_FIELDS)}")
    if "options" in attrs:
        attrs["options"] = normal_options(attrs["options"])
    shapes = tuple(tuple(int(d) for d in s) for s in in_shapes)
    return _make_op_cached(kind, shapes, tuple(sorted(attrs.items())))


def normal_options(options) -> tuple[tuple[str, float | str | bool], ...]:
    """``options`` (a mapping or (name, value) pairs) as the sorted pairs an OpNode holds."""
    pairs = options.items() if isinstance(options, dict) else options
    return tuple(sorted((str(k), v) for k, v in pairs))


def clear_op_cache() -> None:
    """Forget cached ops (after an op kind is registered or replaced)."""
    _make_op_cached.cache_clear()


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
