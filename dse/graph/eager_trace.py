"""A module traced by running it once, recording the calls it makes.

torch.fx traces symbolically and then needs a forward pass for the shapes; this tracer needs
only the forward pass. Each standard layer with a rewrite
(:data:`~dse.graph.fx_trace.FX_MODULES`), each torch function and each tensor method called
outside such a layer (seen by a ``TorchFunctionMode``) becomes the ATen call ``torch.export``
would write for it, through the same rewrites as fx's calls, so one set of translations reads
all three tracers' graphs. Which call made a tensor is known by the tensor's identity,
forgotten when the tensor is freed (so a later tensor at the same address is not taken for
it; keeping every tensor alive instead would cost fresh memory for each: a fifth of a
MobileNet's trace).

A standard layer is seen whole through a ``forward`` the tracer gives it for the run (an
instance attribute, removed when the run ends, whether it ends well or not; a forward the
user set is put back). Global module hooks, which did this before, send every module call,
containers too, down PyTorch's slow path; the layer's own forward also lets a
convolution, batch norm or linear layer be answered by its shape without running its Python
(:meth:`~dse.graph.shape_only.ShapeOnly.answer_layer`), and lets the other standard layers
(activations, pools, reshapes: no call of theirs has a shape rule) run with the mode off.
A module is traced by one thread at a time.

Running the module's own Python, it follows what symbolic tracing cannot (iterating a tensor,
control flow on shapes), at the cost of one forward pass whose heavy calls are answered by
their shapes (:mod:`dse.graph.shape_only`): about 0.4 ms for a small CNN (fx 2 ms,
torch.export 40 ms) and 8-12 ms for the elastic MobileNet of ``examples/elastic_mobilenet.py``
(its plain forward pass 11-15 ms, fx 25-60 ms, torch.export 580-700 ms), what a search over a
space written as PyTorch wants. Inside a recorded layer, calls are answered or run but not
recorded (the layer is the call). Anything it cannot record (a tensor made inside ``forward``
from nothing, a call without a rewrite) reaches the importer as an unmapped call, and the
import falls back on torch.export."""

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
        import torch

        self.tensor = torch.Tensor
        self.params, self.paths = params, paths
        self.calls: list[Call] = []
        self.made: dict[int, Any] = {}  # id(tensor) -> the Call (or Param) that gives it
        self.watch: dict[int, Any] = {}  # id -> a weak reference that forgets it when freed
        self.inside = 0  # depth inside a recorded layer (its own calls are not recorded)
        self.prefixes: dict[str, str] = {}  # ATen name -> its calls' label prefix

    def ref(self, value: Any) -> Any:
        """What a translation reads for argument ``value``: its call, a parameter, a list of
        them, or the value itself (a number, a shape, a tensor not made by the network)."""
        kind = type(value)
        if kind is tuple or kind is list:
            return kind([self.ref(v) for v in value])
        if isinstance(value, self.tensor):
            key = id(value)
            made = self.made.get(key)
            if made is not None:
                return made
            if key in self.params.names:
                return self.params.ref(value)
        return value

    def record(self, kind: str, target: Any, args: tuple, kwargs: dict, out: Any) -> None:
        import torch

        with torch._C.DisableTorchFunction():  # the recorder's own reads of tensors are no calls
            self._record(kind, target, args, kwargs, out)

    def _record(self, kind: str, target: Any, args: tuple, kwargs: dict, out: Any) -> None:
        shape = tuple(out.shape) if isinstance(out, self.tensor) else traced_shape(out)
        if shape is None:  # shape arithmetic (x.size(0), x.shape): values, not calls
            return
        refs = self.ref(args)
        kwrefs = {k: self.ref(v) for k, v in kwargs.items()} if kwargs else {}
        path = self.paths.get(id(target), "") if kind == "module" else ""
        aten, refs, kwrefs = aten_call(kind, target, path, self.params, refs, kwrefs)
        prefix = self.prefixes.get(aten)
        if prefix is None:
            prefix = self.prefixes[aten] = aten.split(".")[0].split(" ")[0]
        call = Call(f"{prefix}_{len(self.calls)}", "call_function", aten, tuple(refs), kwrefs)
        call.meta["val"] = value_meta(shape)
        self.calls.append(call)
        if isinstance(call.meta["val"], TracedValue):
            self.remember(out, call)
            return
        for i, (piece, value) in enumerate(zip(out, call.meta["val"])):  # a split's pieces
            item = Call(f"getitem_{len(self.calls)}", "call_function", "getitem", (call, i))
            item.meta["val"] = value
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

    kinds: dict[Any, tuple[str, str] | None] = {}  # by function: how its calls are recorded

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = shapes.answer(func, args, kwargs)
            if out is None:
                out = func(*args, **kwargs)
            if rec.inside:  # a call inside a recorded layer: the layer is the call
                return out
            kind = kinds[func] if func in kinds else kinds.setdefault(func, _kind(func))
            if kind is not None:  # the mode is off inside its own handler: no guard needed
                rec._record(kind[0], kind[1], args, kwargs, out)
            return out

    leaves = {
        id(layer): layer
        for _, layer in named
        if type(layer).__module__.startswith("torch.nn") and type(layer).__name__ in FX_MODULES
    }

    def recorded(layer: Any) -> Any:
        """``layer``'s forward, recorded as one call. A convolution, batch norm or linear
        layer is answered by its shape without running its Python (ShapeOnly.answer_layer);
        any other of these layers runs with the mode off (none of its calls has a shape rule
        or a record: the same values, without dispatching each call to the mode); a heavy
        layer in a form no rule reads runs under the mode, its calls answered, not recorded."""
        forward, heavy = layer.forward, type(layer) in shapes.layer_rules
        off = torch._C.DisableTorchFunction

        def run(*inputs: Any, **kw: Any) -> Any:
            with off():
                out = None if kw else shapes.answer_layer(layer, inputs)
                if out is None and not heavy:
                    out = forward(*inputs, **kw)
            if out is None:
                rec.inside += 1
                try:
                    out = forward(*inputs, **kw)
                finally:
                    rec.inside -= 1
            if rec.inside == 0:
                rec.record("module", layer, inputs, {}, out)
            return out

        return run

    names = _input_names(module, len(example_inputs))
    for name, x in zip(names, example_inputs, strict=True):
        rec.remember(x, Call(name, "placeholder", "input", meta={"val": TracedValue(x.shape)}))
    own = {key: layer.__dict__.get("forward") for key, layer in leaves.items()}
    try:
        for layer in leaves.values():
            object.__setattr__(layer, "forward", recorded(layer))
        with torch.no_grad(), Mode():
            out = module(*example_inputs)
    finally:
        for key, layer in leaves.items():
            if own[key] is None:
                layer.__dict__.pop("forward", None)
            else:
                object.__setattr__(layer, "forward", own[key])
    inputs = [rec.made[id(x)] for x in example_inputs]
    calls = inputs + rec.calls
    output = Call("output", "output", "output", (rec.ref(out),))
    for call in [*rec.calls, output]:  # readers by positional and keyword arguments alike
        for arg in _calls_in((call.args, call.kwargs)):
            arg.users.append(call)
    return calls, params.shapes, names


def _kind(func: Any) -> tuple[str, str] | None:
    """How a call of ``func`` is recorded: ``("function", name)``, ``("method", name)`` for a
    tensor method (``x.view(...)``: self is the first argument), or None for an attribute
    read (``x.shape``, values rather than calls)."""
    name = getattr(func, "__name__", "")
    if name == "__get__":
        return None
    if name in DUNDERS:
        return "function", DUNDERS[name]
    owner = getattr(func, "__qualname__", "").split(".")[0]
    return ("method" if owner in ("TensorBase", "Tensor") else "function"), name


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
