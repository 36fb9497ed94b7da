"""What a report reads: runs (or sweeps) as tables, their groups, objectives and a common
hypervolume reference."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dse.config import evaluation_identity
from dse.objectives import check_direction
from dse.params import ConfigError
from dse.results import RunStore, load, manifest, resolve_run
from dse.results.integrity import warn_damaged
from dse.results.pareto import default_reference, hypervolume_curve, minimisation_matrix, pareto


@dataclass
class RunData:
    run_id: str
    path: Path
    manifest: dict
    df: pd.DataFrame
    group: str  # runs of one group (same driver settings, other seeds) are aggregated

    @property
    def seed(self) -> int:
        return int(self.manifest["config"].get("run", {}).get("seed", 0))


def group_label(m: dict) -> str:
    """A driver's name with the settings that distinguish it (``optuna:tpe``, ``pymoo:nsga2``)."""
    if m.get("kind") == "sweep":
        return f"sweep:{m.get('method', 'grid')}"
    search = m["config"].get("search", {})
    driver = search.get("driver", "?")
    detail = search.get("sampler") or search.get("algorithm")
    return f"{driver}:{detail}" if detail else driver


def load_runs(runs: Sequence[str | Path], output: str | Path = "results") -> list[RunData]:
    out = []
    for run in runs:
        path = resolve_run(run, output)
        m = manifest(path)
        df = load(path, with_pareto=False)
        warn_damaged(RunStore(path), m, len(df))
        out.append(RunData(m["run_id"], path, m, df, group_label(m)))
    return out


def parse_objectives(specs: Sequence[str] | None, runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """``["acc:max", "lat:min"]`` or, when None, the first run's declared objectives. A metric
    no run records, a direction other than min/max, or a metric named twice is a ConfigError;
    a metric given without a direction takes the one the runs declare for it."""
    declared = {o["metric"]: o["direction"] for r in runs for o in r.manifest.get("objectives", [])}
    if not specs:
        return [(o["metric"], o["direction"]) for o in runs[0].manifest.get("objectives", [])]
    recorded = sorted({m for r in runs for m in r.manifest.get("metrics", [])})
    out: list[tuple[str, str]] = []
    for spec in specs:
        metric, _, direction = spec.partition(":")
        where = f"--objectives {spec!r}"
        if metric not in recorded:
            raise ConfigError(
                f"{where}: no run records metric {metric!r}; allowed values: {recorded}"
            )
        if metric in dict(out):
            raise ConfigError(f"{where}: {metric!r} is already an objective")
        if not direction:
            if metric not in declared:
                raise ConfigError(
                    f"{where}: the runs declare no direction for {metric!r}; give {metric}:min "
                    f"or {metric}:max"
                )
            direction = declared[metric]
        try:
            out.append((metric, check_direction(direction, f"{where}: direction")))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return out


#: a sweep's front is split by a swept parameter with at most this many values (boards, devices)
MAX_SPLIT_VALUES = 12


def split_parameter(runs: Sequence[RunData], df: pd.DataFrame) -> str | None:
    """The swept parameter a sweep report draws one front per value of (``simulators.fpga.board``
    over seven boards): the first swept, non-architecture parameter with 2 to
    :data:`MAX_SPLIT_VALUES` values; None for search runs, or when no parameter fits."""
    if not runs or any(r.manifest.get("kind") != "sweep" for r in runs):
        return None
    for r in runs:
        for p in r.manifest.get("parameters", []):
            if p == "arch" or p.startswith("arch.") or p not in df.columns:
                continue
            if 2 <= df[p].nunique() <= MAX_SPLIT_VALUES:
                return p
    return None


def require_objectives(objectives: Sequence[tuple[str, str]], runs: Sequence[RunData]) -> None:
    """A report without objectives would be an empty page: refuse it, naming ``--objectives``
    and the metrics the runs record."""
    if objectives:
        return
    recorded = sorted({m for r in runs for m in r.manifest.get("metrics", [])})
    what = "sweep" if runs and runs[0].manifest.get("kind") == "sweep" else "run"
    raise ConfigError(
        f"--objectives: the {what} {runs[0].run_id!r} declares no objectives; give them as "
        f"METRIC:min|max, e.g. --objectives {recorded[0] if recorded else 'metric'}:min "
        f"(its metrics: {', '.join(recorded)})"
    )


def problem_key(m: dict) -> str:
    """What makes two runs comparable: the same space, evaluators, constraints and objectives
    (hypervolumes of different problems are never averaged or ranked against each other)."""
    return json.dumps(
        {**evaluation_identity(m.get("config", {})), "objectives": m.get("objectives", [])},
        sort_keys=True,
        default=str,
    )


def problem_label(m: dict) -> str:
    """A one-line description of a run's problem, for the report."""
    cfg = m.get("config", {})
    providers = [
        f"{name}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else name
        for section in ("proxies", "simulators")
        for name, params in (cfg.get(section) or {}).items()
    ]
    objectives = ", ".join(f"{o['metric']}:{o['direction']}" for o in m.get("objectives", []))
    space = (cfg.get("space") or {}).get("name", "?")
    return f"space {space}; {' + '.join(providers)}; objectives {objectives or 'none'}"


def hardware_feasible(df: pd.DataFrame) -> pd.Series:
    """``feasible`` and every ``*_feasible`` metric (a simulator's own verdict: the design fits
    its board or memory) at 1: a design that does not fit is never on a reported front."""
    ok = df["feasible"].astype(bool) if "feasible" in df.columns else pd.Series(True, df.index)
    for col in [c for c in df.columns if c.endswith("_feasible")]:
        ok &= df[col].fillna(1.0) >= 1.0
    return ok


def declared_refs(
    runs: Sequence[RunData], objectives: Sequence[tuple[str, str]]
) -> list[float | None]:
    refs = {o["metric"]: o.get("ref") for o in runs[0].manifest.get("objectives", [])}
    return [refs.get(m) for m, _ in objectives]


def combined(runs: Sequence[RunData], objectives: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """All rows of all runs with ``run_id`` and ``group`` columns and ``is_pareto`` over the
    union."""
    frames = []
    for r in runs:
        if not len(r.df) or any(m not in r.df.columns for m, _ in objectives):
            continue
        d = r.df.copy()
        d["group"] = r.group
        frames.append(d)
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    df["feasible"] = hardware_feasible(df)
    df["is_pareto"] = pareto(df, objectives) if objectives else False
    return df


def reference_point(
    df: pd.DataFrame, objectives: Sequence[tuple[str, str]], declared: Sequence[float | None]
) -> list[float]:
    """Declared refs where given, else just worse than every feasible point of every run."""
    feasible = df[df["feasible"]] if "feasible" in df.columns else df
    f = minimisation_matrix(feasible, objectives)
    auto = (
        default_reference(f)
        if len(f) and np.isfinite(f).all(axis=1).any()
        else np.ones(len(objectives))
    )
    return [
        d if d is not None else (a if dirn == "min" else -a)
        for d, a, (_, dirn) in zip(declared, auto, objectives)
    ]


def hypervolume_table(runs: Sequence[RunData], objectives, ref) -> pd.DataFrame:
    """Per run: hypervolume after 1..n evaluations (long format: run_id, group, evaluations,
    hypervolume)."""
    frames = []
    for r in runs:
        if not len(r.df) or any(m not in r.df.columns for m, _ in objectives):
            continue
        curve = hypervolume_curve(r.df, objectives, ref)
        curve["run_id"], curve["group"], curve["seed"] = r.run_id, r.group, r.seed
        frames.append(curve)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["evaluations", "hypervolume", "run_id", "group", "seed"])
    )


def decisions(df: pd.DataFrame, limit: int = 12) -> pd.DataFrame:
    """The ``arch`` JSON expanded to one column per decision (when there are at most ``limit``)."""
    if "arch" not in df.columns or not len(df):
        return pd.DataFrame(index=df.index)
    expanded = pd.DataFrame([json.loads(a) for a in df["arch"]], index=df.index)
    if expanded.shape[1] > limit:
        return pd.DataFrame(index=df.index)
    return expanded.map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
