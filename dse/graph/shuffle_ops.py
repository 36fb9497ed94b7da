"""Shuffling channels: the ``shuffle`` op kind (ShuffleNet's units, FBNet's grouped blocks).

A channel shuffle across ``groups`` groups moves channel ``i`` of group ``g`` to position
``i x groups + g``, so the next grouped convolution reads every group. The shape stays; unlike a
view, eager frameworks and mobile runtimes copy every element (``permute(...).contiguous()``,
TFLite's TRANSPOSE), so GPUs and CPUs price it as a memory-bound copy of no arithmetic, and the
FPGA and ASIC models, which stream maps through their buffers, as addressing (no cost). No
operations, no parameters: FLOP counters skip it.

Frameworks write it as a view that splits the channels into groups, a swap of the two and a
view back; :func:`channel_groups` is the importers' test of the first step
(:mod:`dse.graph.aten_translations`, :mod:`dse.graph.onnx_translations`).
"""

from __future__ import annotations

from collections.abc import Sequence

from dse.graph.ops import GraphError, OpCost, OpNode, Shape, register_op_kind


def _shuffle_infer(node: OpNode) -> Shape:
    s = node.in_shapes[0]
    if node.groups < 2 or not s or s[0] % node.groups:
        raise GraphError(f"shuffle needs groups >= 2 dividing the {s[0] if s else 0} channels")
    return s


register_op_kind("shuffle", _shuffle_infer, lambda n, o: OpCost(), counted_by_hooks=False)


def channel_groups(before: Sequence[int], after: Sequence[int]) -> int:
    """``g`` where a view from shape ``before`` (n, c, *s) to ``after`` (n, g, c / g, *s) splits
    the channels into ``g >= 2`` groups; 0 where it does not."""
    before, after = tuple(before), tuple(after)
    if len(before) < 3 or len(after) != len(before) + 1 or after[0] != before[0]:
        return 0
    split = after[1] >= 2 and after[1] * after[2] == before[1] and after[3:] == before[2:]
    return after[1] if split else 0
