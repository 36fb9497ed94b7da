"""``dse show``: a run's summary and Pareto table as plain text, for a terminal.

The HTML page of ``dse report`` is :mod:`dse.reports`; this is its text sibling, read from the
same manifest and records.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dse.fidelity import fidelity_lines
from dse.results import RunStore, load, manifest, resolve_run
from dse.results.integrity import warn_damaged


def print_summary(
    run: str | Path, limit: int | None, output: str = "results", show_all: bool = False
) -> None:
    """Print a run's or sweep's summary (``dse show``): ids, driver or sweep plan, counts,
    objectives and constraints, each simulated metric's expected error, then the Pareto front
    sorted by the first objective (every row with ``show_all``; a sweep without objectives:
    its first rows), ``limit`` rows at most."""
    m = manifest(run, output=output)
    df = load(run, output=output)
    warn_damaged(RunStore(resolve_run(run, output)), m, len(df))
    objectives = [(o["metric"], o["direction"]) for o in m["objectives"]]
    constraints = [c["metric"] for c in m["constraints"]]
    status_counts = df["status"].value_counts().to_dict() if len(df) else {}
    print(f"run:         {m['run_id']}  ({m['status']})")
    print(f"space:       {m['space']}")
    if m.get("kind") == "sweep":
        print(
            f"sweep:       {m['method']} over {', '.join(m['parameters'])}; {m['points']} points "
            "in "
            f"{m['chunks']} chunks   seed {m['config'].get('run', {}).get('seed', 0)}"
        )
    else:
        print(f"driver:      {m['config']['search']['driver']}   seed {m['config']['run']['seed']}")
    print(
        f"evaluations: {len(df)} rows, {m.get('proposals', len(df))} proposals, status "
        f"{status_counts}"
    )
    if len(df):
        print(
            f"feasible:    {int(df['feasible'].sum())}   wall time per evaluation "
            f"{df['wall_s'].median() * 1e3:.2f} ms (median)"
        )
    print("objectives:  " + (", ".join(f"{m_} ({d})" for m_, d in objectives) or "(none)"))
    if constraints:
        print(
            "constraints: "
            + ", ".join(
                f"{c['metric']} " + " ".join(f"{k} {c[k]:g}" for k in ("min", "max") if k in c)
                for c in m["constraints"]
            )
        )
    shown = [m_ for m_, _ in objectives] + [c for c in constraints if c not in dict(objectives)]
    lines = fidelity_lines(m.get("fidelity", {}), shown or m.get("metrics", []))
    if lines:
        print("expected error of the simulated metrics:")
        for line in lines:
            print("  " + line)
    if not len(df):
        return
    if not objectives:  # a sweep without objectives: its first rows
        show_all = True
        df = df.assign(is_pareto=False)
        cols_sweep = ["eval_id", "arch_id", *m.get("parameters", []), *m.get("metrics", [])]
        print()
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(
                df[[c for c in cols_sweep if c in df.columns]]
                .head(limit or len(df))
                .to_string(index=False)
            )
        return
    table = df if show_all else df[df["is_pareto"]]
    cols = (
        ["eval_id", "arch_id"]
        + [o for o, _ in objectives]
        + [c for c in constraints if c not in dict(objectives)]
    )
    metric, direction = objectives[0]
    table = table.sort_values(metric, ascending=direction == "min")
    if limit:
        table = table.head(limit)
    print()
    title = (
        "all evaluations" if show_all else f"Pareto front ({int(df['is_pareto'].sum())} designs)"
    )
    print(title + (f", first {limit}" if limit and len(table) == limit else "") + ":")
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        print(table[cols].to_string(index=False))
