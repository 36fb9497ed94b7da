"""How a PyTorch module becomes ATen calls for :func:`dse.graph.from_torch`: three tracers.

``torch.export`` is the reference: it runs the module's Python once under a compiler and
writes every ATen operator with its traced shape. ``torch.fx`` (:mod:`dse.graph.fx_trace`)
traces symbolically and runs one forward pass for the shapes; ``eager``
(:mod:`dse.graph.eager_trace`) records one forward pass. In both passes the heavy calls
(convolutions, linear layers, matrix products) return zeros of their output's shape instead of
computing (:mod:`dse.graph.shape_only`). Both rewrite their calls into the ATen
calls export would write, and all three return the same triple, so one set of translations
(``TORCH_IMPORTS``) reads any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the tracers, the reference first
TRACERS = ("export", "fx", "eager")


class TracerFallback(UserWarning):
    """The tracer asked for could not trace a module; ``tracer`` is the one that did."""

    def __init__(self, message: str, tracer: str):
        super().__init__(message)
        self.tracer = tracer


def trace_calls(
    module: Any, example_inputs: Sequence[Any], tracer: str, sources: bool
) -> tuple[list, dict, list]:
    """(ATen calls in order, parameter shapes by name, the user inputs' names) of ``module``
    in eval mode (each layer's own mode is restored after); ``sources``: fx records each
    call's source line."""
    modes = [(m, m.training) for m in module.modules()] if hasattr(module, "modules") else []
    for layer, _ in modes:  # what eval() sets, without Module's setattr (1 ms a MobileNet)
        object.__setattr__(layer, "training", False)
    try:
        if tracer == "fx":
            from dse.graph.fx_trace import trace

            return trace(module, example_inputs, sources=sources)
        if tracer == "eager":
            from dse.graph.eager_trace import trace as run

            return run(module, example_inputs)
        return exported_calls(module, example_inputs)
    finally:
        for layer, training in modes:  # a layer the user froze (eval) stays so
            object.__setattr__(layer, "training", training)


def exported_calls(module: Any, example_inputs: Sequence[Any]) -> tuple[list, dict, list]:
    """(ATen nodes, parameter shapes, user input names) from ``torch.export``."""
    import torch

    exported = torch.export.export(module, tuple(example_inputs))
    inputs = list(exported.graph_signature.user_inputs)
    params = {}
    for node in exported.graph.nodes:
        if node.op == "placeholder" and node.name not in inputs:
            params[node.name] = tuple(int(s) for s in node.meta["val"].shape)
    return list(exported.graph.nodes), params, inputs
