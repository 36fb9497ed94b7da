"""Everything a plugin author needs, in one import.

>>> from dse.plugin import PROXIES, SearchSpace, Choice, GraphBuilder

A space subclasses :class:`SearchSpace` and registers with ``@SPACES.register("name")``; a proxy
or simulator subclasses :class:`MetricProvider` (declaring ``name``, ``metrics``, ``units``,
``cost``, implementing ``evaluate``) or :class:`PopulationProvider` (implementing
``evaluate_population`` over a batch of graphs) and registers with ``PROXIES`` or
``SIMULATORS``; a driver subclasses :class:`Driver`; a command implements :class:`Command`.
:mod:`dse.testing` checks a plugin against the rules every driver, the ledger and the store
rely on. See docs/plugins.md.
"""

from __future__ import annotations

from dse.evaluate import Evaluation
from dse.graph import GraphBuilder, register_op_kind
from dse.provider import MetricProvider, PopulationProvider
from dse.registry import COMMANDS, DRIVERS, PROXIES, SIMULATORS, SPACES, Command, Registry
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem
from dse.space import ANY_GRAPH, OP_GRAPH, Arch, Choice, IntRange, SearchSpace, SpaceError
from dse.testing import check_provider, check_space

__all__ = [
    "ANY_GRAPH",
    "COMMANDS",
    "DRIVERS",
    "OP_GRAPH",
    "PROXIES",
    "SIMULATORS",
    "SPACES",
    "Arch",
    "Budget",
    "Choice",
    "Command",
    "Driver",
    "Evaluation",
    "GraphBuilder",
    "IntRange",
    "MetricProvider",
    "PopulationProvider",
    "Registry",
    "SearchProblem",
    "SearchSpace",
    "SpaceError",
    "check_provider",
    "check_space",
    "register_op_kind",
]
