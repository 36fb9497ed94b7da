"""A module traced by running it once, recording the calls it makes.

torch.fx traces symbolically and then needs a forward pass for the shapes; this tracer needs
only the forward pass. Each standard layer with a rewrite
(:data:`~dse.graph.fx_trace.FX_MODULES`, seen whole through module hooks that act on this
module's layers only), each torch function and each tensor method called outside such a layer
(seen by a ``TorchFunctionMode``) becomes the ATen call ``torch.export`` would write for it,
through the same rewrites as fx's calls, so one set of translations reads all three tracers'
graphs. Which call made a tensor is known by the tensor's identity, forgotten when the
tensor is freed (so a later tensor at the same address is not taken for it; keeping every
tensor alive instead would cost fresh memory for each: a fifth of a MobileNet's trace).

Running the module's own Python, it follows what symbolic tracing cannot (iterating a tensor,
control flow on shapes), at the cost of one forward pass whose heavy calls are answered by
their shapes (:mod:`dse.graph.shape_only`): about 1 ms for a small CNN (fx 2 ms, torch.export
35 ms) and 14 ms for the elastic MobileNet of ``examples/elastic_mobilenet.py`` (fx 30-50 ms,
torch.export 560-670 ms), what a search over a space written as PyTorch wants. Inside a
recorded layer, calls are answered or run but not recorded (the layer is the call).
Anything it cannot record (a tensor made inside ``forward`` from nothing, a call without a
rewrite) reaches the importer as an unmapped call, and the import falls back on torch.export.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Sequence
from typing import Any

from dse.graph.fx_trace import (
    FX_MODULES,
    Call,
    Parameters,
    TracedValue,
    aten_call,
    traced_shape,
    value_meta,
)
from dse.graph.shape_only import ShapeOnly

#: tensor operators (``x + y``, ``x[:, 0]``) by the function name their rewrite has
DUNDERS = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul",
    "__sub__": "sub", "__rsub__": "sub", "__isub__": "sub",
    "__truediv__": "truediv", "__itruediv__": "truediv",
    "__matmul__": "matmul", "__pow__": "pow", "__getitem__": "getitem",
}  # fmt: skip


class _Recorder:
    """The calls of one run, in order, and which call made each tensor."""

    def __init__(self, params: Parameters, paths: dict[int, str]):
        self.params, self.paths = params, paths
        self.calls: list[Call] = []
        self.made: dict[int, Any] = {}  # id(tensor) -> the Call (or Param) that gives it
        self.watch: dict[int, Any] = {}  # id -> a weak reference that forgets it when freed
        self.inside = 0  # depth inside a recorded layer (its own calls are not recorded)

    def ref(self, value: Any) -> Any:
        """What a translation reads for argument ``value``: its call, a parameter, a list of
        them, or the value itself (a number, a shape, a tensor not made by the network)."""
        if isinstance(value, (list, tuple)):
            return type(value)(self.ref(v) for v in value)
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            key = id(value)
            if key in self.made:
                return self.made[key]
            if key in self.params.names:
                return self.params.ref(value)
        return value

    def record(self, kind: str, target: Any, args: tuple, kwargs: dict, out: Any) -> None:
        import torch

        with torch._C.DisableTorchFunction():  # the recorder's own reads of tensors are no calls
            self._record(kind, target, args, kwargs, out)

    def _record(self, kind: str, target: Any, args: tuple, kwargs: dict, out: Any) -> None:
        shape = traced_shape(out)
        if shape is None:  # shape arithmetic (x.size(0), x.shape): values, not calls
            return
        refs, kwrefs = self.ref(args), {k: self.ref(v) for k, v in kwargs.items()}
        path = self.paths.get(id(target), "") if kind == "module" else ""
        aten, refs, kwrefs = aten_call(kind, target, path, self.params, refs, kwrefs)
        label = f"{aten.split('.')[0].split(' ')[0]}_{len(self.calls)}"
        call = Call(label, "call_function", aten, tuple(refs), kwrefs)
        call.meta["val"] = value_meta(shape)
        self.calls.append(call)
        if isinstance(call.meta["val"], TracedValue):
            self.remember(out, call)
            return
        for i, piece in enumerate(out):  # several outputs (a split): each piece a getitem
            item = Call(f"getitem_{len(self.calls)}", "call_function", "getitem", (call, i))
            item.meta["val"] = TracedValue(shape[i])
            self.calls.append(item)
            self.remember(piece, item)

    def remember(self, tensor: Any, call: Any) -> None:
        """``tensor`` was made by ``call`` for as long as it lives."""
        key = id(tensor)
        self.made[key] = call
        self.watch[key] = weakref.ref(tensor, functools.partial(self._forget, key))

    def _forget(self, key: int, _: Any) -> None:
        self.made.pop(key, None)
        self.watch.pop(key, None)


def trace(module: Any, example_inputs: Sequence[Any]) -> tuple[list[Call], dict, list[str]]:
    """``(calls in order, parameter shapes by name, the user inputs' names)`` of ``module``
    run once on ``example_inputs`` (without gradients)."""
    import torch
    from torch.overrides import TorchFunctionMode

    named = list(module.named_modules(remove_duplicate=False))
    params = Parameters(module, named)
    paths = {id(m): name for name, m in named}
    rec = _Recorder(params, paths)

    shapes = ShapeOnly()  # the heavy calls answered by their output's shape, not computed

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = shapes.answer(func, args, kwargs)
            if out is None:
                out = func(*args, **kwargs)
            if rec.inside:  # a call inside a recorded layer: the layer is the call
                return out
            name = getattr(func, "__name__", "")
            if name != "__get__":  # not x.shape
                owner = getattr(func, "__qualname__", "").split(".")[0]
                if name in DUNDERS:
                    rec.record("function", DUNDERS[name], args, kwargs, out)
                elif owner in ("TensorBase", "Tensor"):  # x.view(...): self is args[0]
                    rec.record("method", name, args, kwargs, out)
                else:
                    rec.record("function", name, args, kwargs, out)
            return out

    leaves = {
        id(layer)
        for _, layer in named
        if type(layer).__module__.startswith("torch.nn") and type(layer).__name__ in FX_MODULES
    }

    def enter(layer: Any, inputs: tuple) -> None:
        if id(layer) in leaves:
            rec.inside += 1

    def leave(layer: Any, inputs: tuple, out: Any) -> None:
        if id(layer) in leaves:
            rec.inside -= 1
            if rec.inside == 0:
                rec.record("module", layer, inputs, {}, out)

    names = _input_names(module, len(example_inputs))
    for name, x in zip(names, example_inputs, strict=True):
        rec.remember(x, Call(name, "placeholder", "input", meta={"val": TracedValue(x.shape)}))
    # two global hooks that act on this module's layers only (a handle per layer costs more
    # than the forward pass of a small network), removed when the run ends
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(enter)]
    try:
        hooks.append(torch.nn.modules.module.register_module_forward_hook(leave))
        with torch.no_grad(), Mode():
            out = module(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    inputs = [rec.made[id(x)] for x in example_inputs]
    calls = inputs + rec.calls
    output = Call("output", "output", "output", (rec.ref(out),))
    for call in [*rec.calls, output]:  # readers by positional and keyword arguments alike
        for arg in _calls_in((call.args, call.kwargs)):
            arg.users.append(call)
    return calls, params.shapes, names


def _calls_in(args: Any) -> list[Call]:
    """The calls among ``args``, however nested in lists, tuples and dicts."""
    found, todo = [], [args]
    while todo:
        arg = todo.pop()
        kind = type(arg)
        if kind is Call:
            found.append(arg)
        elif kind is tuple or kind is list:
            todo.extend(arg)
        elif kind is dict:
            todo.extend(arg.values())
    return found


def _input_names(module: Any, n: int) -> list[str]:
    """The names of ``forward``'s first ``n`` parameters (torch.export names its inputs so)."""
    try:
        names = list(inspect.signature(module.forward).parameters)[:n]
    except (TypeError, ValueError):
        names = []
    return names if len(names) == n else [f"input_{i}" for i in range(n)]
