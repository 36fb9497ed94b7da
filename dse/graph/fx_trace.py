"""A module traced with ``torch.fx`` as the ATen calls ``torch.export`` would give.

``torch.fx.symbolic_trace`` records module calls (``conv1``), functions (``torch.relu``,
``operator.add``) and tensor methods (``x.view``); shape propagation runs the module once on the
example inputs, its heavy calls answered by their shapes (:mod:`dse.graph.shape_only`). Each
recorded call is rewritten as the ATen call ``torch.export`` writes for it (:class:`Call`: a
module's parameters become named references), so one set of translations,
:data:`dse.graph.torch_import.TORCH_IMPORTS`, reads every tracer's graph. Symbolic tracing runs
no compiler, so it is 3-10x faster than ``torch.export``; it is the fallback when
``torch.export`` cannot trace a module.

The rewrites are registered per module class, function and method name (:data:`FX_MODULES`,
:data:`FX_FUNCTIONS`, :data:`FX_METHODS`) and serve the eager tracer
(:mod:`dse.graph.eager_trace`) as well; a call with none is passed through under its own name,
which the importer reports as unmapped.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dse.graph.shape_only import ShapeOnly
from dse.registry import Registry


@dataclass(eq=False)
class Call:
    """One traced call as an ATen call: what a ``TORCH_IMPORTS`` translation reads (the
    attributes of a ``torch.fx.Node`` it uses)."""

    name: str
    op: str  # "placeholder" or "call_function"
    target: str  # ATen name, e.g. "conv2d.default", "add.Tensor"
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    users: list[Call] = field(default_factory=list)


@dataclass(frozen=True)
class Param:
    """A module parameter or buffer an ATen call reads, by its (first) qualified name."""

    name: str


#: rewrite of ``(module, *args) -> (aten name, args)`` by module class name
FX_MODULES: Registry[Callable[..., tuple[str, tuple]]] = Registry("fx module")
#: rewrite of a function's ``args -> (aten name, args)``, by the function's qualified name
FX_FUNCTIONS: Registry[Callable[..., tuple[str, tuple]]] = Registry("fx function")
#: rewrite of a tensor method ``(self, *args) -> (aten name, args)``, by the method's name
FX_METHODS: Registry[Callable[..., tuple[str, tuple]]] = Registry("fx method")


def _as(aten: str) -> Callable[..., tuple]:
    """The call under ATen name ``aten`` with its arguments unchanged (for calls whose
    arguments have the ATen operator's names and order)."""
    return lambda *args, **kwargs: (aten, args, kwargs)


def _unary(aten: str) -> Callable[..., tuple]:
    """``f(input, inplace=False)``-like calls: the tensor alone (ATen's activations)."""
    return lambda x, *rest, **kwargs: (aten, (x,))


class Parameters:
    """The qualified name of each of a module's tensors, shared tensors under their first name
    (so tied weights are one parameter)."""

    def __init__(self, root: Any, named: list | None = None):
        """``named``: ``root.named_modules(remove_duplicate=False)`` where the caller has it."""
        self.names: dict[int, str] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        # module by module, from each module's own tables (the root's
        # named_buffers(remove_duplicate=False) walks the whole tree once per module, and
        # named_parameters(recurse=False) is a generator per module: a tenth of a trace)
        for prefix, module in named or root.named_modules(remove_duplicate=False):
            for name, tensor in (*module._parameters.items(), *module._buffers.items()):
                if tensor is None:  # a registered but absent tensor (a conv without bias)
                    continue
                first = self.names.setdefault(id(tensor), f"{prefix}.{name}" if prefix else name)
                self.shapes[first] = tuple(tensor.shape)  # a torch.Size: ints

    def ref(self, tensor: Any) -> Param | None:
        return None if tensor is None else Param(self.names[id(tensor)])


def _pair(size: Any) -> list[int]:
    """A square window's size as ATen writes it: ``2`` and ``(2, 2)`` alike."""
    return list(size) if isinstance(size, (tuple, list)) else [size, size]


#: the ATen operator of each interpolation mode the IR's ``upsample`` has (others: unmapped)
_UPSAMPLE = {"nearest": "upsample_nearest2d.vec", "bilinear": "upsample_bilinear2d.vec"}


def _conv(p: Parameters, m: Any, x: Any) -> tuple[str, tuple]:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        return "conv2d(padding=" + repr(m.padding) + ")", (x,)
    return "conv2d.default", (
        x, p.ref(m.weight), p.ref(m.bias), m.stride, m.padding, m.dilation, m.groups
    )  # fmt: skip


def _conv_transpose(p: Parameters, m: Any, x: Any) -> tuple[str, tuple]:
    args = (m.stride, m.padding, m.output_padding, m.groups, m.dilation)
    return "conv_transpose2d.input", (x, p.ref(m.weight), p.ref(m.bias), *args)


def _batch_norm(p: Parameters, m: Any, x: Any) -> tuple[str, tuple]:
    return "batch_norm.default", (x, p.ref(m.weight), p.ref(m.bias))


def _layer_norm(p: Parameters, m: Any, x: Any) -> tuple[str, tuple]:
    return "layer_norm.default", (x, m.normalized_shape, p.ref(m.weight), p.ref(m.bias))


def _activation(aten: str) -> Callable[..., tuple[str, tuple]]:
    return lambda p, m, x: (aten, (x,))


for _cls, _rewrite in (
    ("Conv2d", _conv),
    ("ConvTranspose2d", _conv_transpose),
    ("BatchNorm1d", _batch_norm),
    ("BatchNorm2d", _batch_norm),
    ("LayerNorm", _layer_norm),
    ("GroupNorm", lambda p, m, x: ("group_norm.default", (x, m.num_groups, p.ref(m.weight)))),
    ("Linear", lambda p, m, x: ("linear.default", (x, p.ref(m.weight), p.ref(m.bias)))),
    ("Embedding", lambda p, m, x: ("embedding.default", (p.ref(m.weight), x))),
    ("ReLU", _activation("relu.default")),
    ("ReLU6", _activation("relu6.default")),
    ("Sigmoid", _activation("sigmoid.default")),
    ("SiLU", _activation("silu.default")),
    ("Hardswish", _activation("hardswish.default")),
    ("Hardsigmoid", _activation("hardsigmoid.default")),
    ("GELU", _activation("gelu.default")),
    ("Tanh", _activation("tanh.default")),
    ("LeakyReLU", _activation("leaky_relu.default")),
    ("Softmax", lambda p, m, x: ("softmax.int", (x, m.dim))),
    ("MaxPool2d", lambda p, m, x: ("max_pool2d.default", (x, m.kernel_size, m.stride, m.padding))),
    ("AvgPool2d", lambda p, m, x: ("avg_pool2d.default", (x, m.kernel_size, m.stride, m.padding))),
    (
        "AdaptiveAvgPool2d",
        lambda p, m, x: ("adaptive_avg_pool2d.default", (x, _pair(m.output_size))),
    ),
    ("Flatten", lambda p, m, x: ("flatten.using_ints", (x, m.start_dim, m.end_dim))),
    ("Upsample", lambda p, m, x: (_UPSAMPLE.get(m.mode, f"upsample ({m.mode})"), (x,))),
    ("Dropout", _activation("clone.default")),
    ("Identity", _activation("clone.default")),
):
    FX_MODULES.add(_cls, _rewrite)


def _f_interpolate(input, size=None, scale_factor=None, mode="nearest", *rest, **kw) -> tuple:
    return _UPSAMPLE.get(mode, f"interpolate ({mode})"), (input,)


def _flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> tuple:
    return "flatten.using_ints", (x, start_dim, end_dim)


def _dims(x: Any, *dims: Any, **kwargs: Any) -> tuple:
    """``x.permute(0, 2, 1)``, ``x.permute((0, 2, 1))`` and ``torch.permute(x, dims=...)``."""
    dims = dims or (kwargs["dims"],)
    return "permute.default", (x, list(dims[0]) if len(dims) == 1 else list(dims))


def _index(x: Any, index: Any) -> tuple:
    """``pieces[i]`` of a split; ``x[:, i]`` is ``select``; other indexing is passed on."""
    if isinstance(index, int):
        return "getitem", (x, index)
    if (
        isinstance(index, tuple)
        and len(index) == 2
        and index[0] == slice(None)
        and isinstance(index[1], int)
    ):
        return "select.int", (x, 1, index[1])
    return "index", (x, index)


# functional forms (torch.nn.functional and torch): their own signatures, written out as the
# positional arguments of the ATen operator torch.export records for them


def _f_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> tuple:
    if isinstance(padding, str):  # 'same'/'valid': export resolves them into pixels
        return f"conv2d(padding={padding!r})", (input,)
    return "conv2d.default", (input, weight, bias, stride, padding, dilation, groups)


def _f_linear(input, weight, bias=None) -> tuple:
    return "linear.default", (input, weight, bias)


def _f_batch_norm(input, running_mean, running_var, weight=None, bias=None, *rest, **kw) -> tuple:
    return "batch_norm.default", (input, weight, bias)


def _f_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> tuple:
    return "layer_norm.default", (input, normalized_shape, weight, bias)


def _f_group_norm(input, num_groups, weight=None, bias=None, eps=1e-5) -> tuple:
    return "group_norm.default", (input, num_groups, weight, bias)


def _f_pool(aten: str) -> Callable[..., tuple]:
    def rewrite(input, kernel_size, stride=None, padding=0, *rest, **kw) -> tuple:
        return aten, (input, kernel_size, stride or kernel_size, padding)

    return rewrite


def _f_adaptive(input, output_size) -> tuple:
    return "adaptive_avg_pool2d.default", (input, _pair(output_size))


def _f_softmax(input, dim=None, *rest, **kw) -> tuple:
    return "softmax.int", (input, dim)


def _f_embedding(input, weight, *rest, **kw) -> tuple:
    return "embedding.default", (weight, input)


def _f_mean(input, dim=None, keepdim=False, **kw) -> tuple:
    return "mean.dim", (input, [dim] if isinstance(dim, int) else dim, keepdim)


def _f_split(aten: str, size_name: str) -> Callable[..., tuple]:
    def rewrite(input, *args, **kwargs) -> tuple:
        size = args[0] if args else kwargs[size_name]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        return aten, (input, size, dim)

    return rewrite


def _f_unbind(input, dim=0) -> tuple:
    return "unbind.int", (input, dim)


def _f_cat(tensors, dim=0) -> tuple:
    return "cat.default", (list(tensors), dim)


def _f_transpose(input, dim0, dim1) -> tuple:
    return "transpose.int", (input, dim0, dim1)


for _fn, _fn_rewrite in (
    *((f, _unary(f"{f}.default")) for f in ("relu", "relu6", "sigmoid", "silu", "tanh")),
    *((f, _unary(f"{f}.default")) for f in ("hardswish", "hardsigmoid", "gelu")),
    ("softmax", _f_softmax),
    ("add", _as("add.Tensor")),
    ("iadd", _as("add.Tensor")),
    ("mul", _as("mul.Tensor")),
    ("imul", _as("mul.Tensor")),
    ("truediv", _as("div.Tensor")),
    ("div", _as("div.Tensor")),
    ("pow", _as("pow.Tensor_Scalar")),
    ("sub", _as("sub.Tensor")),
    ("cat", _f_cat),
    ("flatten", _flatten),
    ("conv2d", _f_conv2d),
    ("linear", _f_linear),
    ("batch_norm", _f_batch_norm),
    ("layer_norm", _f_layer_norm),
    ("group_norm", _f_group_norm),
    ("max_pool2d", _f_pool("max_pool2d.default")),
    ("avg_pool2d", _f_pool("avg_pool2d.default")),
    ("adaptive_avg_pool2d", _f_adaptive),
    ("dropout", _unary("clone.default")),
    ("embedding", _f_embedding),
    ("mean", _f_mean),
    ("transpose", _f_transpose),
    ("permute", _dims),
    ("matmul", _as("matmul.default")),
    ("bmm", _as("bmm.default")),
    ("scaled_dot_product_attention", _as("scaled_dot_product_attention.default")),
    ("split", _f_split("split.Tensor", "split_size_or_sections")),
    ("chunk", _f_split("chunk.default", "chunks")),
    ("unbind", _f_unbind),
    ("getitem", _index),
    ("interpolate", _f_interpolate),
):
    FX_FUNCTIONS.add(_fn, _fn_rewrite)

for _method, _method_rewrite in (
    *((m, _unary(f"{m}.default")) for m in ("relu", "sigmoid", "tanh", "contiguous")),
    ("relu_", _unary("relu.default")),
    ("add_", _as("add.Tensor")),
    ("mul_", _as("mul.Tensor")),
    ("expand", _as("expand.default")),
    ("view", _as("view.default")),
    ("reshape", _as("view.default")),
    ("flatten", _flatten),
    ("transpose", _f_transpose),
    ("permute", _dims),
    ("mean", _f_mean),
    ("softmax", _f_softmax),
    ("add", _as("add.Tensor")),
    ("mul", _as("mul.Tensor")),
    ("split", _f_split("split.Tensor", "split_size")),
    ("chunk", _f_split("chunk.default", "chunks")),
    ("unbind", _f_unbind),
):
    FX_METHODS.add(_method, _method_rewrite)


def traced_shape(value: Any) -> Any:
    """A value's traced shape, a tuple of them for several outputs (a split), or None."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape)  # a computed tensor's torch.Size: ints
    if isinstance(value, (tuple, list)) and value and all(hasattr(v, "dtype") for v in value):
        return tuple(traced_shape(v) for v in value)
    return None


def _run(node: Any, modules: dict, root: Any, args: tuple, kwargs: dict) -> Any:
    """Run one fx node on the values of its arguments (shape propagation without a
    GraphModule: a third of the trace's time on a small network)."""
    if node.op == "call_module":
        return modules[node.target](*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "get_attr":
        return operator.attrgetter(node.target)(root)
    return node.target(*args, **kwargs)


class TracedValue:
    """The ``meta["val"]`` of a :class:`Call`: just the traced shape."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(shape)


def value_meta(shape: tuple) -> TracedValue | list[TracedValue]:
    """The ``meta["val"]`` of a call of :func:`traced_shape` ``shape``: one value, or one per
    output of a split (as torch.export writes them)."""
    if shape and not isinstance(shape[0], int):
        return [TracedValue(s) for s in shape]
    return TracedValue(shape)


def trace(
    module: Any, example_inputs: Sequence[Any], sources: bool = True
) -> tuple[list[Call], dict, list[str]]:
    """``(calls in order, parameter shapes by name, the user inputs' names)`` of ``module``
    traced by ``torch.fx`` on ``example_inputs`` (without gradients); ``sources``: record each
    call's source line (for error messages)."""
    import torch

    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = sources
    graph = tracer.trace(module)
    params = Parameters(module)
    modules = dict(module.named_modules(remove_duplicate=False))
    values: dict[Any, Any] = {}
    calls: dict[Any, Any] = {}
    order: list[Call] = []
    inputs: list[str] = []
    feed = iter(example_inputs)
    shapes = ShapeOnly().mode()  # the heavy calls answered by their output's shape
    for node in graph.nodes:
        if node.op == "output":
            continue
        run_args = torch.fx.node.map_arg(node.args, lambda n: values[n])
        run_kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: values[n])
        with torch.no_grad(), shapes:
            value = (
                next(feed)
                if node.op == "placeholder"
                else _run(node, modules, module, run_args, run_kwargs)
            )
        values[node] = value
        shape = traced_shape(value)
        if node.op == "get_attr":
            calls[node] = params.ref(value) if id(value) in params.names else value
            continue
        args = torch.fx.node.map_arg(node.args, lambda n: calls[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: calls[n])
        if node.op == "placeholder":
            inputs.append(node.target)  # the argument's name, as torch.export names it
            call = Call(node.target, "placeholder", "input")
        elif shape is None:  # shape arithmetic (x.size(0), x.shape): the translations read the
            calls[node] = None  # traced shapes instead, so these values are never needed
            continue
        elif _in_place(node):  # fx records no data dependency through it: export can
            call = Call(node.name, "call_function", f"{node.target} (in place, under torch.fx)")
        else:
            if node.op == "call_module":
                kind, what = "module", modules[node.target]
            elif node.op == "call_method":
                kind, what = "method", node.target
            else:
                kind, what = "function", getattr(node.target, "__name__", str(node.target))
            target, args, kwargs = aten_call(kind, what, str(node.target), params, args, kwargs)
            call = Call(node.name, "call_function", target, args, kwargs)
        call.meta["val"] = value_meta(shape)
        if node.stack_trace:
            call.meta["stack_trace"] = node.stack_trace
        calls[node] = call
        order.append(call)
    for node, call in calls.items():
        if isinstance(call, Call):  # readers: calls, and the graph's output (an fx node)
            call.users = [calls[u] if isinstance(calls.get(u), Call) else u for u in node.users]
    return order, params.shapes, inputs


def _in_place(node: Any) -> bool:
    """A tensor method that changes its tensor (``z.relu_()``, its result unused): symbolic
    tracing ties later reads of the tensor to the value before it, so such a module goes to
    torch.export (which follows it, as the eager tracer does)."""
    return node.op == "call_method" and str(node.target).endswith("_")


def aten_call(kind: str, target: Any, path: str, params: Parameters, args: tuple, kwargs: dict):
    """(ATen name, args, kwargs) of one recorded call: ``kind`` "module" (``target`` the layer,
    ``path`` its qualified name), "method" (``target`` its name) or "function" (its name). A
    call without a rewrite keeps a name no translation has (the importer then falls back on
    torch.export)."""
    if kind == "module":
        rewrite = _lookup(FX_MODULES, type(target).__name__)
        if rewrite is None:
            return f"{type(target).__name__} (module {path})", args, kwargs
        out = rewrite(params, target, *args, **kwargs)
    else:
        rewrite = _lookup(FX_METHODS if kind == "method" else FX_FUNCTIONS, target)
        if rewrite is None:
            return f"{target} ({kind})", args, kwargs
        out = rewrite(*args, **kwargs)
    return out if len(out) == 3 else (*out, {})


def _lookup(registry: Registry, name: str) -> Any:
    return registry[name] if name in registry else None
