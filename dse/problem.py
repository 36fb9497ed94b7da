"""What a run optimises, declared once: the problem definition every part of a run shares.

:func:`dse.experiment.build` makes one :class:`ProblemDefinition` from the config and the
providers (checking that every objective and constraint names a metric some provider
produces); the evaluator, the driver's :class:`~dse.search.problem.SearchProblem`, the ledger
and sweeps all read this one object, and the record shape of a run's rows is made from it
(:meth:`ProblemDefinition.record_shape`, the one place a :class:`RecordShape` is built).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dse.objectives import Constraint, Objective

#: prefix of the stand-in ``arch_hash`` of an architecture its space cannot hash (the failure
#: is recorded in the row's status and error)
UNHASHABLE = "unhashable:"


def fallback_hash(arch: Mapping[str, Any]) -> str:
    """The ``arch_hash`` of an architecture whose space could not hash it: its decisions as
    sorted JSON, so two different broken architectures never share a key."""
    return UNHASHABLE + json.dumps(dict(arch), sort_keys=True, default=str)


@dataclass(frozen=True)
class RecordShape:
    """What every row of one run or sweep shares: its ids and which columns it fills (made by
    :meth:`ProblemDefinition.record_shape`)."""

    run_id: str
    seed: int
    driver: str
    space: str
    metrics: tuple[str, ...]
    providers: tuple[str, ...]


@dataclass(frozen=True)
class ProblemDefinition:
    """Objectives (with their directions), constraints, and the metrics and providers whose
    columns every record holds."""

    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    #: every metric column, in provider order (cheapest first)
    metrics: tuple[str, ...] = ()
    #: the providers' names (one timing column each)
    providers: tuple[str, ...] = ()
    #: metric -> unit
    units: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        provided: Mapping[str, str],
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint],
        providers: Sequence[str],
        units: Mapping[str, str] | None = None,
    ) -> ProblemDefinition:
        """The definition of objectives and constraints over the metrics ``provided``
        (metric -> provider name); a ValueError names the first that no provider produces."""
        declared: tuple[tuple[str, Sequence[Objective | Constraint]], ...] = (
            ("objectives", objectives),
            ("constraints", constraints),
        )
        for what, items in declared:
            for i, item in enumerate(items):
                if item.metric not in provided:
                    raise ValueError(
                        f"{what}[{i}].metric: {item.metric!r} is not produced by any configured "
                        f"proxy or simulator; allowed values: {sorted(provided)}"
                    )
        return cls(
            tuple(objectives), tuple(constraints), tuple(provided), tuple(providers), units or {}
        )

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        """Constraint columns a driver sees: one per constraint, plus the evaluation's own
        (failed or pruned)."""
        return len(self.constraints) + 1

    def record_shape(self, run_id: str, seed: int, driver: str, space: str) -> RecordShape:
        """What every row of a run (or sweep) of this problem shares."""
        return RecordShape(run_id, seed, driver, space, self.metrics, self.providers)


class Defined:
    """Mix-in of what holds a run's :class:`ProblemDefinition` (the evaluator, a driver's
    problem): its objectives and constraints are the definition's, never a copy."""

    definition: ProblemDefinition

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.definition.objectives

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        return self.definition.constraints
