"""The heavy operators of a traced forward pass answered by their output's shape alone.

A tracer runs the module once to learn every tensor's shape; the numbers it computes are
thrown away. Convolutions, linear layers, matrix products, attention and batch norms are most
of a forward pass's time, and their output shapes follow from their inputs' shapes and
arguments alone, so under :class:`ShapeOnly` each returns a tensor of zeros of the shape it
would give (PyTorch's own shape rules, written once here) instead of computing: a ResNet-50's
forward pass at 224 x 224 takes 98 ms computed and 17 ms so, on one CPU core. Everything
else runs as usual: shape arithmetic, reshapes, the cheap elementwise ops, and every call a
rule does not cover (a string padding other than ``"valid"``/``"same"``, an unbatched input, a
one-dimensional matmul operand), which is computed, so a mismatch raises PyTorch's own error.

A layer whose forward is one such call (``nn.Conv2d``, ``nn.BatchNorm1d``/``2d``,
``nn.Linear``) is answered from its own attributes through the same rules
(:meth:`ShapeOnly.answer_layer`), so a tracer that sees layers whole need not run their Python.

What changes is the values, never the shapes: control flow on a tensor's *values* (rare in a
network, and arbitrary anyway in one that is not trained) may take another branch than in a
computed pass. ``torch.export``, the reference tracer, computes nothing either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def _conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Any:
    """``F.conv2d``: (N, C_out, H_out, W_out) with H_out = floor((H + 2 p - d (k - 1) - 1) / s)
    + 1 (PyTorch's Conv2d documentation); ``padding="same"`` keeps H (stride 1 only)."""
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[1] * groups:
        return None  # computed, so a mismatch raises as PyTorch does
    s, d = _pair(stride), _pair(dilation)
    if padding == "same":
        if s != (1, 1):
            return None  # PyTorch refuses it: computed, so it raises as PyTorch does
        return x.new_zeros((x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))
    p = (0, 0) if padding == "valid" else _pair(padding)
    if s is None or d is None or p is None:
        return None
    h, w = (
        (size + 2 * p[i] - d[i] * (weight.shape[2 + i] - 1) - 1) // s[i] + 1
        for i, size in enumerate(x.shape[2:])
    )
    return x.new_zeros((x.shape[0], weight.shape[0], h, w))


def _linear(x, weight, bias=None) -> Any:
    """``F.linear``: the input's leading dimensions, then the weight's output features."""
    if x.dim() < 1 or weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return None
    return x.new_zeros((*x.shape[:-1], weight.shape[0]))


def _matmul(a, b, *rest, **kwargs) -> Any:
    """``a @ b`` of two operands of at least two dimensions: the broadcast batch dimensions,
    then (rows of ``a``, columns of ``b``)."""
    import torch

    if rest or kwargs or not hasattr(b, "dim") or a.dim() < 2 or b.dim() < 2:
        return None
    if a.shape[-1] != b.shape[-2]:
        return None
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return a.new_zeros((*batch, a.shape[-2], b.shape[-1]))


def _bmm(a, b) -> Any:
    """``torch.bmm``: (batch, rows of ``a``, columns of ``b``), no broadcasting."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0]:
        return None
    return _matmul(a, b)


def _attention(query, key, value, *args, **kwargs) -> Any:
    """``F.scaled_dot_product_attention``: the query's shape with the value's last dimension."""
    if kwargs.get("enable_gqa") or query.dim() < 2 or key.shape[-1] != query.shape[-1]:
        return None
    if key.shape[:-1] != value.shape[:-1]:
        return None
    return query.new_zeros((*query.shape[:-1], value.shape[-1]))


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, *args, **kwargs) -> Any:
    """``F.batch_norm``: the input's shape (and running statistics left untouched)."""
    channels = x.shape[1] if x.dim() > 1 else -1
    if any(t is not None and t.shape != (channels,) for t in (running_mean, weight, bias)):
        return None
    return x.new_zeros(x.shape)


def _rules() -> dict[Any, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    return {
        torch.conv2d: _conv2d,
        F.linear: _linear,
        torch.matmul: _matmul,
        torch.Tensor.matmul: _matmul,
        torch.Tensor.__matmul__: _matmul,
        torch.bmm: _bmm,
        torch.Tensor.bmm: _bmm,
        F.scaled_dot_product_attention: _attention,
        F.batch_norm: _batch_norm,
    }


def _conv2d_layer(layer, x) -> Any:
    """An ``nn.Conv2d`` (zero padding) on ``x``: :func:`_conv2d` of its own arguments."""
    if layer.padding_mode != "zeros":
        return None
    w, b = layer.weight, layer.bias
    return _conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)


def _batch_norm_layer(dims: tuple[int, ...]) -> Callable[..., Any]:
    """An ``nn.BatchNorm*d`` on an input of ``dims`` dimensions (others: its own error)."""

    def rule(layer, x) -> Any:
        if x.dim() not in dims:
            return None
        return _batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias)

    return rule


def _layer_rules() -> dict[type, Callable[..., Any]]:
    """The layers whose forward is one covered call, by class: answered without running it."""
    from torch import nn

    return {
        nn.Conv2d: _conv2d_layer,
        nn.BatchNorm1d: _batch_norm_layer((2, 3)),
        nn.BatchNorm2d: _batch_norm_layer((4,)),
        nn.Linear: lambda layer, x: _linear(x, layer.weight, layer.bias),
    }


#: what a rule raises on an argument form it does not read (the call is then computed, so a
#: real mismatch raises PyTorch's own error)
UNREAD = (TypeError, AttributeError, ValueError, RuntimeError)


class ShapeOnly:
    """``answer(func, args, kwargs)``: zeros of ``func``'s output shape where a rule covers the
    call (a function's output is never a view of its inputs, so zeros stand for it exactly),
    else None (the caller computes it)."""

    def __init__(self) -> None:
        self.rules = _rules()
        #: layers whose forward is one covered call (a convolution, a batch norm, a linear
        #: layer), by class: :meth:`answer_layer` answers them without running their Python
        self.layer_rules = _layer_rules()

    def answer(self, func: Any, args: tuple, kwargs: dict) -> Any:
        rule = self.rules.get(func)
        if rule is None:
            return None
        try:
            return rule(*args, **kwargs)
        except UNREAD:
            return None  # an argument form the rule does not read: computed instead

    def answer_layer(self, layer: Any, inputs: tuple) -> Any:
        """What ``layer(*inputs)`` answers, for a layer of :attr:`layer_rules` called on one
        tensor in a form its rule reads, else None (run the layer under :meth:`mode`)."""
        rule = self.layer_rules.get(type(layer))
        if rule is None or len(inputs) != 1:
            return None
        try:
            return rule(layer, inputs[0])
        except UNREAD:
            return None

    def mode(self) -> Any:
        """A ``TorchFunctionMode`` that answers the covered calls (for fx's shape
        propagation)."""
        from torch.overrides import TorchFunctionMode

        answer = self.answer

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = answer(func, args, kwargs)
                return func(*args, **kwargs) if out is None else out

        return Mode()
