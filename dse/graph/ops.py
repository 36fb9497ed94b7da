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

Operator kinds register with :func:`register_op_kind`, giving a shape-inference function and a
cost function; nothing else in the IR needs to change (:mod:`dse.graph.tensor_ops` registers
the convolutions, pooling, elementwise ops and views this way, :mod:`dse.graph.sequence_ops`
the sequence kinds).
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
