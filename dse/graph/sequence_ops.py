"""Sequence operator kinds of the IR: SGConv's FFT convolution, attention, positions, pooling.

Sequence tensors are ``(L, C)`` per sample (length, channels), token ids ``(L,)``; ``linear``,
``norm`` (mode ``layer``), ``activation`` (``gelu``) and ``embedding`` already serve them. The
kinds here (registered on import, like every kind, through :func:`register_op_kind`):

* ``sgconv``: SGConv's depth-wise global convolution (dissertation 5.3.2, eq. 5.1): per channel a
  kernel of length ``L`` made of ``N = ceil(log2(L / d)) + 1`` sub-kernels of ``d`` parameters
  (``kernel`` = d), applied by FFT as listing 5.1, plus the ``D * x`` skip term (``bias``).
  ``mode`` ``causal`` (the default: one kernel, left zero padding) or ``bidirectional`` (a
  second kernel for the reversed direction). ``options``: ``decay`` ``"alpha"`` (eq. 5.1,
  ``rate`` = alpha) or ``"power"`` (eq. 5.2's 1/i^t, ``rate`` = t), ``prune`` (ratio of the
  trained kernel zeroed, 0..0.9) and ``prune_method`` (``magnitude`` or ``tail``): these
  shape the trained model, not the cost (an FFT of a pruned kernel costs the same).
* ``attention``: softmax attention over an ``(L, 3C)`` packed query-key-value input, ``groups``
  heads, ``options`` ``window`` a local window of keys (0, the default: global), ``mode``
  ``causal`` or ``bidirectional``;
  ``(L, C)`` out. The scores are materialised (``transient``), as an eager framework does.
* ``position``: adds a learned embedding per position (``L x C`` parameters).
* ``seq_pool``: ``(L, C)`` to ``(C,)``: ``avg``, ``max`` or ``last`` over the sequence.
"""

from __future__ import annotations

import math

import networkx as nx

from dse.graph.analysis import infer_shapes
from dse.graph.ops import GraphError, OpCost, OpNode, Shape, make_op, numel, register_op_kind

#: FLOPs of a real FFT of length n per n log2 n: half a complex FFT's 5 n log2 n (the usual count)
RFFT_FLOPS_PER_NLOGN = 2.5
DIRECTIONS = ("causal", "bidirectional")
DECAYS = ("alpha", "power")
PRUNE_METHODS = ("magnitude", "tail")


def sgconv_scales(length: int, d: int) -> int:
    """Sub-kernels of an SGConv kernel for length ``length``: N = ceil(log2(L / d)) + 1 (eq. 5.1),
    at least one."""
    if d < 1 or length < 1:
        raise GraphError(f"sgconv needs length >= 1 and d >= 1, got L={length}, d={d}")
    return 1 if length <= d else math.ceil(math.log2(length / d)) + 1


def sgconv_kernel_length(length: int, d: int) -> int:
    """Length of the concatenated sub-kernels before truncation to L: sum of
    2^max(i-1, 0) d over the N scales, = 2^(N-1) d >= L."""
    return 2 ** (sgconv_scales(length, d) - 1) * d


def fft_size(length: int) -> int:
    """The FFT length of listing 5.1: 2L, so the circular convolution is a linear one."""
    return 2 * length


def _sequence(node: OpNode) -> tuple[int, int]:
    shape = node.in_shapes[0]
    if len(shape) != 2:
        raise GraphError(f"{node.kind} needs an (L, C) sequence input, got {shape}")
    return shape[0], shape[1]


def _direction(node: OpNode) -> bool:
    """Whether ``node`` is bidirectional (mode ``""``, the default, is causal)."""
    if node.mode and node.mode not in DIRECTIONS:
        raise GraphError(
            f"{node.kind} mode must be one of {', '.join(DIRECTIONS)}; got {node.mode!r}"
        )
    return node.mode == "bidirectional"


def _sgconv_infer(node: OpNode) -> Shape:
    length, _ = _sequence(node)
    _direction(node)
    sgconv_scales(length, node.kernel)
    decay = node.option("decay", "alpha")
    if decay not in DECAYS:
        raise GraphError(f"sgconv decay must be one of {', '.join(DECAYS)}; got {decay!r}")
    if not 0.0 <= float(node.option("prune", 0.0)) < 1.0:
        raise GraphError(f"sgconv prune must be in [0, 1), got {node.option('prune')}")
    if node.option("prune_method", "magnitude") not in PRUNE_METHODS:
        raise GraphError(
            f"sgconv prune_method must be one of {', '.join(PRUNE_METHODS)}; "
            f"got {node.option('prune_method')!r}"
        )
    return node.in_shapes[0]


def _sgconv_cost(node: OpNode, out: Shape) -> OpCost:
    """Per sample, with n = 2L (listing 5.1) and k = 2 kernels when bidirectional, else 1:

    * params: k C N d (eq. 5.1), plus C for the ``D * x`` skip when ``bias``;
    * ops (FLOPs; no MACs): making the kernels, 4 per element of the 2^(N-1) d long
      concatenation (interpolation, decay, normalisation) per kernel, and a C 2L combination
      when bidirectional; three real FFTs of length n (the input's, the kernel's, the inverse),
      2.5 n log2 n each; the complex product, 6 per frequency of n/2 + 1; the skip, 2 L C;
    * transient elements: the kernel (k C L, or C n combined), the three spectra (2 C (n/2 + 1)
      reals each) and the inverse transform's C n outputs before truncation.
    """
    length, c = _sequence(node)
    k = 2 if _direction(node) else 1
    d = node.kernel
    n = fft_size(length)
    params = k * c * sgconv_scales(length, d) * d + (c if node.bias else 0)
    ffts = 3 * c * RFFT_FLOPS_PER_NLOGN * n * math.log2(n)
    ops = (
        4 * k * c * sgconv_kernel_length(length, d)
        + (c * n if k == 2 else 0)
        + ffts
        + 6 * c * (n // 2 + 1)
        + (2 * length * c if node.bias else 0)
    )
    kernel = c * n if k == 2 else c * length
    transient = kernel + 3 * 2 * c * (n // 2 + 1) + c * n
    return OpCost(ops=int(round(ops)), params=params, transient=transient)


register_op_kind("sgconv", _sgconv_infer, _sgconv_cost)


def attention_window(node: OpNode) -> int:
    """Keys each query reads: the sequence, or the local window when one is set."""
    length = node.in_shapes[0][0]
    window = int(node.option("window", 0))
    return length if window <= 0 else min(length, window)


def _attention_infer(node: OpNode) -> Shape:
    length, packed = _sequence(node)
    _direction(node)
    heads = max(node.groups, 1)
    if packed % 3 or (packed // 3) % heads:
        raise GraphError(
            f"attention needs (L, 3C) packed q, k, v with C divisible by {heads} heads, "
            f"got {node.in_shapes[0]}"
        )
    return (length, packed // 3)


def attention_kernels(node: OpNode) -> tuple[OpNode, ...]:
    """The IR ops an eager framework runs for a fused ``attention`` node, in order: QK^T as a
    batched matmul (h, L, C/h) x (h, W, C/h)^T, the scaling and mask (one element-wise pass,
    a ``mul``), the softmax, and PV. No fused kernel reads an arbitrary mask, so the (h, L, W)
    scores are materialised; a local window is costed as the W keys it reads (a banded
    kernel). Its costs are the sum of these ops' (one source for the IR and the GPU model)."""
    length, c = _attention_infer(node)
    heads = max(node.groups, 1)
    w = attention_window(node)
    bits = {"act_bits": node.act_bits, "weight_bits": node.weight_bits}
    q, k = (heads, length, c // heads), (heads, w, c // heads)
    scores = (heads, length, w)
    return (
        make_op("matmul", [q, k], transpose_b=True, **bits),
        make_op("mul", [scores, (1, 1, 1)], **bits),
        make_op("activation", [scores], mode="softmax", **bits),
        make_op("matmul", [scores, k], **bits),
    )


def _attention_cost(node: OpNode, out: Shape) -> OpCost:
    """The sum of :func:`attention_kernels`' costs; the scores and the probabilities, h L W
    elements each, are its transient."""
    parts = attention_kernels(node)
    scores = numel(parts[0].out_shape)
    return OpCost(
        macs=sum(p.macs for p in parts), ops=sum(p.ops for p in parts), transient=2 * scores
    )


register_op_kind("attention", _attention_infer, _attention_cost)


def _position_infer(node: OpNode) -> Shape:
    _sequence(node)
    return node.in_shapes[0]


register_op_kind(
    "position",
    _position_infer,
    lambda n, o: OpCost(ops=numel(o), params=numel(o)),
)

SEQ_POOLS = ("avg", "max", "last")


def _seq_pool_infer(node: OpNode) -> Shape:
    _, c = _sequence(node)
    if node.mode not in SEQ_POOLS:
        raise GraphError(f"seq_pool mode must be one of {', '.join(SEQ_POOLS)}; got {node.mode!r}")
    return (c,)


register_op_kind(
    "seq_pool",
    _seq_pool_infer,
    lambda n, o: OpCost(ops=0 if n.mode == "last" else numel(n.in_shapes[0])),
)


def token_input(graph: nx.DiGraph):
    """The node of ``graph``'s one ``(L,)`` token input, or None when ``graph`` is not a
    sequence network (no such input, or more than one input)."""
    inputs = [n for n in graph if graph.nodes[n]["op"].kind == "input"]
    if len(inputs) == 1 and len(graph.nodes[inputs[0]]["op"].out_shape) == 1:
        return inputs[0]
    return None


def at_length(graph: nx.DiGraph, length: int) -> nx.DiGraph:
    """A copy of sequence network ``graph`` reading ``length`` tokens: the token input re-shaped,
    every op's shapes and costs re-derived (an SGConv kernel's scale count follows L, eq. 5.1).
    What a search trained at a short length is costed at when deployed on long sequences."""
    if length < 1:
        raise GraphError(f"length: must be >= 1, got {length}")
    g = graph.copy()
    node = token_input(g)
    if node is None:
        raise GraphError("at_length needs a sequence network with one (L,) token input")
    g.nodes[node]["op"] = make_op("input", (), shape=(length,))
    return infer_shapes(g)
