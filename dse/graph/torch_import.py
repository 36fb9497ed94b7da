"""A PyTorch network into the graph IR: :func:`from_torch` (the door for a user's own model).

The module is traced with ``torch.export`` (ATen operators, with every tensor's shape in the
node metadata) and each operator becomes IR ops through a translation registered for it in
:data:`TORCH_IMPORTS` (:mod:`dse.graph.aten_translations`), beside the op kinds' torch
lowerings (:mod:`dse.graph.lowering`): a new mapping is a registration, never an if-chain.
Shapes in the IR are per sample, so the traced batch dimension is dropped; every translated
op's inferred shape is checked against the traced one. Parameters come from the IR ops, which
the test suite checks against the module's own tensors (``sum(p.numel())``).

An operator without a translation is an error listing every unmapped operator with its source
line; ``unknown="elementwise"`` costs each as a memory-bound elementwise op of its output's
shape instead, and names them in a warning. torch is imported only when a model is imported.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import networkx as nx

from dse.graph.aten_translations import TORCH_IMPORTS, ImportContext, op_name
from dse.graph.builder import GraphBuilder
from dse.graph.ops import GraphError, unmapped_error
from dse.graph.tracers import TRACERS, TracerFallback, trace_calls

__all__ = ["TORCH_IMPORTS", "ImportContext", "from_torch"]


def _translation(target: Any) -> Callable[[ImportContext, Any], int | None] | None:
    full, short = op_name(target)
    for name in (full, short):
        if name in TORCH_IMPORTS:
            return TORCH_IMPORTS[name]
    return None


def _source(node: Any) -> str:
    """The innermost line of the user's code behind ``node`` (torch.fx's stack traces end in
    torch's own frames: those are skipped)."""
    import torch

    inside = os.path.dirname(torch.__file__) + os.sep
    trace = node.meta.get("stack_trace") or ""
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip().startswith("File")]
    users = [ln for ln in lines if not ln.startswith(f'File "{inside}')]
    return users[-1] if users else "(no source line)"


def from_torch(
    module: Any,
    example_inputs: Sequence[Any],
    *,
    name: str | None = None,
    unknown: Literal["error", "elementwise"] = "error",
    tracer: Literal["export", "fx", "eager"] = "export",
) -> nx.DiGraph:
    """The IR graph of ``module`` run on ``example_inputs`` (one batch; the IR is per sample).

    ``tracer="export"`` traces with ``torch.export`` (the reference) and, where it cannot trace
    the module, falls back to ``torch.fx``. ``tracer="fx"`` (symbolic tracing and one forward
    pass, :mod:`dse.graph.fx_trace`) and ``tracer="eager"`` (one recorded forward pass,
    :mod:`dse.graph.eager_trace`: a tenth to a fortieth of export's time, what a search over a space
    written as PyTorch wants) fall back to export wherever they cannot trace or read the module
    (a call without a rewrite, any doubt). A fallback warns with a :class:`TracerFallback`
    naming the tracer used and why. All give the same graph where they trace.

    Raises :class:`~dse.graph.GraphError` listing every ATen operator without a translation,
    each with its source line, unless ``unknown="elementwise"`` (then each is costed as an
    elementwise op of its output's shape and named in a warning)."""
    if tracer not in TRACERS:
        raise GraphError(f"tracer: expected one of {', '.join(TRACERS)}, got {tracer!r}")
    name = name or type(module).__name__
    other: Literal["export", "fx"] = "fx" if tracer == "export" else "export"
    try:
        if tracer != "export":  # strict and without source lines: any doubt goes to export
            return _import(module, example_inputs, tracer, name, "error", sources=False)
        return _import(module, example_inputs, "export", name, unknown, sources=True)
    except GraphError as exc:
        if tracer == "export":  # export traced it: its mapping error is the answer
            raise
        first: Exception = exc
    except Exception as exc:  # noqa: BLE001 - the tracer could not trace this module
        first = exc
    try:
        graph = _import(module, example_inputs, other, name, unknown, sources=True)
    except GraphError:
        raise
    except Exception:  # noqa: BLE001 - neither traced: the first tracer's reason
        raise first from None
    lines = [line.strip() for line in str(first).strip().splitlines()]
    why = " ".join(lines)[:400] if lines else type(first).__name__  # unmapped ops included
    warnings.warn(TracerFallback(f"{name}: traced with {other} ({why})", other), stacklevel=2)
    return graph


def _import(
    module: Any, example_inputs: Sequence[Any], tracer: str, name: str, unknown: str, sources: bool
) -> nx.DiGraph:
    nodes, params, inputs = trace_calls(module, example_inputs, tracer, sources)
    return _build(nodes, params, inputs, name, unknown)


def _build(nodes: list, params: dict, inputs: list, name: str, unknown: str) -> nx.DiGraph:
    """The IR of traced ATen ``nodes`` (every call through its ``TORCH_IMPORTS`` translation)."""
    b = GraphBuilder(name)
    ctx = ImportContext(b, params=dict(params))
    unmapped: list[str] = []
    translations: dict[Any, Any] = {}  # by target: a network repeats a few dozen operators
    for node in nodes:
        value = node.meta.get("val")
        shape = tuple(int(s) for s in value.shape) if hasattr(value, "shape") else ()
        if node.op == "placeholder":
            if node.name in inputs:
                ctx.nodes[node.name] = b.input(shape[1:], name=node.name)
                ctx.shapes[node.name] = shape
            continue
        if node.op != "call_function":
            continue
        ctx.shapes[node.name] = shape
        if node.target not in translations:
            translations[node.target] = _translation(node.target)
        translate = translations[node.target]
        if translate is None:
            label = f"{op_name(node.target)[0]} at {_source(node)}"
            if unknown == "error":
                unmapped.append(label)
                continue
            ins = [a for a in node.args if ctx.is_tensor(a)]
            if not ins:
                unmapped.append(label)
                continue
            warnings.warn(f"costed as elementwise: {label}", stacklevel=4)
            ctx.nodes[node.name] = b.act(ctx.ir(ins[0]), "elementwise")
            continue
        if unmapped:  # keep collecting the unmapped ops; the rest cannot be built anyway
            continue
        try:
            ir = translate(ctx, node)
        except GraphError as exc:
            raise GraphError(f"{op_name(node.target)[0]} at {_source(node)}: {exc}") from None
        if ir is None:  # deferred (a partial sum)
            continue
        if shape and b.shape(ir) != shape[1:]:
            raise GraphError(
                f"{op_name(node.target)[0]} at {_source(node)}: the IR infers shape "
                f"{b.shape(ir)}, the traced module {shape[1:]}"
            )
        ctx.nodes[node.name] = ir
    if unmapped:
        raise unmapped_error("dse.graph.torch_import.TORCH_IMPORTS", unmapped)
    return b.build()
