"""Analytic proxies read straight off the graph IR: parameters, MACs, FLOPs, bytes, memory.

They cost microseconds, need no torch, and are the cheap first stage of every evaluation. On the
362 NAS-Bench-201 cells of ``nasbench201_naslib.csv``, FLOPs alone rank CIFAR-10 accuracy with a
Spearman rho of about 0.7 (see BENCHMARKS.md), which makes ``hook_flops`` a usable stand-in for
accuracy until a trained or zero-cost proxy is configured.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from dse.graph.population import TOTALS_COLUMNS, PopulationAnalysis
from dse.provider import PopulationProvider
from dse.registry import PROXIES

METRICS = (
    "params",
    "macs",
    "flops",
    "hook_flops",
    "weight_bytes",
    "bytes_read",
    "bytes_written",
    "peak_activation_bytes",
    "num_nodes",
)


@PROXIES.register("analytic")
class AnalyticProxy(PopulationProvider):
    """Parameters, MACs, FLOPs, weight/traffic bytes and peak activation memory of the graph."""

    name = "analytic"
    cost = 1e-4
    #: per image (one sample of the graph's input)
    units = {
        "params": "parameters",
        "macs": "MACs",
        "flops": "FLOPs",
        "hook_flops": "FLOPs",
        "weight_bytes": "bytes",
        "bytes_read": "bytes",
        "bytes_written": "bytes",
        "peak_activation_bytes": "bytes",
        "num_nodes": "nodes",
    }

    def __init__(self, peak_memory: bool = True):
        self.peak_memory = peak_memory
        self._population = PopulationAnalysis()
        self.metrics = (
            METRICS if peak_memory else tuple(m for m in METRICS if m != "peak_activation_bytes")
        )

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        """The metrics of every graph, as arrays (float64: exact below 2**53)."""
        rows, peaks = self._population.analyse(graphs, peak=self.peak_memory)
        out = {m: rows[:, i] for i, m in enumerate(TOTALS_COLUMNS)}
        if self.peak_memory:
            out["peak_activation_bytes"] = peaks
        return {m: out[m] for m in self.metrics}
