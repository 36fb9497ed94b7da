"""The ``sgconv`` space: stacks of SGConv blocks over a token task (dissertation 5.3-5.4).

Variables: ``layers``, ``channels``, ``d`` (each sub-kernel's parameters, eq. 5.1), ``decay``
(``alpha=<a>``: eq. 5.1's alpha^i per scale; ``t=<t>``: eq. 5.2's 1/pos^t, fig. 5.4's
ablation), ``bidirectional`` and ``prune`` (the share of each trained kernel zeroed before
testing, fig. 5.10; it changes accuracy, not cost). The task (``listops``, ``seqdigits``,
``chars``, or your own vocab/length/classes) fixes the input and the head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError
from dse.spaces.sequence_blocks import head, parse_decay, sgconv_block, stem
from dse.training.tasks import task_of


def _positive(name: str, values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if not values or min(values) < 1:
        raise SpaceError(f"{name}: needs one or more values >= 1, got {list(values)}")
    return values


@SPACES.register("sgconv")
class SGConvSpace(SearchSpace):
    """SGConv networks: depth, width, d, decay, direction and pruning ratio."""

    name = "sgconv"

    def __init__(
        self,
        task: str = "listops",
        vocab: int | None = None,
        length: int | None = None,
        classes: int | None = None,
        layers: Sequence[int] = (2, 4, 6),
        channels: Sequence[int] = (32, 64, 128),
        d: Sequence[int] = (1, 2, 4, 8, 16, 32),
        decay: Sequence[str] = ("alpha=0.5", "alpha=0.7", "t=0", "t=0.5", "t=1", "t=2"),
        bidirectional: Sequence[bool] = (False, True),
        prune: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    ):
        self.task_name = task
        self.task = task_of(task, vocab, length, classes)
        for value in decay:
            parse_decay(value)
        ratios = tuple(float(p) for p in prune)
        if not ratios or not all(0.0 <= p < 1.0 for p in ratios):
            raise SpaceError(f"prune: needs ratios in [0, 1), got {list(prune)}")
        self.variables = (
            Choice("layers", _positive("layers", layers)),
            Choice("channels", _positive("channels", channels)),
            Choice("d", _positive("d", d)),
            Choice("decay", tuple(decay)),
            Choice("bidirectional", tuple(bool(v) for v in bidirectional)),
            Choice("prune", ratios),
        )

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """The decisions and the task determine the graph."""
        self.encode(arch)
        key = json.dumps([self.task.__dict__, {v.name: arch[v.name] for v in self.variables}])
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.encode(arch)  # every value belongs to the space
        decay, rate = parse_decay(arch["decay"])
        c = int(arch["channels"])
        mode = "bidirectional" if arch["bidirectional"] else "causal"
        b = GraphBuilder(f"sgconv:{self.arch_id(arch)}")
        h = stem(b, self.task, c, positions=False)
        for _ in range(int(arch["layers"])):
            h = sgconv_block(b, h, c, int(arch["d"]), mode, decay, rate, float(arch["prune"]))
            b.mark_stage(h)
        head(b, h, self.task)
        b.meta.update(space=self.name, task=self.task_name, arch=dict(arch))
        return b.build()
