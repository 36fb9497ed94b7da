"""The FBNet space as HW-NAS-Bench defines it for CIFAR-100 (Wu et al., CVPR 2019; Li et al.,
ICLR 2021): 22 searchable layers, nine candidates each, 9^22 networks.

Macro skeleton: a 3x3 stride-1 stem of 16 channels (conv, batch norm, ReLU); stages of 1, 4,
4, 4, 4, 4, 1 layers with 16, 24, 32, 64, 112, 184, 352 output channels, the first layer of a
stage with stride 1, 1, 2, 2, 1, 2, 1; a 1x1 head of 1504 channels (conv, BN, ReLU), global
average pooling and a 100-way linear classifier.

Candidates (:data:`OPS`, in HW-NAS-Bench's op-index order): ``k{3,5}_e{1,3,6}`` and
``k{3,5}_e1_g2``, FBNet's inverted-residual block: a 1x1 expansion to ``e x`` the input
channels (grouped by ``g``; BN, ReLU; a channel shuffle after a grouped one), a ``k x k``
depthwise convolution carrying the stride (BN), a 1x1 projection (grouped by ``g``; BN) and a
residual add when the stride is 1 and the channels are unchanged; and ``skip``: the identity,
or, where the shape changes, a 1x1 convolution with the stride (BN, ReLU), as FBNet's
``Identity`` block does.

Architectures are written as HW-NAS-Bench's strings (``k5_e6-skip-k3_e1_g2-...``, 22 ops joined
by ``-``) or as its op-index lists (``"5 3 5 5 0 ..."``: 22 integers into :data:`OPS`);
``parse`` reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Arch, Choice, SearchSpace, SpaceError

OPS = (
    "k3_e1",
    "k3_e1_g2",
    "k3_e3",
    "k3_e6",
    "k5_e1",
    "k5_e1_g2",
    "k5_e3",
    "k5_e6",
    "skip",
)
#: (layers, output channels, stride of the first layer) per stage
STAGES = ((1, 16, 1), (4, 24, 1), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1))
STEM_CHANNELS = 16
HEAD_CHANNELS = 1504
LAYERS = tuple(
    (c, s if i == 0 else 1) for n, c, s in STAGES for i in range(n)
)  # (output channels, stride) of each searchable layer
VARIABLES = tuple(f"l{i:02d}" for i in range(len(LAYERS)))


def op_parts(op: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a block candidate (``skip`` has none)."""
    parts = op.split("_")
    return int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]) if len(parts) > 2 else 1


@SPACES.register("fbnet")
class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space (CIFAR-100 setting): 22 layers x 9 candidates."""

    name = "fbnet"
    variables = tuple(Choice(v, OPS) for v in VARIABLES)

    def __init__(self, resolution: int = 32, num_classes: int = 100):
        if resolution < 8:
            raise SpaceError(f"resolution: must be >= 8, got {resolution}")
        if num_classes < 1:
            raise SpaceError(f"num_classes: must be >= 1, got {num_classes}")
        self.resolution, self.num_classes = resolution, num_classes

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return "-".join(str(arch[v]) for v in VARIABLES)

    def parse(self, text: str) -> Arch:
        """A ``k5_e6-skip-...`` string or a list of 22 op indices in ``0..8`` (spaces or commas,
        bare, in brackets or, as Python writes a tuple, in parentheses)."""
        text = text.strip().strip("[]()")
        if "_" in text or "skip" in text:
            ops = text.split("-")
        else:
            try:
                indices: list[int] | None = [int(t) for t in text.replace(",", " ").split()]
            except ValueError:
                indices = None
            if indices is None or not all(0 <= i < len(OPS) for i in indices):  # -1 is no op
                raise SpaceError(
                    f"fbnet: cannot read {text!r}: expected 22 op indices in 0..{len(OPS) - 1}"
                )
            ops = [OPS[i] for i in indices]
        if len(ops) != len(VARIABLES):
            raise SpaceError(f"fbnet: expected {len(VARIABLES)} ops, got {len(ops)} in {text!r}")
        for op in ops:
            if op not in OPS:
                raise SpaceError(f"fbnet: unknown op {op!r}; allowed values: {list(OPS)}")
        return dict(zip(VARIABLES, ops, strict=True))

    @staticmethod
    def _block(b: GraphBuilder, x: int, op: str, cout: int, stride: int) -> int:
        cin = b.shape(x)[0]
        if op == "skip":
            if stride == 1 and cin == cout:
                return b.identity(x)
            return b.act(b.norm(b.conv(x, cout, 1, stride)))
        kernel, expansion, groups = op_parts(op)
        mid = cin * expansion
        y = b.act(b.norm(b.conv(x, mid, 1, groups=groups)))
        if groups > 1:  # channel shuffle: every element copied to its new channel
            y = b.shuffle(y, groups)
        y = b.norm(b.dwconv(y, kernel, stride))
        y = b.norm(b.conv(y, cout, 1, groups=groups))
        return b.sum(x, y) if stride == 1 and cin == cout else y

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)  # validates every decision, naming the bad variable
        b = GraphBuilder(f"fbnet:{self.arch_id(arch)}")
        x = b.input((3, self.resolution, self.resolution))
        x = b.mark_block(b.act(b.norm(b.conv(x, STEM_CHANNELS, 3))))
        for i, (cout, stride) in enumerate(LAYERS):
            x = b.mark_block(self._block(b, x, arch[VARIABLES[i]], cout, stride))
            if i + 1 == len(LAYERS) or LAYERS[i + 1][1] == 2:
                b.mark_stage(x)
        x = b.act(b.norm(b.conv(x, HEAD_CHANNELS, 1)))
        x = b.pool(x, "global_avg")
        b.linear(b.flatten(x), self.num_classes)
        b.meta.update(space=self.name)
        return b.build()
