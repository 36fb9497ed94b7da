"""Pareto fronts and hypervolume over result tables (vectorised numpy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from dse.objectives import check_direction

ObjectiveSpec = Mapping[str, str] | Sequence[tuple[str, str]]


def _as_pairs(objectives: ObjectiveSpec) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = (
        list(objectives.items())
        if isinstance(objectives, Mapping)
        else [(m, d) for m, d in objectives]
    )
    for metric, direction in pairs:
        check_direction(direction, f"objective {metric!r}: direction")
    return pairs


def minimisation_matrix(df: pd.DataFrame, objectives: ObjectiveSpec) -> np.ndarray:
    """(n, k) objective values, negated where the direction is ``max``."""
    pairs = _as_pairs(objectives)
    missing = [m for m, _ in pairs if m not in df.columns]
    if missing:
        raise KeyError(
            f"objective column(s) {missing} not in the table; columns: {list(df.columns)}"
        )
    cols = [df[m].to_numpy(dtype=float) * (1.0 if d == "min" else -1.0) for m, d in pairs]
    return np.stack(cols, axis=1) if cols else np.empty((len(df), 0))


def nondominated_mask(f: np.ndarray) -> np.ndarray:
    """Boolean mask of rows of ``f`` (minimised) not dominated by any other row (a row with a
    non-finite value is never on the front; equal rows are both kept). moocore's C routine
    (a pymoo dependency) does the work: O(n log n) for two and three objectives."""
    f = np.asarray(f, dtype=float)
    mask = np.zeros(len(f), dtype=bool)
    if len(f) == 0:
        return mask
    valid = np.all(np.isfinite(f), axis=1)
    if valid.any():
        mask[valid] = moocore.is_nondominated(f[valid], maximise=False, keep_weakly=True)
    return mask


def pareto(df: pd.DataFrame, objectives: ObjectiveSpec, *, feasible_only: bool = True) -> pd.Series:
    """``is_pareto`` column: feasible (if the table has a ``feasible`` column) and non-dominated.

    ``objectives`` maps metric -> ``"min"``/``"max"``, e.g. ``{"val_acc": "max", "latency_ms":
    "min"}``.
    """
    f = minimisation_matrix(df, objectives)
    ok = np.ones(len(df), dtype=bool)
    if feasible_only and "feasible" in df.columns:
        ok &= df["feasible"].to_numpy(dtype=bool)
    f = np.where(ok[:, None], f, np.nan)
    return pd.Series(nondominated_mask(f), index=df.index, name="is_pareto")


def hypervolume(
    df: pd.DataFrame, objectives: ObjectiveSpec, ref: Sequence[float], *, feasible_only: bool = True
) -> float:
    """Hypervolume dominated by the table's (feasible) points, bounded by the reference point.

    ``ref`` is given in the objectives' own units and directions (for a ``max`` objective it is a
    lower bound, e.g. accuracy 0). Exact for any number of objectives (pymoo's HV indicator).
    """
    pairs = _as_pairs(objectives)
    if len(ref) != len(pairs):
        raise ValueError(f"ref has {len(ref)} values for {len(pairs)} objectives")
    f = minimisation_matrix(df, pairs)
    if feasible_only and "feasible" in df.columns:
        f = f[df["feasible"].to_numpy(dtype=bool)]
    r = np.array([v if d == "min" else -v for v, (_, d) in zip(ref, pairs)], dtype=float)
    return hypervolume_minimised(f, r)


def hypervolume_minimised(f: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimised points ``f`` (n, k) bounded by the minimised reference ``ref``;
    rows with a non-finite value or not strictly better than ``ref`` everywhere add nothing."""
    f = np.asarray(f, dtype=float).reshape(len(f), -1)
    r = np.asarray(ref, dtype=float)
    f = f[np.all(np.isfinite(f), axis=1)]
    f = f[np.all(f < r, axis=1)]
    if len(f) == 0:
        return 0.0
    if f.shape[1] == 1:
        return float(r[0] - f[:, 0].min())
    return float(moocore.hypervolume(f, ref=r))  # exact; O(n log n) in 2-D and 3-D


def default_reference(f: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """A reference point just worse than every (minimised) point of ``f``: the worst value per
    objective plus ``margin`` of the value range (of its magnitude, or 1, when the range is 0)."""
    f = np.asarray(f, dtype=float)
    f = f[np.all(np.isfinite(f), axis=1)]
    if len(f) == 0:
        raise ValueError("default_reference: no finite points")
    worst, best = f.max(axis=0), f.min(axis=0)
    span = worst - best
    span = np.where(span > 0, span, np.where(np.abs(worst) > 0, np.abs(worst), 1.0))
    return worst + margin * span


def hypervolume_curve(
    df: pd.DataFrame,
    objectives: ObjectiveSpec,
    ref: Sequence[float],
    *,
    order: str = "eval_id",
    points: int = 200,
) -> pd.DataFrame:
    """Hypervolume reached after the first 1..n evaluations (rows ordered by ``order``), at up
    to ``points`` evenly spaced counts plus the last: columns ``evaluations``, ``hypervolume``.
    ``ref`` as in :func:`hypervolume` (objective units and directions)."""
    pairs = _as_pairs(objectives)
    df = df.sort_values(order) if order in df.columns else df
    f = minimisation_matrix(df, pairs)
    if "feasible" in df.columns:
        f = np.where(df["feasible"].to_numpy(dtype=bool)[:, None], f, np.nan)
    r = np.array([v if d == "min" else -v for v, (_, d) in zip(ref, pairs)], dtype=float)
    n = len(f)
    if n == 0:
        return pd.DataFrame(
            {"evaluations": np.array([], dtype=np.int64), "hypervolume": np.array([])}
        )
    counts = np.unique(np.append(np.linspace(1, n, min(points, n)).round().astype(np.int64), n))
    values, front, done = [], np.empty((0, f.shape[1])), 0
    for c in counts:
        new = f[done:c]
        new = new[np.all(np.isfinite(new), axis=1)]
        if len(new):
            front = np.vstack([front, new])
            front = front[nondominated_mask(front)]
        done = c
        values.append(hypervolume_minimised(front, r))
    return pd.DataFrame({"evaluations": counts, "hypervolume": values})
