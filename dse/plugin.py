"""Everything a plugin author needs, in one import.

>>> from dse.plugin import PROXIES, SearchSpace, Choice, GraphBuilder

A space subclasses :class:`SearchSpace` and registers with ``@SPACES.register("name")``; a proxy
or simulator is any class with ``name``, ``metrics``, ``cost`` and ``evaluate`` (the
:class:`MetricProvider` protocol) registered with ``PROXIES`` or ``SIMULATORS``; a driver
subclasses :class:`Driver`. :mod:`dse.testing` checks a plugin against the rules every driver,
the ledger and the store rely on. See docs/plugins.md.
"""

from __future__ import annotations

from dse.evaluate import Evaluation, MetricProvider
from dse.graph import GraphBuilder, register_op_kind
from dse.registry import COMMANDS, DRIVERS, PROXIES, SIMULATORS, SPACES, Registry
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
    "Driver",
    "Evaluation",
    "GraphBuilder",
    "IntRange",
    "MetricProvider",
    "Registry",
    "SearchProblem",
    "SearchSpace",
    "SpaceError",
    "check_provider",
    "check_space",
    "register_op_kind",
]
