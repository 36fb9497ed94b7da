"""The one base of every proxy and simulator (pymoo's ``Problem`` style: declared attributes and
template hooks, never probed with ``getattr``).

A provider declares, once, on its class:

* ``name`` and ``metrics`` (the record columns it fills), ``units`` (metric -> unit: "ms",
  "GB", "DSPs", "FLOPs", "score"), ``cost`` (relative expense, about seconds per architecture:
  the evaluator runs cheap providers first) and ``accepts`` (the graph kinds it reads, a
  space's ``graph_kind``; :data:`~dse.space.ANY_GRAPH` for a table lookup by id);

and implements one hook:

* :meth:`MetricProvider.evaluate` (one architecture), or
* :class:`PopulationProvider`'s :meth:`~PopulationProvider.evaluate_population` (a batch of
  graphs in one vectorised pass; ``evaluate`` then comes from it).

``fidelity()`` (the expected error of each metric; simulators override it) and
``calibrations()`` (shipped calibrations with their validation; ``dse list``) default to
nothing known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from dse.space import ANY_GRAPH, OP_GRAPH

if TYPE_CHECKING:
    from dse.fidelity import Fidelity
    from dse.space import SearchSpace


class MetricProvider:
    """A proxy or simulator: graph (and architecture) -> named metrics."""

    name: str = ""
    metrics: tuple[str, ...] = ()
    #: metric -> unit, shown by dse list and the reports ("" where none is declared)
    units: Mapping[str, str] = {}
    #: relative expense (seconds per architecture, roughly); cheap providers run first
    cost: float = 1.0
    #: graph kinds this provider reads; ``("*",)``: none (a table lookup by architecture id)
    accepts: tuple[str, ...] = (OP_GRAPH,)

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> Mapping[str, float]:
        """Every metric of :attr:`metrics` for one architecture."""
        raise NotImplementedError(f"{type(self).__name__} implements neither evaluate hook")

    def fidelity(self) -> dict[str, Fidelity]:
        """The expected error of each metric (a simulator's validated calibration); proxies
        and tables know none."""
        return {}

    @staticmethod
    def calibrations() -> dict[str, Fidelity]:
        """Shipped calibrations by name with their validated error (``dse list``)."""
        return {}

    @staticmethod
    def measured_tables() -> dict[str, str]:
        """Shipped measured operator tables (:mod:`dse.measured_tables`) by name, one line
        each, that a calibration of this simulator may mix (``dse list tables``)."""
        return {}

    def metric_units(self) -> dict[str, str]:
        """The unit of each of :attr:`metrics` ("" where none is declared)."""
        return {m: str(self.units.get(m, "")) for m in self.metrics}

    def metric_fidelity(self, scope: str | None = None) -> dict[str, Fidelity]:
        """:meth:`fidelity`, restricted to this provider's metrics; for networks of ``scope``
        (a space's name) where given: an error validated on other networks becomes a note
        that says so (:meth:`Fidelity.within`)."""
        out = {m: f for m, f in self.fidelity().items() if m in self.metrics}
        return out if scope is None else {m: f.within(scope) for m, f in out.items()}

    def reads(self, graph_kind: str) -> bool:
        """Whether this provider reads graphs of ``graph_kind``."""
        return ANY_GRAPH in self.accepts or graph_kind in self.accepts


class PopulationProvider(MetricProvider):
    """A provider that costs a whole batch of graphs at once (the analytic proxy, the GPU and
    FPGA simulators): the evaluator hands it every surviving candidate of a batch."""

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> Mapping[str, np.ndarray]:
        """Each metric of :attr:`metrics` as an array over ``graphs``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate_population")

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        """One architecture: the population hook on a batch of one."""
        return {k: float(v[0]) for k, v in self.evaluate_population([graph]).items()}
