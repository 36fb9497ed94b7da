"""A conformance kit for plugins: what every space and metric provider must do to work with
every driver, the ledger and the store.

Plugin authors call these in their own tests (``check_space(MySpace())``,
``check_provider(MyProxy(), space)``); dse's suite runs them over every registered plugin. Each
check raises ``AssertionError`` with a message naming the plugin and the broken rule.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from dse.fidelity import Fidelity
from dse.graph import totals, validate
from dse.provider import MetricProvider, PopulationProvider
from dse.space import OP_GRAPH, SearchSpace


def _fail(who: str, rule: str) -> AssertionError:
    return AssertionError(f"{who}: {rule}")


def check_space(space: SearchSpace, samples: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Check ``space`` on ``samples`` random architectures; returns them (for provider checks).

    Rules: a name, at least one variable, a ``graph_kind``; architectures are JSON-serialisable
    and round-trip through ``encode``/``decode``; ``arch_hash`` and ``arch_id`` are strings,
    stable for equal architectures; ``identify`` agrees with ``arch_hash``; ``to_graph`` gives a
    ``networkx.DiGraph`` (a valid op graph with totals when ``graph_kind`` is the op IR);
    ``mutate`` and ``sample_encodings`` stay in the space; sampling is seeded."""
    who = f"space {getattr(space, 'name', type(space).__name__)!r}"
    if not isinstance(space.name, str) or not space.name:
        raise _fail(who, "name must be a non-empty string")
    if not space.variables:
        raise _fail(who, "needs at least one decision variable")
    if not isinstance(space.graph_kind, str) or not space.graph_kind:
        raise _fail(who, "graph_kind must be a non-empty string")
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(samples)]
    again = [space.sample(np.random.default_rng(seed)) for _ in range(1)]
    if json.dumps(again[0], sort_keys=True, default=str) != json.dumps(
        archs[0], sort_keys=True, default=str
    ):
        raise _fail(who, "sample(rng) must depend only on the generator's state")
    for arch in archs:
        try:
            json.dumps(arch)
        except TypeError as exc:
            raise _fail(who, f"architecture {arch!r} is not JSON-serialisable ({exc})") from None
        x = space.encode(arch)
        if len(x) != len(space.variables) or not np.all((x >= 0) & (x < space.cardinalities)):
            raise _fail(who, f"encode({arch!r}) gave {x}, outside 0..cardinality-1 per variable")
        back = space.decode(x)
        key = space.arch_hash(arch)
        if not isinstance(key, str) or space.arch_hash(back) != key:
            raise _fail(who, "arch_hash must be a string, equal for decode(encode(arch))")
        if not isinstance(space.arch_id(arch), str):
            raise _fail(who, "arch_id must be a string")
        ident, graph = space.identify(arch)
        if ident != key:
            raise _fail(who, f"identify gave hash {ident!r}, arch_hash {key!r}")
        graph = graph if graph is not None else space.to_graph(arch)
        if not isinstance(graph, nx.DiGraph):
            raise _fail(who, f"to_graph must return a networkx.DiGraph, got {type(graph).__name__}")
        if space.graph_kind == OP_GRAPH:
            validate(graph)
            t = totals(graph)
            if not all(math.isfinite(float(v)) and float(v) >= 0 for v in dataclasses.astuple(t)):
                raise _fail(who, f"totals of {space.arch_id(arch)!r} must be finite and >= 0")
        space.encode(space.mutate(arch, rng))
    X = space.sample_encodings(rng, samples)
    if X.shape != (samples, len(space.variables)):
        raise _fail(who, f"sample_encodings gave shape {X.shape}")
    return archs


def check_provider(
    provider: MetricProvider, space: SearchSpace, archs: Sequence[Mapping[str, Any]]
) -> None:
    """Check ``provider`` on ``archs`` of ``space``.

    Rules: a :class:`~dse.provider.MetricProvider` with a name, a non-empty tuple of metric
    names, a cost >= 0 and a unit per metric; it reads the space's graph kind; ``evaluate``
    returns every declared metric as a number; a population provider's ``evaluate_population``
    returns one value per graph, equal to ``evaluate``'s (relative 1e-6); ``fidelity`` maps
    only its own metrics to :class:`~dse.fidelity.Fidelity` records."""
    who = f"provider {type(provider).__name__!r}"
    if not isinstance(provider, MetricProvider):
        raise _fail(who, "must subclass dse.plugin.MetricProvider (or PopulationProvider)")
    who = f"provider {provider.name or type(provider).__name__!r}"
    if not isinstance(provider.name, str) or not provider.name:
        raise _fail(who, "name must be a non-empty string")
    metrics = provider.metrics
    if (
        not isinstance(metrics, tuple)
        or not metrics
        or not all(isinstance(m, str) for m in metrics)
    ):
        raise _fail(who, "metrics must be a non-empty tuple of strings")
    if not float(provider.cost) >= 0:
        raise _fail(who, "cost must be >= 0")
    units = provider.metric_units()
    if not all(units.values()):
        raise _fail(who, f"declares no unit for {[m for m, u in units.items() if not u]} (units)")
    declared = provider.fidelity()
    stray = sorted(set(declared) - set(provider.metrics) - set(provider.units))
    if stray or not all(isinstance(f, Fidelity) for f in declared.values()):
        raise _fail(who, f"fidelity() must map its metrics to Fidelity records (got {stray})")
    if not provider.reads(space.graph_kind):
        raise _fail(who, f"does not read {space.graph_kind!r} graphs (accepts {provider.accepts})")
    graphs = [space.to_graph(a) for a in archs]
    single = []
    for arch, graph in zip(archs, graphs):
        values = provider.evaluate(graph, arch, space)
        missing = set(metrics) - set(values)
        if missing:
            raise _fail(who, f"evaluate did not return {sorted(missing)}")
        single.append([float(values[m]) for m in metrics])
    if isinstance(provider, PopulationProvider) and len(graphs) > 1:
        columns = provider.evaluate_population(graphs)
        for j, m in enumerate(metrics):
            got = np.asarray(columns[m], dtype=float)
            want = np.array([row[j] for row in single])
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, equal_nan=True):
                raise _fail(
                    who, f"evaluate_population's {m!r} {got} differs from evaluate's {want}"
                )
