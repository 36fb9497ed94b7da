"""A run's record: one row per evaluated architecture, built by exactly one function.

Searches and sweeps both call :func:`make_record`, so the columns of ``CORE_SCHEMA``, the
metric columns and the per-provider timing columns mean the same thing in every run directory
(docs/results.md lists them). :data:`PENALTY` is the one stand-in for a value that does not
exist (a missing objective, an infinite violation): large but finite, so drivers' arithmetic
and Parquet's float columns stay finite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from dse.evaluate import Evaluation
from dse.objectives import Constraint, Objective
from dse.problem import RecordShape
from dse.results.store import timing_column

#: Stand-in for missing objective or constraint values (and an infinite violation).
PENALTY = 1e300


def make_record(
    shape: RecordShape,
    *,
    eval_id: int,
    batch: int,
    arch: Mapping[str, Any],
    arch_id: str,
    arch_hash: str,
    encoding: Sequence[int],
    evaluation: Evaluation,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of one evaluated architecture (``extra``: a sweep point's swept values)."""
    violation = evaluation.violation
    row: dict[str, Any] = {
        "run_id": shape.run_id,
        "eval_id": eval_id,
        "batch": batch,
        "seed": shape.seed,
        "space": shape.space,
        "arch": json.dumps(arch, separators=(",", ":"), default=str),
        "arch_id": arch_id,
        "arch_hash": arch_hash,
        "encoding": [int(v) for v in encoding],
        "status": evaluation.status,
        "error": evaluation.error,
        "feasible": evaluation.feasible,
        "violation": violation if math.isfinite(violation) else PENALTY,
        "wall_s": evaluation.wall_s,
        "started_at": datetime.fromtimestamp(evaluation.started_at, tz=UTC),
        "driver": shape.driver,
    }
    for m in shape.metrics:
        row[m] = evaluation.metrics.get(m)
    for p in shape.providers:
        row[timing_column(p)] = evaluation.provider_s.get(p)
    if extra:
        row.update(extra)
    return row


def evaluation_of(row: Mapping[str, Any], shape: RecordShape) -> Evaluation:
    """The evaluation an earlier row records (warm start reuses it under new ids)."""

    def get(col: str) -> Any:
        v = row.get(col)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    started = get("started_at")
    timings = {p: get(timing_column(p)) for p in shape.providers}
    return Evaluation(
        metrics={m: row[m] for m in shape.metrics if get(m) is not None},
        status=row["status"],
        error=get("error"),
        violations={"recorded": float(get("violation") or 0.0)},
        wall_s=float(get("wall_s") or 0.0),
        started_at=started.timestamp() if started is not None else 0.0,
        provider_s={p: float(t) for p, t in timings.items() if t is not None},
    )


def objective_matrix(
    rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> np.ndarray:
    """Minimised objective values, shape (rows, objectives); a missing value is PENALTY."""
    F = np.empty((len(rows), len(objectives)))
    for i, row in enumerate(rows):
        for j, obj in enumerate(objectives):
            v = row.get(obj.metric)
            F[i, j] = PENALTY if v is None or not math.isfinite(v) else obj.minimised(v)
    return F


def constraint_matrix(
    rows: Sequence[Mapping[str, Any]], constraints: Sequence[Constraint]
) -> np.ndarray:
    """Constraint values (feasible when <= 0), shape (rows, constraints + 1): each declared
    constraint's violation in metric units, then 1 for a failed evaluation."""
    G = np.zeros((len(rows), len(constraints) + 1))
    for i, row in enumerate(rows):
        for j, con in enumerate(constraints):
            v = row.get(con.metric)
            G[i, j] = min(con.violation(math.nan if v is None else v), PENALTY)
        G[i, -1] = 1.0 if row["status"] == "failed" else 0.0
    return G


def failure_key(row: Mapping[str, Any]) -> str:
    """A failed row's error without the source location that makes each message unique:
    "provider: Type: message"."""
    return re.sub(r" \(at [^()]*:\d+\)$", "", str(row.get("error") or "unknown error"))


def failure_summary(counts: Mapping[str, int], top: int = 5) -> list[tuple[int, str]]:
    """The most frequent errors as (count, error), most frequent first; past ``top`` the rest
    are one entry."""
    ranked = sorted(((n, k) for k, n in counts.items()), key=lambda t: (-t[0], t[1]))
    if len(ranked) > top:
        rest = sum(n for n, _ in ranked[top:])
        ranked = ranked[:top] + [(rest, f"{len(ranked) - top} other errors")]
    return ranked
