"""EDD's single-path MBConv chain (dissertation sections 2.3.1 and 2.6).

N searchable blocks (20 by default) on ImageNet at 224x224. Each block picks one MBConv
candidate, kernel {3, 5, 7} x expansion {4, 5, 6}, or ``skip`` (identity) where the block keeps
its shape, plus a weight bit-width. On an FPGA each block has its own weight precision from
{4, 8, 16} bits with 16-bit activations (section 2.6); on a GPU the whole network shares one
precision from {8, 16, 32} bits with 32-bit activations, because GPU frameworks do not run mixed
precision (section 2.4.2).

Macro skeleton (MobileNetV2-like): conv3x3 stride 2 to 32 channels, a fixed MBConv e1 k3 to 16
channels, the searchable blocks in six stages of (channels, depth, first stride)
(24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 3, 2), (352, 1, 1), then conv1x1 to 1280,
global pooling and the classifier. Other ``num_blocks`` scale the stage depths proportionally.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import networkx as nx

from dse.graph import GraphBuilder
from dse.graph.builder import FragmentCache
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError
from dse.spaces.blocks import conv_bn_act, mbconv

KERNELS = (3, 5, 7)
EXPANSIONS = (4, 5, 6)
MBCONV_OPS = tuple(f"k{k}_e{e}" for k in KERNELS for e in EXPANSIONS)
#: (output channels, depth, stride of the first block) for the default 20 blocks.
STAGES = ((24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 3, 2), (352, 1, 1))
BITS = {"fpga": (4, 8, 16), "gpu": (8, 16, 32)}
ACT_BITS = {"fpga": 16, "gpu": 32}


def stage_depths(num_blocks: int) -> list[int]:
    """Split ``num_blocks`` over the six stages in proportion to the default depths (>= 1 each)."""
    if num_blocks < len(STAGES):
        raise SpaceError(f"num_blocks: must be >= {len(STAGES)}, got {num_blocks}")
    base = [d for _, d, _ in STAGES]
    total = sum(base)
    exact = [d * num_blocks / total for d in base]
    depths = [max(1, int(x)) for x in exact]
    order = sorted(range(len(base)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(depths) < num_blocks:
        depths[order[i % len(order)]] += 1
        i += 1
    while sum(depths) > num_blocks:
        j = max(range(len(depths)), key=lambda k: depths[k])
        depths[j] -= 1
    return depths


@SPACES.register("mbconv")
class MBConvChainSpace(SearchSpace):
    """EDD MBConv chain: per block kernel x expansion or skip, and weight bit-widths."""

    name = "mbconv"
    #: the candidate vocabulary, read by EDD's supernet and tables from the space they search
    kernels: tuple[int, ...] = KERNELS
    expansions: tuple[int, ...] = EXPANSIONS
    mbconv_ops: tuple[str, ...] = MBCONV_OPS
    bit_choices: dict[str, tuple[int, ...]] = BITS

    def __init__(
        self,
        num_blocks: int = 20,
        target: Literal["fpga", "gpu"] = "fpga",
        resolution: int = 224,
        num_classes: int = 1000,
    ):
        if target not in BITS:
            raise SpaceError(f"target: {target!r} is not allowed; allowed values: {list(BITS)}")
        if resolution < 32:
            raise SpaceError(f"resolution: must be >= 32, got {resolution}")
        if num_classes < 1:
            raise SpaceError(f"num_classes: must be >= 1, got {num_classes}")
        self.num_blocks = num_blocks
        self.target = target
        self.resolution = resolution
        self.num_classes = num_classes
        self.act_bits = ACT_BITS[target]
        self.layout: list[tuple[int, int]] = []  # (out channels, stride) per block
        cin = 16
        for (channels, _, stride), depth in zip(STAGES, stage_depths(num_blocks)):
            for j in range(depth):
                self.layout.append((channels, stride if j == 0 else 1))
        variables: list[Choice] = []
        for i, (cout, stride) in enumerate(self.layout):
            skippable = stride == 1 and cin == cout
            variables.append(Choice(f"b{i:02d}.op", MBCONV_OPS + (("skip",) if skippable else ())))
            if target == "fpga":
                variables.append(Choice(f"b{i:02d}.bits", BITS["fpga"]))
            cin = cout
        if target == "gpu":
            variables.append(Choice("bits", BITS["gpu"]))
        self.variables = tuple(variables)
        self._fragments = FragmentCache()

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        blocks = []
        for i in range(self.num_blocks):
            op = arch[f"b{i:02d}.op"]
            blocks.append(op if self.target == "gpu" else f"{op}@{arch[f'b{i:02d}.bits']}")
        tail = f"|{arch['bits']}b" if self.target == "gpu" else ""
        return "-".join(blocks) + tail

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """A chain is determined by its block sequence; a skipped block's bit-width is moot, so
        architectures that differ only there hash alike (their graphs are identical)."""
        self.encode(arch)
        blocks = [
            arch[f"b{i:02d}.op"]
            if arch[f"b{i:02d}.op"] == "skip"
            else f"{arch[f'b{i:02d}.op']}@{self._bits(arch, i)}"
            for i in range(self.num_blocks)
        ]
        key = f"{self.target}/{self.resolution}/{self.num_classes}/" + "-".join(blocks)
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def _bits(self, arch: Mapping[str, Any], i: int) -> int:
        return arch["bits"] if self.target == "gpu" else arch[f"b{i:02d}.bits"]

    # -- graph: three kinds of segment, shared by to_graph and the segment graphs -------------
    def _stem(self, b: GraphBuilder, x: int) -> int:
        x = conv_bn_act(b, x, 32, 3, 2, act="relu6")
        return mbconv(b, x, 16, 3, 1, 1)

    def _block(self, b: GraphBuilder, x: int, i: int, op: str, bits: int) -> int:
        """Block ``i`` as candidate ``op`` at ``bits`` (``skip``: nothing is added)."""
        if op == "skip":
            return x
        cout, stride = self.layout[i]
        kernel, expansion = int(op[1]), int(op[4])
        return b.block(
            self._fragments,
            ("mbconv", op, bits, cout, stride),
            (x,),
            lambda bb, xx: mbconv(bb, xx, cout, kernel, stride, expansion, bits=bits),
        )

    def _head(self, b: GraphBuilder, x: int) -> int:
        x = conv_bn_act(b, x, 1280, 1, act="relu6")
        return b.classifier(x, self.num_classes)

    def fixed_bits(self, arch_bits: int | None = None) -> int:
        """Weight bits of the fixed layers (stem, first block, head): 16 on an FPGA, the
        network's precision on a GPU."""
        return int(arch_bits) if self.target == "gpu" and arch_bits is not None else 16

    def block_input_shapes(self) -> list[tuple[int, ...]]:
        """The input shape of every searchable block and, last, of the head (fixed by the
        layout whatever is chosen; read off a built chain)."""
        b = GraphBuilder("shapes", weight_bits=16, act_bits=self.act_bits)
        x = self._stem(b, b.input((3, self.resolution, self.resolution)))
        shapes = []
        for i in range(len(self.layout)):
            shapes.append(tuple(b.shape(x)))
            x = self._block(b, x, i, MBCONV_OPS[0], 16)
        return shapes + [tuple(b.shape(x))]

    def segment_graphs(
        self, bits: int
    ) -> tuple[nx.DiGraph, list[dict[tuple[str, int], nx.DiGraph]], nx.DiGraph]:
        """The network in pieces, each a graph of its own with an ``input`` node: the stem (the
        fixed layers before the searchable blocks), every block's candidate graphs by
        (op, bits) for ``skip``-less ops, and the head; ``bits`` is the fixed layers' weight
        bits. A network's graph has exactly the pieces' nodes (what EDD's differentiable cost
        sums, :mod:`dse.drivers.edd.cost`)."""
        abits = self.act_bits

        def piece(shape, add) -> nx.DiGraph:
            b = GraphBuilder("mbconv-piece", weight_bits=bits, act_bits=abits)
            add(b, b.input(shape))
            return b.build()

        stem = piece((3, self.resolution, self.resolution), self._stem)
        blocks = []
        choices = BITS[self.target] if self.target == "fpga" else (bits,)
        shapes = self.block_input_shapes()
        for i, shape in enumerate(shapes[:-1]):
            blocks.append(
                {
                    (op, q): piece(shape, lambda b, x, i=i, op=op, q=q: self._block(b, x, i, op, q))
                    for op in MBCONV_OPS
                    for q in choices
                }
            )
        head = piece(shapes[-1], self._head)
        return stem, blocks, head

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)  # validates every decision, naming the bad variable
        fixed = self.fixed_bits(arch.get("bits"))
        b = GraphBuilder(f"mbconv:{self.arch_id(arch)}", weight_bits=fixed, act_bits=self.act_bits)
        x = b.mark_block(self._stem(b, b.input((3, self.resolution, self.resolution))))
        for i in range(len(self.layout)):
            x = b.mark_block(self._block(b, x, i, arch[f"b{i:02d}.op"], self._bits(arch, i)))
            if i + 1 == len(self.layout) or self.layout[i + 1][1] == 2:
                b.mark_stage(x)
        self._head(b, x)
        b.meta.update(space=self.name, target=self.target)
        return b.build()
