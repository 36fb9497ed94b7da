"""Trainable torch networks built from graphs of the IR (the graph stays plain data).

:func:`build_network` turns any architecture graph (NAS-Bench-201/101 cells in their skeletons,
MBConv chains, zoo networks, a user's space) into a :class:`GraphNetwork`: one torch module per
node that has weights, and a plan that runs the nodes in topological order, reading inputs in
port order. Shapes in the IR are per sample; the network takes a leading batch dimension.

``forward(x, stages=True)`` also returns the stage outputs the space marked
(``graph.graph["stage_outputs"]``), which regression proxies (GenNAS, Eproxy) train heads on;
``forward(x, blocks=True)`` the block outputs (``graph.graph["block_outputs"]``: stem, cells,
residual blocks), which AZ-NAS's measures compare block by block.
Parameter counts equal the IR's ``params`` (tested).
"""

from __future__ import annotations

import importlib
from typing import Any

import networkx as nx
import torch
from torch import nn

from dse.graph import OpNode
from dse.graph.lowering import TORCH_LOWERINGS, TorchLowering, register_torch_lowering
from dse.graph.ops import numel
from dse.training.sequence import Attention, Position, SeqPool, SGConv

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
    "hsigmoid": nn.Hardsigmoid,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=-1),
    "elementwise": nn.Identity,  # the importer's stand-in for an untranslated op
}


def _pad(op: OpNode) -> int:
    return op.dilation * (op.kernel // 2) if op.padding < 0 else op.padding


class _Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class _Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class _Constant(nn.Module):
    """A learned tensor read directly (ViT's class token), repeated over the batch of ``like``."""

    def __init__(self, shape):
        super().__init__()
        self.value = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, like):
        return self.value.expand(like.shape[0], *self.value.shape[1:])


class _GlobalMax(nn.Module):
    def forward(self, x):
        return torch.amax(x, dim=(2, 3), keepdim=True)


def graph_io(graph: nx.DiGraph) -> tuple[list, list]:
    """(input nodes, output nodes): the builder's record, else the graph's sources and sinks."""
    inputs = graph.graph.get("inputs") or [n for n in graph if graph.in_degree(n) == 0]
    outputs = graph.graph.get("outputs") or [n for n in graph if graph.out_degree(n) == 0]
    return inputs, outputs


def _conv(op: OpNode) -> nn.Module:
    cin = op.in_shapes[0][0]
    groups = cin if op.kind == "dwconv2d" else op.groups
    return nn.Conv2d(
        cin,
        op.out_shape[0],
        op.kernel,
        op.stride,
        _pad(op),
        dilation=op.dilation,
        groups=groups,
        bias=op.bias,
    )


def _deconv(op: OpNode) -> nn.Module:
    return nn.ConvTranspose2d(
        op.in_shapes[0][0],
        op.channels,
        op.kernel,
        op.stride,
        op.kernel // 2,
        output_padding=op.stride - 1,
        bias=op.bias,
    )


def _norm(op: OpNode) -> nn.Module:
    shape = op.in_shapes[0]
    if op.mode == "layer":
        return nn.LayerNorm(shape[-1])
    if op.mode == "group":
        return nn.GroupNorm(op.groups, shape[0])
    affine = op.mode != "batch_stats"
    if len(shape) == 3:
        return nn.BatchNorm2d(shape[0], affine=affine)
    return nn.BatchNorm1d(shape[0], affine=affine)


def _pool(op: OpNode) -> nn.Module:
    if op.mode == "global_avg":
        return nn.AdaptiveAvgPool2d(1)
    if op.mode == "global_max":
        return _GlobalMax()
    if op.mode == "avg":
        return nn.AvgPool2d(op.kernel, op.stride, _pad(op), count_include_pad=False)
    return nn.MaxPool2d(op.kernel, op.stride, _pad(op))


def _sgconv(op: OpNode) -> nn.Module:
    return SGConv(
        op.in_shapes[0][1],
        op.in_shapes[0][0],
        op.kernel,
        bidirectional=op.mode == "bidirectional",
        decay=op.option("decay", "alpha"),
        rate=op.option("rate", 0.5),
        skip=op.bias,
        prune=op.option("prune", 0.0),
        prune_method=op.option("prune_method", "magnitude"),
    )


def _sum(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _product(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def _zero(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    """The "none" edge: zeros, keeping the graph connected for autograd."""
    if op.out_shape == op.in_shapes[0]:
        return xs[0] * 0.0
    return xs[0].new_zeros((xs[0].shape[0], *op.out_shape)) + 0.0 * xs[0].sum()


def _shuffle(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel ``i`` of group ``g`` moves to ``i x groups + g``."""
    x = xs[0]
    n, c = x.shape[:2]
    return x.reshape(n, op.groups, c // op.groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def _slice(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    """The first channels, or (``shape``) the first elements as that shape."""
    if op.shape:
        return xs[0].flatten(1)[:, : numel(op.shape)].reshape(-1, *op.shape)
    return xs[0][:, : op.channels]


def _matmul(op: OpNode, xs: list[torch.Tensor]) -> torch.Tensor:
    b = xs[1].transpose(-1, -2) if op.transpose_b else xs[1]
    return xs[0] @ b


for _kind, _module in (
    ("conv2d", _conv),
    ("dwconv2d", _conv),
    ("deconv2d", _deconv),
    ("linear", lambda op: nn.Linear(op.in_shapes[0][-1], op.channels, bias=op.bias)),
    ("norm", _norm),
    ("activation", lambda op: _ACTIVATIONS[op.mode]()),
    ("pool", _pool),
    ("embedding", lambda op: nn.Embedding(op.vocab, op.channels)),
    ("reshape", lambda op: _Flatten() if op.mode == "flatten" else _Reshape(op.out_shape)),
    ("sgconv", _sgconv),
    (
        "attention",
        lambda op: Attention(
            max(op.groups, 1), int(op.option("window", 0)), op.mode != "bidirectional"
        ),
    ),
    ("position", lambda op: Position(*op.in_shapes[0])),
    ("constant", lambda op: _Constant(op.out_shape)),
    ("upsample", lambda op: nn.Upsample(size=tuple(op.out_shape[1:]), mode=op.mode)),
    ("seq_pool", lambda op: SeqPool(op.mode)),
):
    register_torch_lowering(_kind, module=_module)
for _kind, _inline in (
    ("add", _sum),
    ("mul", _product),
    ("concat", lambda op, xs: torch.cat(xs, dim=1)),
    ("identity", lambda op, xs: xs[0]),
    ("slice", _slice),
    ("shuffle", _shuffle),
    ("zero", _zero),
    ("matmul", _matmul),
):
    register_torch_lowering(_kind, inline=_inline)


def lowering(kind: str) -> TorchLowering:
    """The registered torch lowering of op kind ``kind`` (the error lists the kinds that
    have one)."""
    try:
        return TORCH_LOWERINGS[kind]
    except KeyError:
        raise ValueError(
            f"no torch lowering for op kind {kind!r}; kinds with one: "
            f"{', '.join(TORCH_LOWERINGS.names())} (dse.graph.lowering.register_torch_lowering)"
        ) from None


def op_module(op: OpNode) -> nn.Module | None:
    """The torch module of one node; None for nodes computed inline (merges, views, inputs)."""
    if op.kind == "input":
        return None
    make = lowering(op.kind).module
    return make(op) if make is not None else None


class GraphNetwork(nn.Module):
    """A graph of the IR as a torch module (see the module docstring)."""

    def __init__(self, graph: nx.DiGraph, drop_norm: bool = False):
        super().__init__()
        order = list(nx.topological_sort(graph))
        position = {n: i for i, n in enumerate(order)}
        self.layers = nn.ModuleDict()
        #: (node, its inline function or None (a module, or an input), op, input nodes)
        self.plan: list[tuple[int, Any, OpNode, list[int]]] = []
        for n in order:
            op = graph.nodes[n]["op"]
            preds = sorted(graph.pred[n].items(), key=lambda kv: kv[1].get("port", 0))
            module = nn.Identity() if drop_norm and op.kind == "norm" else op_module(op)
            inline = None
            if module is not None:
                self.layers[str(position[n])] = module
            elif op.kind != "input":
                inline = lowering(op.kind).inline
            self.plan.append((position[n], inline, op, [position[p] for p, _ in preds]))
        inputs, outputs = graph_io(graph)
        self.input_ids = [position[n] for n in inputs]
        self.output_ids = [position[n] for n in outputs]
        self.stage_ids = [position[n] for n in graph.graph.get("stage_outputs", [])]
        self.block_ids = [position[n] for n in graph.graph.get("block_outputs", [])]

    def forward(self, *inputs: torch.Tensor, stages: bool = False, blocks: bool = False):
        if stages and blocks:
            raise ValueError("forward: ask for stages or blocks, not both")
        if len(inputs) != len(self.input_ids):
            raise ValueError(f"the network takes {len(self.input_ids)} input(s), got {len(inputs)}")
        values: dict[int, torch.Tensor] = dict(zip(self.input_ids, inputs))
        for i, inline, op, ins in self.plan:
            if i in values:  # an input
                continue
            xs = [values[j] for j in ins]
            if inline is not None:
                values[i] = inline(op, xs)
            else:  # a source (a constant) reads the first input for the batch size
                values[i] = self.layers[str(i)](xs[0] if xs else inputs[0])
        out = (
            values[self.output_ids[0]]
            if len(self.output_ids) == 1
            else [values[j] for j in self.output_ids]
        )
        if stages or blocks:
            return out, [values[j] for j in (self.stage_ids if stages else self.block_ids)]
        return out


def build_network(graph: nx.DiGraph, seed: int | None = None, drop_norm: bool = False) -> nn.Module:
    """A freshly initialised network for ``graph`` (deterministic weights when ``seed`` is given;
    ``drop_norm`` replaces normalisation layers by identities, as synflow wants).

    A graph of a space written as PyTorch (``graph.graph["torch_module"]``, see
    :class:`dse.spaces.torch_space.TorchSpace`) gives the user's own module, ``make(arch)``,
    not a round trip through the IR (except with ``drop_norm``, which needs the IR's layers)."""
    user = graph.graph.get("torch_module")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if user is not None and not drop_norm:
            module, _, function = user["factory"].partition(":")
            return getattr(importlib.import_module(module), function)(dict(user["arch"]))
        return GraphNetwork(graph, drop_norm)
