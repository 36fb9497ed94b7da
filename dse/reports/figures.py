"""Report figures (matplotlib, Agg): Pareto fronts with the dominated cloud, parallel
coordinates, hypervolume over evaluations. Each returns a Figure; the page embeds PNGs and
writes PNG and SVG files beside it."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dse.reports.axes import axis_label, use_log
from dse.results.pareto import minimisation_matrix, nondominated_mask

COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _figure(width: float, height: float):
    """A figure without pyplot (no global backend or figure registry is touched)."""
    fig = Figure(figsize=(width, height), dpi=110)
    return fig, fig.subplots()


def pareto_figure(
    df: pd.DataFrame,
    x: tuple[str, str],
    y: tuple[str, str],
    groups: Sequence[str],
    units: Mapping[str, str] | None = None,
):
    """Every evaluated design (grey: dominated or infeasible) and each group's front on (x, y);
    axes labelled with units, log-scaled where the data span more than two decades."""
    units = units or {}
    fig, ax = _figure(7, 5)
    feasible = (
        df["feasible"].to_numpy(dtype=bool) if "feasible" in df.columns else np.ones(len(df), bool)
    )
    ax.scatter(
        df.loc[~feasible, x[0]],
        df.loc[~feasible, y[0]],
        s=8,
        c="#d62728",
        alpha=0.25,
        marker="x",
        label="infeasible",
    )
    ax.scatter(
        df.loc[feasible, x[0]], df.loc[feasible, y[0]], s=8, c="0.6", alpha=0.35, label="evaluated"
    )
    for i, group in enumerate(groups):
        sub = df[(df["group"] == group) & feasible]
        if not len(sub):
            continue
        f = minimisation_matrix(sub, [x, y])
        front = sub[nondominated_mask(f)].sort_values(x[0])
        color = COLORS[i % len(COLORS)]
        ax.step(front[x[0]], front[y[0]], where="post", color=color, lw=1.4)
        ax.scatter(
            front[x[0]],
            front[y[0]],
            s=28,
            color=color,
            edgecolor="k",
            lw=0.4,
            zorder=3,
            label=f"{group} front ({len(front)})",
        )
    ax.set_xlabel(axis_label(*x, units))
    ax.set_ylabel(axis_label(*y, units))
    if use_log(df[x[0]].to_numpy(dtype=float)):
        ax.set_xscale("log")
    if use_log(df[y[0]].to_numpy(dtype=float)):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def pareto_figures(
    df: pd.DataFrame,
    objectives: Sequence[tuple[str, str]],
    groups: Sequence[str],
    limit: int = 6,
    units: Mapping[str, str] | None = None,
):
    """One Pareto figure per pair of objectives (at most ``limit``)."""
    pairs = list(itertools.combinations(objectives, 2))[:limit]
    return [(f"pareto_{x[0]}_vs_{y[0]}", pareto_figure(df, x, y, groups, units)) for x, y in pairs]


def parallel_coordinates(df: pd.DataFrame, axes: Sequence[tuple[str, str]]):
    """Each feasible design a line across normalised axes (0 = worst, 1 = best of the runs);
    Pareto-optimal designs in colour, the rest grey."""
    feasible = df[df["feasible"]] if "feasible" in df.columns else df
    fig, ax = _figure(max(6, 1.6 * len(axes)), 4.5)
    if len(feasible) and axes:
        f = -minimisation_matrix(feasible, axes)  # larger is better on every axis
        lo, hi = np.nanmin(f, axis=0), np.nanmax(f, axis=0)
        z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
        xs = np.arange(len(axes))
        pareto = (
            feasible["is_pareto"].to_numpy(dtype=bool)
            if "is_pareto" in feasible
            else np.zeros(len(z), bool)
        )
        for row in z[~pareto]:
            ax.plot(xs, row, color="0.7", alpha=0.15, lw=0.7)
        cmap = matplotlib.colormaps["viridis"]
        for k, row in enumerate(z[pareto]):
            ax.plot(xs, row, color=cmap(k / max(1, pareto.sum() - 1)), alpha=0.9, lw=1.3)
        ax.set_xticks(xs, [f"{m}\n({d})" for m, d in axes], fontsize=8)
        for x, (a, b) in enumerate(zip(lo, hi)):
            ax.annotate(
                f"{b:.4g}" if axes[x][1] == "max" else f"{-b:.4g}",
                (x, 1.0),
                fontsize=7,
                ha="center",
                va="bottom",
                xytext=(0, 2),
                textcoords="offset points",
            )
            ax.annotate(
                f"{a:.4g}" if axes[x][1] == "max" else f"{-a:.4g}",
                (x, 0.0),
                fontsize=7,
                ha="center",
                va="top",
                xytext=(0, -2),
                textcoords="offset points",
            )
    ax.set_ylim(-0.08, 1.08)
    ax.set_ylabel("normalised (1 = best)")
    ax.set_title("parallel coordinates (coloured: Pareto-optimal)", fontsize=10)
    ax.grid(axis="x", alpha=0.4)
    fig.tight_layout()
    return fig


def hypervolume_figure(curves: pd.DataFrame, groups: Sequence[str]):
    """Hypervolume over evaluations per group: the mean over its runs, the band from min to max."""
    fig, ax = _figure(7, 4.5)
    for i, group in enumerate(groups):
        sub = curves[curves["group"] == group]
        if not len(sub):
            continue
        grid = np.unique(sub["evaluations"].to_numpy())
        per_run = []
        for _, run in sub.groupby("run_id"):
            run = run.sort_values("evaluations")
            per_run.append(
                np.interp(
                    grid, run["evaluations"], run["hypervolume"], right=run["hypervolume"].iloc[-1]
                )
            )
        values = np.vstack(per_run)
        color = COLORS[i % len(COLORS)]
        ax.plot(
            grid, values.mean(axis=0), color=color, lw=1.6, label=f"{group} ({len(per_run)} runs)"
        )
        if len(per_run) > 1:
            ax.fill_between(grid, values.min(axis=0), values.max(axis=0), color=color, alpha=0.15)
    ax.set_xlabel("evaluations (distinct designs)")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
