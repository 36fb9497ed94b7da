"""``dse report RUN...``: one self-contained HTML page per run or comparison of runs.

The page holds Pareto fronts of every pair of objectives over the cloud of dominated designs,
parallel coordinates, hypervolume over evaluations per driver (mean and min-max band over
seeds), a per-driver summary, the Pareto-optimal designs with their decisions, and each run's
config. Figures are embedded as PNG (the page is one file to mail or archive) and also written
as PNG and SVG under ``figures/``. Runs of one driver setting with different seeds form a group.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dse.fidelity import fidelity_lines, merged_fidelity, short_error
from dse.reports.data import (
    RunData,
    combined,
    decisions,
    declared_refs,
    hardware_feasible,
    hypervolume_table,
    load_runs,
    parse_objectives,
    problem_key,
    problem_label,
    reference_point,
    require_objectives,
    split_parameter,
)
from dse.reports.explorer import SCRIPT as EXPLORER_SCRIPT
from dse.reports.explorer import STYLE as EXPLORER_STYLE
from dse.reports.explorer import explorer_svg
from dse.reports.figures import hypervolume_figure, parallel_coordinates, pareto_figures

#: objective pairs drawn as interactive explorers (each holds up to a few thousand points)
EXPLORED_PAIRS = 3

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid
#ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid
#ddd;padding:.25em .5em;text-align:right}
th{background:#f4f4f4;cursor:pointer}td.s{text-align:left;font-family:monospace}
figure{display:inline-block;margin:.5em}img{max-width:100%;border:1px solid #eee}
pre{background:#f8f8f8;padding:.8em;overflow:auto;font-size:.8em}.note{color:#666;font-size:.9em}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em}
h2.problem{font-size:1.4em;border-bottom:2px solid #888}
div.scroll{overflow:auto;max-height:32em;max-width:100%;margin:.5em 0}
div.scroll th{position:sticky;top:0}
"""
_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1;
    th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _table(df: pd.DataFrame, sortable: bool = True) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for v in r:
            if isinstance(v, (float, np.floating)):
                cells.append(f"<td>{'' if np.isnan(v) else f'{v:.5g}'}</td>")
            elif isinstance(v, (int, np.integer, bool, np.bool_)):
                cells.append(f"<td>{v}</td>")
            else:
                cells.append(f"<td class='s'>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = " class='sortable'" if sortable else ""
    return (
        f"<div class='scroll'><table{cls}><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _embed(fig, name: str, figures_dir: Path, caption: str) -> str:
    figures_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    (figures_dir / f"{name}.png").write_bytes(buf.getvalue())
    fig.savefig(figures_dir / f"{name}.svg", format="svg")
    data = base64.b64encode(buf.getvalue()).decode()
    return (
        f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
        f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
    )


def _summary(runs, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for r in runs:
        c = curves[curves["run_id"] == r.run_id]
        rows.append(
            {
                "run": r.run_id,
                "group": r.group,
                "seed": r.seed,
                "status": r.manifest.get("status"),
                "stopped by": r.manifest.get("stopped_by") or "",
                "evaluations": len(r.df),
                "feasible": int(hardware_feasible(r.df).sum()) if len(r.df) else 0,
                "hypervolume": float(c["hypervolume"].iloc[-1]) if len(c) else float("nan"),
                "wall s (sum)": float(r.df["wall_s"].sum()) if "wall_s" in r.df else float("nan"),
            }
        )
    per_run = pd.DataFrame(rows)
    groups = (
        per_run.groupby("group", sort=False)
        .agg(
            runs=("run", "count"),
            evaluations=("evaluations", "mean"),
            hv_mean=("hypervolume", "mean"),
            hv_std=("hypervolume", "std"),
            hv_min=("hypervolume", "min"),
            hv_max=("hypervolume", "max"),
        )
        .reset_index()
    )
    if "random" in set(groups["group"]):
        base = float(groups.loc[groups["group"] == "random", "hv_mean"].iloc[0])
        groups["hv / random"] = groups["hv_mean"] / base if base > 0 else float("nan")
    return per_run, groups.sort_values("hv_mean", ascending=False)


def report(
    runs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    output: str | Path = "results",
    objectives: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write ``<out>/index.html`` (plus ``figures/*.png|svg`` and ``pareto.csv``) for ``runs``
    (run or sweep directories or ids); returns the HTML file. ``objectives`` as
    ``["metric:max", ...]`` overrides the runs' declared ones (needed for sweeps).

    Runs are grouped by problem (space, evaluators, constraints, objectives) and, within one,
    by driver settings; runs of different problems are reported side by side, one section per
    problem, never averaged or ranked against each other."""
    data = load_runs(runs, output)
    problems: dict[str, list[RunData]] = {}
    for r in data:
        problems.setdefault(problem_key(r.manifest), []).append(r)
    for subset in problems.values():  # before anything is written: no empty page
        require_objectives(parse_objectives(objectives, subset), subset)
    out = (
        Path(out)
        if out is not None
        else (
            data[0].path / "report"
            if len(data) == 1
            else Path(output) / f"report-{time.strftime('%Y%m%d-%H%M%S')}"
        )
    )
    ids = ", ".join(r.run_id for r in data[:4]) + (" ..." if len(data) > 4 else "")
    parts = [
        f"<h1>{html.escape(title or 'dse report: ' + ids)}</h1>",
        f"<p class='note'>{len(data)} run(s); "
        f"written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}</p>",
    ]
    tags = [chr(ord("A") + i) if i < 26 else f"P{i}" for i in range(len(problems))]
    if len(problems) > 1:
        parts.append(
            f"<p class='warn'>These runs solve {len(problems)} different problems, reported side "
            "by side: hypervolumes are compared only within a problem.</p><ul>"
            + "".join(
                f"<li><b>Problem {t}</b> ({len(rs)} run(s)): "
                f"{html.escape(problem_label(rs[0].manifest))}</li>"
                for t, rs in zip(tags, problems.values())
            )
            + "</ul>"
        )
    fronts = []
    for tag, subset in zip(tags, problems.values()):
        prefix = f"{tag}_" if len(problems) > 1 else ""
        if len(problems) > 1:
            parts.append(f"<h2 class='problem'>Problem {tag}</h2>")
        section, front = _problem_sections(subset, objectives, out / "figures", prefix)
        parts.extend(section)
        if front is not None:
            fronts.append(front.assign(problem=tag) if len(problems) > 1 else front)
    if fronts:
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(fronts, ignore_index=True).to_csv(out / "pareto.csv", index=False)
    for r in data:
        parts.append(
            f"<h2>Config of {html.escape(r.run_id)}</h2><details><summary>{html.escape(r.group)}, "
            f"seed {r.seed}, {html.escape(str(r.path))}</summary><pre>"
            f"{html.escape(json.dumps(r.manifest.get('config', {}), indent=2))}</pre></details>"
        )
    out.mkdir(parents=True, exist_ok=True)
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dse report</title>"
        f"<style>{_STYLE}{EXPLORER_STYLE}</style></head><body>{''.join(parts)}"
        f"<div id='dse-tip'></div><script>{_SCRIPT}{EXPLORER_SCRIPT}</script></body></html>"
    )
    path = out / "index.html"
    path.write_text(page)
    return path


def _problem_sections(
    data: list[RunData], objectives: Sequence[str] | None, figures: Path, prefix: str
) -> tuple[list[str], pd.DataFrame | None]:
    """The sections of one problem's runs, and its Pareto table (None without objectives)."""
    objs = parse_objectives(objectives, data)
    groups = list(dict.fromkeys(r.group for r in data))
    units: dict[str, str] = {}
    for r in data:
        units.update(r.manifest.get("units", {}))
    df = combined(data, objs)
    sweep = all(r.manifest.get("kind") == "sweep" for r in data)
    split = split_parameter(data, df)
    if split is not None:  # one front per value of the swept parameter (one per board)
        df["group"] = [f"{split} = {v}" for v in df[split]]
        groups = list(dict.fromkeys(df["group"]))
    parts = [
        f"<p class='note'>{len(data)} run(s), {len(df)} evaluations; objectives: "
        f"{html.escape(', '.join(f'{m} ({d})' for m, d in objs)) or 'none declared'}</p>"
    ]
    fidelity = merged_fidelity([r.manifest for r in data])
    constrained = [c["metric"] for c in data[0].manifest.get("constraints", [])]
    shown = [m for m in dict.fromkeys([m for m, _ in objs] + constrained) if m in fidelity]
    if shown:
        rows = [
            {"metric": m, "expected error": line.split(": ", 1)[1]}
            for m in shown
            for line in fidelity_lines({m: fidelity[m]})
        ]
        parts.append(
            "<h2>Expected error of the simulated metrics</h2>"
            + _table(pd.DataFrame(rows), sortable=False)
            + "<p class='note'>from each simulator's calibration and how it was validated "
            "(median and 90th percentile of |predicted / measured - 1|)</p>"
        )
    errors = {m: short_error(entries) for m, entries in fidelity.items()}
    if not (len(objs) >= 1 and len(df)):
        parts.append("<p>No objectives to plot: pass --objectives metric:min|max.</p>")
        return parts, None
    ref = reference_point(df, objs, declared_refs(data, objs))
    curves = hypervolume_table(data, objs, ref)
    per_run, per_group = _summary(data, curves)
    parts.append(
        "<h2>Drivers</h2>" + _table(per_group) + f"<p class='note'>hypervolume reference point: "
        f"{html.escape(', '.join(f'{m} = {v:.5g}' for (m, _), v in zip(objs, ref)))} "
        f"(declared refs, else just worse than every feasible design of these runs)</p>"
    )
    if not sweep:  # a sweep's points come in no meaningful order: no curve over them
        parts.append(
            "<h2>Hypervolume over evaluations</h2>"
            + _embed(
                hypervolume_figure(curves, groups),
                f"{prefix}hypervolume",
                figures,
                "mean over each group's runs; band: min to max",
            )
        )
    if split is not None:
        counts = df.groupby("group", sort=False).agg(
            points=("eval_id", "size"), feasible=("feasible", "sum"), on_front=("is_pareto", "sum")
        )
        parts.append(
            f"<h2>Per {html.escape(split)}</h2>"
            + _table(counts.reset_index().rename(columns={"group": split}))
            + "<p class='note'>feasible: the design fits (every <code>*_feasible</code> metric "
            "is 1); on front: non-dominated over the whole sweep</p>"
        )
    if len(objs) >= 2:
        parts.append(
            "<h2>Pareto fronts</h2>"
            + "".join(
                _embed(
                    fig,
                    prefix + name,
                    figures,
                    f"{name.replace('_', ' ')}: grey = dominated, red x = infeasible",
                )
                for name, fig in pareto_figures(df, objs, groups, units=units)
            )
        )
        parts.append(
            "<h2>Explore the fronts</h2>"
            + "".join(
                explorer_svg(df, x, y, groups, units, errors)
                for x, y in list(itertools.combinations(objs, 2))[:EXPLORED_PAIRS]
            )
        )
        constraint_axes = [
            (c["metric"], "min")
            for c in data[0].manifest.get("constraints", [])
            if c["metric"] in df.columns and c["metric"] not in dict(objs)
        ]
        axes = list(objs) + constraint_axes
        if len(axes) >= 3:  # two axes are the scatter above, not parallel coordinates
            parts.append(
                "<h2>Parallel coordinates</h2>"
                + _embed(
                    parallel_coordinates(df, axes),
                    f"{prefix}parallel_coordinates",
                    figures,
                    "objectives (and constrained metrics), normalised over the runs",
                )
            )
    front = df[df["is_pareto"]].copy()
    front = front.sort_values(objs[0][0], ascending=objs[0][1] == "min")
    swept = [
        p
        for r in data
        for p in r.manifest.get("parameters", [])
        if p in front.columns and not p.startswith("arch")
    ]
    cols = ["run_id", "group", "eval_id", "arch_id", *dict.fromkeys(swept)] + [m for m, _ in objs]
    table = pd.concat(
        [front[cols].reset_index(drop=True), decisions(front).reset_index(drop=True)], axis=1
    )
    parts.append(f"<h2>Pareto-optimal designs ({len(front)})</h2>" + _table(table))
    parts.append("<h2>Runs</h2>" + _table(per_run))
    return parts, table


__all__ = ["report"]
