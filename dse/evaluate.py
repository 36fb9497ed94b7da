"""Evaluation: metric providers (proxies, simulators) -> one flat record per architecture.

A *metric provider* (:class:`~dse.provider.MetricProvider`, the base of every proxy and
simulator) declares the ``metrics`` it produces and a relative ``cost``, and implements
``evaluate(graph, arch, space)`` or, as a :class:`~dse.provider.PopulationProvider`,
``evaluate_population(graphs)``. The :class:`Evaluator` runs the providers cheapest first on
the architecture's graph, checks constraints as soon as their metrics exist (an architecture
that already violates a cheap constraint skips the expensive providers: status ``pruned``), and
turns any exception into a ``failed`` record instead of raising. :meth:`Evaluator.evaluate_batch`
hands a whole batch to population providers.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np

from dse.objectives import Constraint, Objective
from dse.problem import Defined, ProblemDefinition
from dse.provider import MetricProvider, PopulationProvider
from dse.space import SearchSpace


@dataclass
class Evaluation:
    """The outcome of evaluating one architecture (before it gets a run-level id)."""

    metrics: dict[str, float]
    status: Literal["ok", "failed", "pruned"]
    error: str | None
    violations: dict[str, float]  # per constraint metric
    wall_s: float
    started_at: float  # unix seconds
    provider_s: dict[str, float] = field(default_factory=dict)

    @property
    def violation(self) -> float:
        return float(sum(self.violations.values()))

    @property
    def feasible(self) -> bool:
        return self.status == "ok" and self.violation == 0.0


class Evaluator(Defined):
    """Runs metric providers on architectures and checks constraints."""

    def __init__(
        self,
        space: SearchSpace,
        providers: Sequence[MetricProvider],
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        prune_infeasible: bool = True,
    ):
        self.space = space
        self.providers = sorted(providers, key=lambda p: p.cost)
        self.prune_infeasible = prune_infeasible
        provided: dict[str, str] = {}
        for p in self.providers:
            for m in p.metrics:
                if m in provided:
                    raise ValueError(
                        f"metric {m!r} is provided by both {provided[m]!r} and {p.name!r}"
                    )
                provided[m] = p.name
        #: the run's problem (objectives, constraints, metric columns, providers), built once
        self.definition = ProblemDefinition.of(
            provided,
            objectives,
            constraints,
            tuple(p.name for p in self.providers),
            {m: u for p in self.providers for m, u in p.metric_units().items()},
        )
        #: metric -> expected error, for providers that know theirs (simulators)
        self.fidelity = {
            m: f for p in self.providers for m, f in p.metric_fidelity(space.name).items()
        }

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.definition.metrics

    @property
    def units(self) -> dict[str, str]:
        """Metric -> unit, from the providers' declarations."""
        return dict(self.definition.units)

    def evaluate(self, arch: Mapping[str, Any], graph: nx.DiGraph | None = None) -> Evaluation:
        """Evaluate ``arch``; pass ``graph`` when it is already built (see SearchSpace.identify)."""
        return self.evaluate_batch([arch], [graph])[0]

    def evaluate_batch(
        self, archs: Sequence[Mapping[str, Any]], graphs: Sequence[nx.DiGraph | None] | None = None
    ) -> list[Evaluation]:
        """Evaluate several architectures, provider by provider (cheapest first). A
        :class:`~dse.provider.PopulationProvider` costs all surviving candidates in one call
        (its time is shared equally among them); if that call raises, the candidates are
        evaluated one by one, so a bad candidate fails alone."""
        n = len(archs)
        graphs = list(graphs) if graphs is not None else [None] * n
        started = time.time()
        spent = [0.0] * n  # seconds attributed to each candidate
        metrics: list[dict[str, float]] = [{} for _ in range(n)]
        timings: list[dict[str, float]] = [{} for _ in range(n)]
        status: list[str] = ["ok"] * n
        error: list[str | None] = [None] * n
        for i in range(n):
            if graphs[i] is None:
                t = time.perf_counter()
                try:
                    graphs[i] = self.space.to_graph(archs[i])
                except Exception as exc:  # noqa: BLE001 - a bad candidate is a record, not a crash
                    status[i], error[i] = "failed", _describe("to_graph", exc)
                spent[i] += time.perf_counter() - t
        for provider in self.providers:
            alive = [i for i in range(n) if status[i] == "ok"]
            if not alive:
                break
            done = False
            if isinstance(provider, PopulationProvider) and len(alive) > 1:
                t = time.perf_counter()
                try:
                    arrays = provider.evaluate_population([graphs[i] for i in alive])
                    columns = {m: np.asarray(arrays[m], dtype=float) for m in provider.metrics}
                    if any(c.shape != (len(alive),) for c in columns.values()):
                        raise RuntimeError(
                            "evaluate_population returned arrays of the wrong length"
                        )
                except Exception:  # noqa: BLE001 - retried one by one below, to isolate the culprit
                    pass
                else:
                    share = (time.perf_counter() - t) / len(alive)
                    for k, i in enumerate(alive):
                        row = {m: float(c[k]) for m, c in columns.items()}
                        metrics[i].update(row)
                        timings[i][provider.name] = share
                        spent[i] += share
                        nan = _nan_metrics(row)
                        if nan:
                            status[i], error[i] = "failed", f"{provider.name}: {nan}"
                    done = True
            if not done:
                for i in alive:
                    t = time.perf_counter()
                    try:
                        values = provider.evaluate(graphs[i], archs[i], self.space)
                        missing = set(provider.metrics) - set(values)
                        if missing:
                            raise RuntimeError(f"did not return metric(s) {sorted(missing)}")
                        got = {m: float(values[m]) for m in provider.metrics}
                        metrics[i].update(got)
                        if _nan_metrics(got):
                            raise ValueError(_nan_metrics(got))
                    except Exception as exc:  # noqa: BLE001
                        status[i], error[i] = "failed", _describe(provider.name, exc)
                    timings[i][provider.name] = time.perf_counter() - t
                    spent[i] += timings[i][provider.name]
            if self.prune_infeasible and provider is not self.providers[-1]:
                for i in alive:
                    if status[i] == "ok" and any(
                        c.violation(metrics[i][c.metric]) > 0
                        for c in self.constraints
                        if c.metric in metrics[i]
                    ):
                        status[i] = "pruned"
        return [
            self._finish(metrics[i], status[i], error[i], timings[i], started, spent[i])
            for i in range(n)
        ]

    def _finish(self, metrics, status, error, timings, started, wall_s) -> Evaluation:
        violations = {
            c.metric: c.violation(metrics.get(c.metric, math.nan)) for c in self.constraints
        }
        return Evaluation(metrics, status, error, violations, wall_s, started, timings)


def _nan_metrics(values: Mapping[str, float]) -> str:
    """The complaint about NaN metrics ("" when there is none): a NaN is a failed evaluation,
    never an ok one (it would sort and compare as nothing)."""
    nan = sorted(m for m, v in values.items() if math.isnan(v))
    return f"metric(s) {nan} are NaN" if nan else ""


def _describe(where: str, exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    loc = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{where}: {type(exc).__name__}: {exc}{loc}"
