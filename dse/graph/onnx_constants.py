"""The shape arithmetic ONNX exporters write, evaluated on constants: :data:`CONSTANT_OPS`.

An exported network computes the target of each ``Reshape`` or ``Expand`` from its input's
``Shape`` through ``Gather``, ``Slice``, ``Unsqueeze``, ``Concat``, ``Where`` and the like;
:func:`dse.graph.from_onnx` evaluates them here with numpy, so its translations read plain
values. :data:`VIEW_OPS` are the constant ops that only copy or rearrange a tensor (a weight
transposed or unsqueezed is still that weight).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """An ONNX node attribute as a plain value."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def axes(node: Any, ctx: Any) -> list[int]:
    """A node's ``axes`` (an attribute, or a constant second input since opset 13)."""
    axes = attribute(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = ctx.values[node.input[1]]
    return [int(a) for a in (axes if axes is not None else [])]


#: shape arithmetic an exporter writes (on constants and ``Shape`` outputs), evaluated here
CONSTANT_OPS: dict[str, Callable[[Any, Any, list], Any]] = {
    "Constant": lambda ctx, node, xs: numpy_value(attribute(node, "value")),
    "Gather": lambda ctx, node, xs: np.take(xs[0], xs[1], axis=int(attribute(node, "axis", 0))),
    "Unsqueeze": lambda ctx, node, xs: np.expand_dims(xs[0], tuple(axes(node, ctx))),
    "Squeeze": lambda ctx, node, xs: np.squeeze(xs[0], tuple(axes(node, ctx))),
    "Concat": lambda ctx, node, xs: np.concatenate(
        [np.atleast_1d(x) for x in xs], axis=int(attribute(node, "axis", 0))
    ),
    "Cast": lambda ctx, node, xs: xs[0],
    "Identity": lambda ctx, node, xs: xs[0],
    "Mul": lambda ctx, node, xs: xs[0] * xs[1],
    "Div": lambda ctx, node, xs: _divide(xs[0], xs[1]),
    "Add": lambda ctx, node, xs: xs[0] + xs[1],
    "Sub": lambda ctx, node, xs: xs[0] - xs[1],
    "Sqrt": lambda ctx, node, xs: np.sqrt(xs[0]),
    "Shape": lambda ctx, node, xs: np.array(np.shape(xs[0]), dtype=np.int64),
    "Equal": lambda ctx, node, xs: np.equal(xs[0], xs[1]),
    "Where": lambda ctx, node, xs: np.where(xs[0], xs[1], xs[2]),
    "Reshape": lambda ctx, node, xs: np.reshape(xs[0], [int(v) for v in xs[1]]),
    "Transpose": lambda ctx, node, xs: np.transpose(xs[0], attribute(node, "perm")),
    "ConstantOfShape": lambda ctx, node, xs: np.full(
        [int(v) for v in xs[0]], numpy_value(attribute(node, "value")).reshape(-1)[0]
    ),
    "Slice": lambda ctx, node, xs: _sliced(*xs),
}


#: constant ops that only copy or rearrange a tensor: their output is the same learned tensor
VIEW_OPS = frozenset({"Identity", "Transpose", "Unsqueeze", "Squeeze", "Reshape", "Cast"})


def _divide(a: Any, b: Any) -> Any:
    """Integer shape arithmetic divides exactly as the exporter means (floor); values do not."""
    a, b = np.asarray(a), np.asarray(b)
    return a // b if a.dtype.kind in "iu" and b.dtype.kind in "iu" else a / b


def _sliced(x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Any:
    """ONNX ``Slice`` of a constant (shape arithmetic: ``x.shape[1:]``)."""
    index = [slice(None)] * np.ndim(x)
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for a, s, e, t in zip(axes, starts, ends, steps):
        index[int(a)] = slice(int(s), int(e), int(t))
    return np.asarray(x)[tuple(index)]


def numpy_value(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)
