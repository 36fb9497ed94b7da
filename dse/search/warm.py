"""Warm start: begin a search from an earlier run's designs.

The earlier run's rows are ranked best first (feasible Pareto-optimal designs under *this*
run's objectives, then the other feasible ones by non-domination rank, then the rest) and their
encodings become ``SearchProblem.warm_start``: pymoo seeds its first population with them,
REA its population, optuna enqueues them, random search evaluates them first. When the earlier
run evaluated with the same space and providers, its metrics are reused (the rows are copied
into the new run under new ``eval_id`` values), so warm-starting costs no evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from dse.config import evaluation_identity
from dse.params import ConfigError
from dse.results.pareto import minimisation_matrix, nondominated_mask


@dataclass
class WarmStart:
    encodings: np.ndarray  # (n, n_var), best first
    reusable: dict[str, dict[str, Any]]  # arch_hash -> earlier row, when metrics may be reused


def _rank(df: pd.DataFrame, objectives: list[tuple[str, str]]) -> np.ndarray:
    """Row order, best first: feasible rows by non-domination layer, then the infeasible ones."""
    feasible = df["feasible"].to_numpy(dtype=bool) if "feasible" in df else np.ones(len(df), bool)
    if not all(m in df.columns for m, _ in objectives):
        return np.concatenate([np.flatnonzero(feasible), np.flatnonzero(~feasible)])
    f = minimisation_matrix(df, objectives)
    layer = np.full(len(df), np.iinfo(np.int64).max)
    left = feasible & np.all(np.isfinite(f), axis=1)
    k = 0
    while left.any():
        idx = np.flatnonzero(left)
        front = idx[nondominated_mask(f[idx])]
        layer[front], left[front] = k, False
        k += 1
    return np.lexsort((df["eval_id"].to_numpy(), layer))


def load_warm_start(
    run: str | Path,
    output: str | Path,
    space,
    config: dict[str, Any],
    objectives: list[tuple[str, str]],
    limit: int | None = None,
) -> WarmStart:
    """Encodings (and reusable rows) from run ``run``; :class:`ConfigError` when it does not fit."""
    from dse.results import load, manifest, resolve_run

    try:
        path = resolve_run(run, output)
    except FileNotFoundError as exc:
        raise ConfigError(f"search.warm_start: {exc}") from None
    m = manifest(path)
    earlier = m["config"]
    if earlier["space"].get("name") != space.name:
        raise ConfigError(
            f"search.warm_start: run {m['run_id']!r} searched space "
            f"{earlier['space'].get('name')!r}, this run searches {space.name!r}"
        )
    df = load(path, with_pareto=False)
    if not len(df):
        return WarmStart(np.empty((0, len(space.variables)), np.int64), {})
    order = _rank(df, objectives)
    rows = df.iloc[order[:limit] if limit else order]
    encodings = []
    for arch in rows["arch"]:
        try:
            encodings.append(space.encode(json.loads(arch)))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"search.warm_start: run {m['run_id']!r} holds an architecture this "
                f"space does not accept ({exc})"
            ) from None
    same = evaluation_identity(earlier) == evaluation_identity(config)
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    reusable = {r["arch_hash"]: r for r in records} if same else {}
    return WarmStart(np.array(encodings, dtype=np.int64), reusable)
