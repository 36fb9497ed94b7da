"""Resizing a feature map: the ``upsample`` op kind (a feature pyramid's or a U-Net's decoder).

``upsample`` reads a ``(C, H, W)`` map and writes it at ``shape`` = ``(C, H', W')``, ``mode``
``nearest`` (each output element a copy of one input element) or ``bilinear`` (a weighted sum
of four). Its cost follows fvcore's counter (``fvcore.nn.flop_count``): one operation per output
element for nearest, four for bilinear, and no multiply-accumulates or parameters, so the
simulators cost it as the memory-bound elementwise op it is. Whether corners are aligned
changes the values, not the cost, and is not kept.
"""

from __future__ import annotations

from dse.graph.ops import GraphError, OpCost, OpNode, Shape, numel, register_op_kind

#: interpolation modes, with fvcore's operations per output element
UPSAMPLE_OPS = {"nearest": 1, "bilinear": 4}


def _upsample_infer(node: OpNode) -> Shape:
    source = node.in_shapes[0]
    if len(source) != 3:
        raise GraphError(f"upsample reads a (C, H, W) map, got {source}")
    if node.mode not in UPSAMPLE_OPS:
        modes = ", ".join(UPSAMPLE_OPS)
        raise GraphError(f"upsample mode: expected one of {modes}, got {node.mode!r}")
    shape = tuple(node.shape or ())
    if len(shape) != 3 or shape[0] != source[0] or min(shape) < 1:
        raise GraphError(f"upsample of {source} to {shape}: give (C, H', W') with C = {source[0]}")
    return shape


def _upsample_cost(node: OpNode, out: Shape) -> OpCost:
    return OpCost(ops=UPSAMPLE_OPS[node.mode] * numel(out))


register_op_kind("upsample", _upsample_infer, _upsample_cost)
