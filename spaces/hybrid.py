"""The ``hybrid`` space: an ordered stack of attention (A) and SGConv (C) blocks (5.4.3).

One variable per slot, ``A`` or ``C``. ``sgconv_count`` restricts the space to orders with
exactly that many C blocks (fig. 5.6b's setting: half of the blocks), and then sampling,
mutation (an A and a C swap places) and decoding stay inside it: an encoding with another
count decodes to the order a seeded choice of flips gives (deterministic per encoding), so
drivers that propose genes freely (optuna, crossover) land on valid orders. The
``layer_mix`` proxy reports each order's C count and the average depth of its C blocks, 5.4.3's
sum of idx_i / N_total.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Arch, Choice, SearchSpace, SpaceError
from dse.spaces.sequence_blocks import (
    attention_block,
    head,
    parse_decay,
    sgconv_block,
    stem,
)
from dse.training.tasks import task_of

BLOCKS = ("A", "C")


@SPACES.register("hybrid")
class HybridSpace(SearchSpace):
    """Orders of attention and SGConv blocks, optionally with a fixed number of SGConv ones."""

    name = "hybrid"

    def __init__(
        self,
        task: str = "chars",
        vocab: int | None = None,
        length: int | None = None,
        classes: int | None = None,
        slots: int = 8,
        sgconv_count: int | None = None,
        channels: int = 64,
        heads: int = 4,
        window: int = 0,
        d: int = 8,
        decay: str = "alpha=0.5",
        bidirectional: bool = False,
    ):
        if slots < 1:
            raise SpaceError(f"slots: must be >= 1, got {slots}")
        if sgconv_count is not None and not 0 <= sgconv_count <= slots:
            raise SpaceError(f"sgconv_count: must be in 0..{slots}, got {sgconv_count}")
        if channels < 1 or heads < 1 or channels % heads:
            raise SpaceError(
                f"channels: must be a positive multiple of heads ({heads}), got {channels}"
            )
        if d < 1 or window < 0:
            raise SpaceError(f"d: must be >= 1 and window >= 0, got d={d}, window={window}")
        self.task_name = task
        self.task = task_of(task, vocab, length, classes)
        self.slots, self.sgconv_count = slots, sgconv_count
        self.channels, self.heads, self.window, self.d = channels, heads, window, d
        self.decay, self.rate = parse_decay(decay)
        self.mode = "bidirectional" if bidirectional else "causal"
        self.variables = tuple(Choice(f"slot{i}", BLOCKS) for i in range(slots))

    # -- the order, and the restriction to sgconv_count C blocks ------------------------------
    def order(self, arch: Mapping[str, Any]) -> str:
        """The stack as a string, first block first (``"AACACCAC"``)."""
        return "".join(str(arch[f"slot{i}"]) for i in range(self.slots))

    @property
    def size(self) -> int:
        if self.sgconv_count is None:
            return 2**self.slots
        return math.comb(self.slots, self.sgconv_count)

    def _repaired(self, x: np.ndarray) -> np.ndarray:
        """``x`` (genes: 1 = C) with exactly ``sgconv_count`` C blocks: flips chosen by a
        generator seeded with the genes themselves, so one encoding always repairs alike."""
        x = np.asarray(x, dtype=np.int64).copy()
        if self.sgconv_count is None:
            return x
        excess = int(x.sum()) - self.sgconv_count
        if excess:
            rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(x.tobytes()).digest()[:8]))
            pool = np.flatnonzero(x == (1 if excess > 0 else 0))
            x[rng.choice(pool, size=abs(excess), replace=False)] = 0 if excess > 0 else 1
        return x

    def decode(self, x: Sequence[int] | np.ndarray) -> Arch:
        return super().decode(self._repaired(np.asarray(x)))

    def repair_encodings(self, X: np.ndarray) -> np.ndarray:
        return np.array([self._repaired(x) for x in np.asarray(X)], dtype=np.int64).reshape(
            np.shape(X)
        )

    def sample_encodings(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.sgconv_count is None:
            return super().sample_encodings(rng, n)
        out = np.zeros((n, self.slots), dtype=np.int64)
        for row in out:
            row[rng.choice(self.slots, size=self.sgconv_count, replace=False)] = 1
        return out

    def mutate_encoding(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.int64)
        if self.sgconv_count is None or self.sgconv_count in (0, self.slots):
            return super().mutate_encoding(x, rng) if self.sgconv_count is None else x
        a, c = rng.choice(np.flatnonzero(x == 0)), rng.choice(np.flatnonzero(x == 1))
        x[a], x[c] = 1, 0  # an A and a C swap places: the count stays
        return x

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return self.order(arch)

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        self.encode(arch)
        order = self.order(arch)
        if self.sgconv_count is not None and order.count("C") != self.sgconv_count:
            raise SpaceError(
                f"slots: {order!r} has {order.count('C')} SGConv blocks; this space has "
                f"sgconv_count = {self.sgconv_count}"
            )
        key = f"{self.task}/{self.channels}/{self.heads}/{self.window}/{self.d}/"
        key += f"{self.decay}{self.rate}/{self.mode}/{order}"
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        self.arch_hash(arch)  # checks the values and the count
        order = self.order(arch)
        c = self.channels
        b = GraphBuilder(f"hybrid:{order}")
        h = stem(b, self.task, c, positions="A" in order)
        for block in order:
            if block == "C":
                h = sgconv_block(b, h, c, self.d, self.mode, self.decay, self.rate)
            else:
                h = attention_block(b, h, c, self.heads, self.mode, self.window)
            b.mark_stage(h)
        head(b, h, self.task)
        b.meta.update(space=self.name, task=self.task_name, order=order)
        return b.build()
