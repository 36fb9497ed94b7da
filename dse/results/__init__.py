"""Results: run directories of Parquet evaluations, and Pareto / hypervolume helpers.

>>> df = dse.results.load("results/demo-...")    # one row per evaluated architecture
>>> df[df.is_pareto]                               # the run's Pareto-optimal designs
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from dse.params import ConfigError
from dse.results.pareto import (
    default_reference,
    hypervolume,
    hypervolume_curve,
    minimisation_matrix,
    nondominated_mask,
    pareto,
)
from dse.results.store import CORE_SCHEMA, RunStore, run_schema

#: what each kind of store is continued with
_CONTINUE = {"run": "dse run --resume", "sweep": "dse sweep --resume"}


def open_to_resume(
    resume: str | Path, output: str | Path | None, kind: str, stack: ExitStack
) -> tuple[RunStore, dict]:
    """The store a ``--resume`` names (a folder or a run id under ``output``) and its manifest,
    with the store's writer lock held for the rest of ``stack``: the one opener of resumed runs
    and sweeps. A store of the other kind is refused, naming the command that continues it."""
    try:
        path = resolve_run(resume, output or "results")
    except FileNotFoundError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    store = RunStore(path)
    manifest = store.read_manifest()
    found = "sweep" if manifest.get("kind") == "sweep" else "run"
    if found != kind:
        what = "a sweep" if found == "sweep" else "a search run"
        raise ConfigError(f"--resume: {path} is {what}; continue it with {_CONTINUE[found]} {path}")
    stack.enter_context(store.writer_lock())
    return store, manifest


def resolve_run(run: str | Path, output: str | Path = "results") -> Path:
    """A run directory from a path or a run id under ``output``."""
    p = Path(run)
    if (p / "manifest.json").is_file():
        return p
    q = Path(output) / str(run)
    if (q / "manifest.json").is_file():
        return q
    raise FileNotFoundError(f"no run {str(run)!r}: neither {p} nor {q} holds a manifest.json")


def load(
    run: str | Path, *, output: str | Path = "results", with_pareto: bool = True
) -> pd.DataFrame:
    """All evaluations of a run as a DataFrame, ordered by ``eval_id``.

    With ``with_pareto`` an ``is_pareto`` column marks the feasible non-dominated rows under the
    run's declared objectives (a sweep without objectives gets none).
    """
    store = RunStore(resolve_run(run, output))
    df = store.read_table().to_pandas()
    objectives = {o["metric"]: o["direction"] for o in store.read_manifest()["objectives"]}
    if with_pareto and objectives:
        df["is_pareto"] = pareto(df, objectives) if len(df) else pd.Series(dtype=bool)
    return df


def manifest(run: str | Path, *, output: str | Path = "results") -> dict:
    """A run's manifest; a damaged one is a StoreError naming the file."""
    return RunStore(resolve_run(run, output)).read_manifest()


__all__ = [
    "CORE_SCHEMA",
    "RunStore",
    "default_reference",
    "hypervolume",
    "hypervolume_curve",
    "load",
    "manifest",
    "minimisation_matrix",
    "nondominated_mask",
    "pareto",
    "resolve_run",
    "run_schema",
]
