"""TransNAS-Bench-101 micro (Duan et al., CVPR 2021): the NAS-Bench-201 cell, four ops, seven
tasks on Taskonomy images, 4,096 cells.

The cell is NAS-Bench-201's (4 nodes, 6 edges, each node the sum of its incoming edges) with ops
``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``. :meth:`parse` reads three forms:

* the benchmark's own code, ``64-41414-1_02_333``: per node its incoming edges' op digits
  (0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3), from node 0 up;
* NASLib's ``op_indices``, six integers (``"0 0 0 2 0 2"``), read as NASLib builds and queries
  them: the same digits in the same order (``'64-41414-{}_{}{}_{}{}{}'.format(*op_indices)``);
* a NAS-Bench-201 ``arch_str`` naming the cell's ops outright.

NASLib labels its indices with its own op names (0 Identity, 1 Zero, 2 conv 3x3, 3 conv 1x1) in
its own edge order, so the ``arch_str`` column of ``transnas101_micro_naslib.csv`` does not name
the network that was trained, counted and scored: the parameter and FLOP columns equal this
space's networks for the digits reading of ``naslib_op_indices`` (every cell, every task), and
cells that reading disconnects average 14 % on class_scene against 47 % for the others, while
the ``arch_str`` reading's "disconnected" cells average 52 %. Use ``--arch-column
naslib_op_indices`` with that table.

The network is the benchmark's ``MacroNet("64-41414-<cell>")`` encoder with a task's decoder,
as NASLib builds it (``tnb101/model_builder.py``) for the zero-cost benchmark whose counts are in
``transnas101_micro_naslib.csv``:

* stem: 3x3 stride-2 convolution to C/2 channels and batch norm, ReLU-conv3x3 stride 2-BN to C
  (C = 64): the input shrinks 4x;
* five layers of two cells, codes ``41414``: a ``4`` layer doubles the channels and halves the
  resolution in its first cell, whose edges from the cell input take the stride and the channel
  change (``skip_connect`` there is the factorised reduce: ReLU, two stride-2 1x1 convolutions
  to half the channels each, the second on the input shifted by one pixel, concatenated, batch
  norm; ``none`` gives zeros of the reduced shape); a ``1`` layer keeps both. 512 channels at
  1/32 of the input leave the encoder;
* heads: ``class_scene`` (63 classes), ``class_object`` (100), ``room_layout`` (9 regression
  outputs): global pool and a linear layer; ``jigsaw``: the encoder on each of 9 tiles of a
  quarter of the resolution, the pooled features of the 9 concatenated into a linear layer to
  1,000 permutations (a Siamese network: one encoder, shared); ``segmentsemantic``: the
  benchmark's segmentation decoder (a 3x3 conv to 1,024 channels, convs halving the channels,
  stride-2 transposed convs back to the input resolution, a 3x3 conv to 17 classes);
  ``autoencoder`` and ``normal``: its 14-layer generative decoder to 3 channels (tanh). Decoder
  convolutions have biases, batch norm and LeakyReLU(0.2).

``resolution`` is a parameter: 256 is the benchmark's; 32 (128 for jigsaw, whose tiles are a
quarter of it) keeps scoring cheap on a CPU (the decoders upsample to the input resolution either
way, with the same layers and parameters).

Jigsaw's graph is one tile's encoder; the 9 tiles' features enter the head as 9 views of that
one tile's pooled features. Parameters are the Siamese network's (one encoder), and FLOPs count
the encoder once, as NASLib's column does (see BENCHMARKS.md); a sample's cost is 9 encoder
passes, which ``tiles`` in the graph's meta records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import networkx as nx

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Arch, Choice, SearchSpace, SpaceError
from dse.spaces.blocks import factorized_reduce, relu_conv_bn
from dse.spaces.nasbench201 import (
    EDGE_AT,
    EDGE_NAMES,
    EDGES,
    edge_name,
    parse_arch_str,
    to_arch_str,
)

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
#: task -> (head, outputs)
TASKS = {
    "class_scene": ("classify", 63),
    "class_object": ("classify", 100),
    "room_layout": ("classify", 9),
    "jigsaw": ("jigsaw", 1000),
    "segmentsemantic": ("segment", 17),
    "autoencoder": ("generate", 3),
    "normal": ("generate", 3),
}
MACRO = "41414"  # per layer: 4 doubles the channels and halves the resolution, 1 keeps both
JIGSAW_TILES = 9


@SPACES.register("transnas101_micro")
class TransNas101MicroSpace(SearchSpace):
    """TransNAS-Bench-101 micro cells in the benchmark's encoder and a task's decoder."""

    name = "transnas101_micro"
    variables = tuple(Choice(edge_name(*e), OPS) for e in EDGES)

    def __init__(
        self,
        task: Literal[
            "class_scene",
            "class_object",
            "room_layout",
            "jigsaw",
            "segmentsemantic",
            "autoencoder",
            "normal",
        ] = "class_scene",
        resolution: int = 256,
        channels: int = 64,
        dataset: str | None = None,
    ):
        task = dataset or task  # ``dataset`` as in the other spaces (dse proxy-eval --dataset)
        if task not in TASKS:
            raise SpaceError(f"task: {task!r} is not allowed; allowed values: {list(TASKS)}")
        side = resolution // 4 if TASKS[task][0] == "jigsaw" else resolution
        if resolution < 32 or resolution % 32 or side % 32:
            least = 128 if TASKS[task][0] == "jigsaw" else 32
            raise SpaceError(
                f"resolution: must be a multiple of {least} for {task} (the encoder halves it "
                f"five times{', on tiles of a quarter of it' if least == 128 else ''}), "
                f"got {resolution}"
            )
        if channels < 2 or channels % 2:
            raise SpaceError(f"channels: must be an even number >= 2, got {channels}")
        self.task, self.resolution, self.channels = task, resolution, channels
        self.head, self.outputs = TASKS[task]

    def parse(self, text: str) -> Arch:
        """A benchmark code (``64-41414-1_02_333``), NASLib op_indices (``"1 0 2 3 3 3"``) or a
        NAS-Bench-201 ``arch_str`` -> architecture (see the module docstring)."""
        text = str(text).strip()
        if text.startswith("|"):
            arch = parse_arch_str(text)
            self.encode(arch)  # only the four TransNAS ops
            return arch
        if "-" in text:
            parts = text.split("-")
            if len(parts) != 3 or parts[1] != MACRO or parts[0] != str(self.channels):
                raise SpaceError(
                    f"arch: {text!r} is not a micro code {self.channels}-{MACRO}-a_bc_def"
                )
            nodes = parts[2].split("_")
            if [len(n) for n in nodes] != [1, 2, 3]:
                raise SpaceError(f"arch: {text!r} needs cell code a_bc_def (1, 2, 3 digits)")
            digits = "".join(nodes)
        else:
            digits = "".join(text.replace(",", " ").split())
        if len(digits) != len(EDGES) or any(d not in "0123" for d in digits):
            raise SpaceError(
                f"arch: {text!r} needs six op digits 0-3 (0 none, 1 skip_connect, "
                f"2 nor_conv_1x1, 3 nor_conv_3x3)"
            )
        return {name: OPS[int(d)] for name, d in zip(EDGE_NAMES, digits)}

    def code(self, arch: Mapping[str, Any]) -> str:
        """The benchmark's code of an architecture, ``64-41414-a_bc_def``."""
        d = "".join(str(OPS.index(arch[e])) for e in EDGE_NAMES)
        return f"{self.channels}-{MACRO}-{d[0]}_{d[1:3]}_{d[3:]}"

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return to_arch_str(arch)

    # -- graph ------------------------------------------------------------------------------
    def _edge(self, b: GraphBuilder, x: int, op: str, c_out: int, stride: int) -> int:
        c_in = b.shape(x)[0]
        if op == "none":
            if stride == 1 and c_in == c_out:
                return b.zero(x)
            return b.zero(x, stride=stride, channels=c_out)
        if op == "skip_connect":
            if stride == 1 and c_in == c_out:
                return b.identity(x)
            return factorized_reduce(b, x, c_out, stride)
        return relu_conv_bn(b, x, c_out, 1 if op == "nor_conv_1x1" else 3, stride)

    def _cell(self, b: GraphBuilder, x: int, ops: tuple[str, ...], c_out: int, stride: int):
        nodes = [x]
        for to in (1, 2, 3):
            terms = [
                self._edge(b, nodes[frm], ops[EDGE_AT[to, frm]], c_out, stride if frm == 0 else 1)
                for frm in range(to)
            ]
            nodes.append(terms[0] if len(terms) == 1 else b.sum(*terms))
        return nodes[3]

    def _encoder(self, b: GraphBuilder, x: int, ops: tuple[str, ...]) -> int:
        c = self.channels
        x = b.norm(b.conv(x, c // 2, 3, 2), "batch")
        x = b.mark_block(relu_conv_bn(b, x, c, 3, 2))
        for code in MACRO:
            if code == "4":
                c *= 2
            x = b.mark_block(self._cell(b, x, ops, c, 2 if code == "4" else 1))
            x = b.mark_block(self._cell(b, x, ops, c, 1))
            b.mark_stage(x)
        return x

    def _conv_layer(self, b: GraphBuilder, x: int, c: int, act: bool = True) -> int:
        y = b.conv(x, c, 3, bias=True)
        return b.act(b.norm(y, "batch"), "leaky_relu") if act else y

    def _deconv_layer(self, b: GraphBuilder, x: int, c: int) -> int:
        return b.act(b.norm(b.deconv(x, c, 3, 2), "batch"), "leaky_relu")

    def _segmentation(self, b: GraphBuilder, x: int, upsample: int) -> int:
        x = self._conv_layer(b, x, 1024)
        c = 1024
        for _ in range(6 - upsample):
            c //= 2
            x = self._conv_layer(b, x, c)
        for _ in range(upsample - 1):
            c //= 2
            x = self._deconv_layer(b, x, c)
        x = self._deconv_layer(b, x, c)
        return self._conv_layer(b, x, self.outputs, act=False)

    def _generative(self, b: GraphBuilder, x: int, upsample: int) -> int:
        """conv1..conv14 of the benchmark's GenerativeDecoder: a layer upsamples where
        ``upsample`` (log2 of the resolution gained) needs it."""
        plan = [
            (1024, False),
            (1024, False),
            (512, upsample >= 6),
            (512, False),
            (256, upsample >= 5),
            (128, False),
            (64, upsample >= 4),
            (64, False),
            (32, upsample >= 3),
            (32, False),
            (16, True),
            (32, False),
            (16, True),
        ]
        for c, up in plan:
            x = self._deconv_layer(b, x, c) if up else self._conv_layer(b, x, c)
        return b.act(self._conv_layer(b, x, self.outputs, act=False), "tanh")

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)
        ops = tuple(arch[e] for e in EDGE_NAMES)
        arch_str = to_arch_str(arch)
        b = GraphBuilder(f"transnas101_micro:{self.task}:{arch_str}")
        side = self.resolution // 4 if self.head == "jigsaw" else self.resolution
        x = self._encoder(b, b.input((3, side, side)), ops)
        if self.head == "classify":
            b.classifier(x, self.outputs)
        elif self.head == "jigsaw":
            pooled = b.flatten(b.pool(x, "global_avg"))
            tiles = [b.identity(pooled) for _ in range(JIGSAW_TILES)]
            b.linear(b.concat(*tiles), self.outputs)
        else:
            upsample = int(math.log2(self.resolution / b.shape(x)[1]))
            if self.head == "segment":
                self._segmentation(b, x, upsample)
            else:
                self._generative(b, x, upsample)
        b.meta.update(
            space=self.name,
            task=self.task,
            arch_str=arch_str,
            tiles=JIGSAW_TILES if self.head == "jigsaw" else 1,
        )
        return b.build()
