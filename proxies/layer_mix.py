"""How a sequence network mixes its tokens: counts of SGConv and attention layers, and the
average depth of the SGConv ones (dissertation 5.4.3, fig. 5.6b: sum of idx_i / N_total over
the SGConv layers, idx 1-based from the input, N_total the number of mixing layers).

Read off the graph (any space's sequence graph), in the op order of the network; costs
microseconds and needs no torch. The ``hybrid`` space's C count is ``sgconv_layers``, which a
config can constrain (``min = max = 4``) instead of restricting the space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from dse.graph.columnar import node_ops
from dse.provider import PopulationProvider
from dse.registry import PROXIES
from dse.space import SearchSpace

MIXERS = ("sgconv", "attention")


@PROXIES.register("layer_mix")
class LayerMix(PopulationProvider):
    """``sgconv_layers``, ``attention_layers`` and ``sgconv_depth`` of a sequence graph."""

    name = "layer_mix"
    cost = 1e-5
    metrics = ("sgconv_layers", "attention_layers", "sgconv_depth")
    units = {"sgconv_layers": "layers", "attention_layers": "layers", "sgconv_depth": "layers"}

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        kinds = [op.kind for op in node_ops(graph) if op.kind in MIXERS]
        depths = [i + 1 for i, kind in enumerate(kinds) if kind == "sgconv"]
        return {
            "sgconv_layers": float(len(depths)),
            "attention_layers": float(len(kinds) - len(depths)),
            "sgconv_depth": sum(depths) / len(kinds) if kinds else 0.0,
        }

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        rows = [self.evaluate(g, {}, None) for g in graphs]  # type: ignore[arg-type]
        return {m: np.array([r[m] for r in rows]) for m in self.metrics}
