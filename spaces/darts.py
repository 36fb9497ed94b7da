"""The DARTS cell space (Liu et al., ICLR 2019; NAS-Bench-301's space, Zela et al. 2022).

Two cells, ``normal`` and ``reduce``, each with four intermediate nodes; node ``i`` (0-3) sums
two edges, each an op on one earlier state (0 and 1 are the two cell inputs, 2 + j node j).
Ops: ``sep_conv_3x3``, ``sep_conv_5x5``, ``dil_conv_3x3``, ``dil_conv_5x5``, ``max_pool_3x3``,
``avg_pool_3x3``, ``skip_connect`` (and ``none``, the zero op, which NAS-Bench-301's genotypes do
not use). A cell's output concatenates its four nodes. Genotypes are written as NAS-Bench-301
and NASLib's tables write them: JSON ``{"normal": [[op, input], ...8], "reduce": [...]}``, two
edges per node in order (:meth:`DartsSpace.parse`).

Networks (the DARTS evaluation networks, auxiliary heads left out):

* ``cifar``: a 3x3 stem to ``3 C`` channels, ``layers`` cells with reductions at 1/3 and 2/3
  (channels double), global pooling, a linear classifier; NAS-Bench-301 trains C = 32, 8 cells.
* ``imagenet``: the mobile setting, C = 48, 14 cells, two stride-2 stems (the first two convs,
  the second one a ReLU-conv-BN) so the first cell sees 28x28 from 224x224.

Ops follow DARTS' ``operations.py``: ``sep_conv`` is two (ReLU, depthwise k x k, pointwise 1x1,
batch norm) stacks (the first with the edge's stride), ``dil_conv`` one stack with dilation 2,
``skip_connect`` on a reducing edge is the factorised reduce (ReLU, two stride-2 1x1 convs to
half the channels each, concatenated, batch norm). Dilation changes neither shapes nor costs
here, so a dilated k x k is costed (and built for torch) as a k x k.
``affine_ops = False`` gives the ops' batch norms no parameters, as DARTS' search cells (and
NASLib's NAS-Bench-301 model, whose counts are in ``nasbench301_naslib.csv``) have them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import networkx as nx

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError
from dse.spaces.blocks import factorized_reduce, relu_conv_bn

OPS = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "none",
)
CELLS = ("normal", "reduce")
NETWORKS = {"cifar": (32, 8, 32, 10), "imagenet": (48, 14, 224, 1000)}  # C, cells, input, classes

#: Published genotypes searched on CIFAR-10 (DARTS-V2, P-DARTS) or ImageNet (PC-DARTS), from
#: the authors' ``genotypes.py``, with their ImageNet (mobile) parameters and multiply-adds as
#: published: DARTS (Liu et al. 2019, table 3), P-DARTS (Chen et al. 2019, table 3), PC-DARTS
#: (Xu et al. 2020, table 4, ImageNet-searched).
PUBLISHED = {
    "darts_v2": (
        {
            "normal": [
                ["sep_conv_3x3", 0],
                ["sep_conv_3x3", 1],
                ["sep_conv_3x3", 0],
                ["sep_conv_3x3", 1],
                ["sep_conv_3x3", 1],
                ["skip_connect", 0],
                ["skip_connect", 0],
                ["dil_conv_3x3", 2],
            ],
            "reduce": [
                ["max_pool_3x3", 0],
                ["max_pool_3x3", 1],
                ["skip_connect", 2],
                ["max_pool_3x3", 1],
                ["max_pool_3x3", 0],
                ["skip_connect", 2],
                ["skip_connect", 2],
                ["max_pool_3x3", 1],
            ],
        },
        4.7e6,
        574e6,
    ),
    "pdarts": (
        {
            "normal": [
                ["skip_connect", 0],
                ["dil_conv_3x3", 1],
                ["skip_connect", 0],
                ["sep_conv_3x3", 1],
                ["sep_conv_3x3", 1],
                ["sep_conv_3x3", 3],
                ["sep_conv_3x3", 0],
                ["dil_conv_5x5", 4],
            ],
            "reduce": [
                ["avg_pool_3x3", 0],
                ["sep_conv_5x5", 1],
                ["sep_conv_3x3", 0],
                ["dil_conv_5x5", 2],
                ["max_pool_3x3", 0],
                ["dil_conv_3x3", 1],
                ["dil_conv_3x3", 1],
                ["dil_conv_5x5", 3],
            ],
        },
        4.9e6,
        557e6,
    ),
    "pc_darts": (
        {
            "normal": [
                ["skip_connect", 1],
                ["sep_conv_3x3", 0],
                ["sep_conv_3x3", 0],
                ["skip_connect", 1],
                ["sep_conv_3x3", 1],
                ["sep_conv_3x3", 3],
                ["sep_conv_3x3", 1],
                ["dil_conv_5x5", 4],
            ],
            "reduce": [
                ["sep_conv_3x3", 0],
                ["skip_connect", 1],
                ["dil_conv_5x5", 2],
                ["max_pool_3x3", 1],
                ["sep_conv_3x3", 2],
                ["sep_conv_3x3", 1],
                ["sep_conv_5x5", 0],
                ["sep_conv_3x3", 3],
            ],
        },
        5.3e6,
        597e6,
    ),
}


def edge_names(cell: str, node: int, edge: int) -> tuple[str, str]:
    return f"{cell}.n{node}.e{edge}.op", f"{cell}.n{node}.e{edge}.in"


@SPACES.register("darts")
class DartsSpace(SearchSpace):
    """DARTS / NAS-Bench-301 cells in the CIFAR or ImageNet (mobile) evaluation network."""

    name = "darts"

    def __init__(
        self,
        network: Literal["cifar", "imagenet"] = "cifar",
        channels: int | None = None,
        layers: int | None = None,
        resolution: int | None = None,
        num_classes: int | None = None,
        affine_ops: bool = True,
    ):
        if network not in NETWORKS:
            raise SpaceError(
                f"network: {network!r} is not allowed; allowed values: {list(NETWORKS)}"
            )
        c, n, r, k = NETWORKS[network]
        self.network = network
        self.channels, self.layers = channels or c, layers or n
        self.resolution, self.num_classes = resolution or r, num_classes or k
        self.affine_ops = affine_ops
        if self.layers < 3:
            raise SpaceError(f"layers: must be >= 3 (two reductions), got {self.layers}")
        variables = []
        for cell in CELLS:
            for node in range(4):
                for edge in range(2):
                    op, src = edge_names(cell, node, edge)
                    variables += [Choice(op, OPS), Choice(src, tuple(range(node + 2)))]
        self.variables = tuple(variables)

    def parse(self, genotype: str) -> dict[str, Any]:
        """A NAS-Bench-301 / NASLib genotype (JSON) -> architecture."""
        try:
            data = json.loads(genotype) if isinstance(genotype, str) else genotype
            arch = {}
            for cell in CELLS:
                pairs = data[cell]
                if len(pairs) != 8:
                    raise SpaceError(f"genotype.{cell}: expected 8 [op, input] pairs")
                for k, (op, src) in enumerate(pairs):
                    name_op, name_in = edge_names(cell, k // 2, k % 2)
                    arch[name_op], arch[name_in] = str(op), int(src)
        except (ValueError, KeyError, TypeError) as exc:
            raise SpaceError(f"genotype: cannot read {genotype!r}: {exc}") from None
        self.encode(arch)  # every op known, every input in range
        return arch

    def genotype(self, arch: Mapping[str, Any]) -> str:
        """The architecture as a NAS-Bench-301 / NASLib genotype (JSON)."""
        out = {
            cell: [
                [arch[edge_names(cell, k // 2, k % 2)[0]], arch[edge_names(cell, k // 2, k % 2)[1]]]
                for k in range(8)
            ]
            for cell in CELLS
        }
        return json.dumps(out, separators=(",", ":"))

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return self.genotype(arch)

    # -- graph ------------------------------------------------------------------------------
    def _bn(self, b: GraphBuilder, x: int, affine: bool = True) -> int:
        return b.norm(x, "batch" if affine else "batch_stats")

    def _op(self, b: GraphBuilder, name: str, x: int, c: int, stride: int) -> int:
        affine = self.affine_ops
        if name == "none":
            return b.zero(b.pool(x, "max", 1, stride, padding=0)) if stride > 1 else b.zero(x)
        if name == "skip_connect":
            if stride == 1:
                return b.identity(x)
            return factorized_reduce(b, x, c, norm="batch" if affine else "batch_stats")
        if name in ("max_pool_3x3", "avg_pool_3x3"):
            return b.pool(x, name[:3], 3, stride, padding=1)
        k = int(name[-1])

        def stack(y: int, s: int) -> int:
            return self._bn(b, b.conv(b.dwconv(b.act(y, "relu"), k, s), c, 1), affine)

        if name.startswith("sep_conv"):
            return stack(stack(x, stride), 1)
        return stack(x, stride)  # dil_conv

    def _cell(
        self, b: GraphBuilder, arch, cell: str, s0: int, s1: int, c: int, reduce_prev: bool
    ) -> int:
        s0 = factorized_reduce(b, s0, c) if reduce_prev else relu_conv_bn(b, s0, c)
        states = [s0, relu_conv_bn(b, s1, c)]
        reduce = cell == "reduce"
        for node in range(4):
            terms = []
            for edge in range(2):
                name_op, name_in = edge_names(cell, node, edge)
                src = int(arch[name_in])
                stride = 2 if reduce and src < 2 else 1
                terms.append(self._op(b, arch[name_op], states[src], c, stride))
            states.append(b.sum(*terms))
        return b.concat(*states[2:])

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)
        c = self.channels
        b = GraphBuilder(f"darts:{self.network}")
        x = b.input((3, self.resolution, self.resolution))
        if self.network == "cifar":
            s0 = s1 = self._bn(b, b.conv(x, 3 * c, 3))
            reduce_prev = False
        else:
            s0 = b.act(self._bn(b, b.conv(x, c // 2, 3, 2)), "relu")
            s0 = self._bn(b, b.conv(s0, c, 3, 2))
            s1 = relu_conv_bn(b, s0, c, 3, 2)
            reduce_prev = True
        b.mark_block(s1)
        for i in range(self.layers):
            reduce = i in (self.layers // 3, 2 * self.layers // 3)
            if reduce:
                c *= 2
            cell = "reduce" if reduce else "normal"
            s0, s1 = s1, b.mark_block(self._cell(b, arch, cell, s0, s1, c, reduce_prev))
            if reduce:
                b.mark_stage(s0)
            reduce_prev = reduce
        b.mark_stage(s1)
        b.classifier(s1, self.num_classes)
        b.meta.update(space=self.name, network=self.network)
        return b.build()
