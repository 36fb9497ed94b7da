"""Interactive Pareto explorer: an inline SVG scatter whose points name their architecture.

Each design is an SVG circle carrying its architecture id, run, ``eval_id`` and coordinates;
a few lines of script in the page show them beside the pointer on hover (and the circle's
``<title>`` gives the same text as a native tooltip where scripts are off). Nothing is fetched at
view time, so the page stays one self-contained file. Axes follow :mod:`dse.reports.axes`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dse.reports.axes import axis_label, use_log
from dse.results.pareto import minimisation_matrix, nondominated_mask

WIDTH, HEIGHT = 760, 470
LEFT, RIGHT, TOP, BOTTOM = 88, 20, 20, 60
#: at most this many dominated designs are drawn (an even sample); front points are all drawn
MAX_CLOUD = 4000
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")

SCRIPT = """
(function () {
  var tip = document.getElementById('dse-tip');
  document.querySelectorAll('svg.explorer circle').forEach(function (c) {
    c.addEventListener('mouseover', function (e) {
      tip.textContent = c.dataset.tip;
      tip.style.display = 'block';
      var right = e.clientX + 12 + tip.offsetWidth > window.innerWidth;
      tip.style.left = (right ? e.clientX - 12 - tip.offsetWidth : e.clientX + 12) + 'px';
      tip.style.top = (e.clientY + 12) + 'px';
    });
    c.addEventListener('mouseout', function () { tip.style.display = 'none'; });
  });
})();
"""
STYLE = (
    "svg.explorer{border:1px solid #eee;background:#fff}svg.explorer circle:hover{stroke:#000;"
    "stroke-width:2}#dse-tip{position:fixed;display:none;background:#222;color:#fff;"
    "padding:.3em .5em;border-radius:3px;font:12px monospace;white-space:pre;pointer-events:none;"
    "z-index:10}"
)


class _Axis:
    def __init__(self, values: np.ndarray, lo_px: float, hi_px: float):
        self.log = use_log(values)
        v = values[np.isfinite(values)]
        v = np.log10(v) if self.log else v
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        pad = (hi - lo) * 0.04 or 0.5
        self.lo, self.hi, self.lo_px, self.hi_px = lo - pad, hi + pad, lo_px, hi_px

    def px(self, values: np.ndarray) -> np.ndarray:
        v = np.log10(np.where(values > 0, values, np.nan)) if self.log else values
        return self.lo_px + (v - self.lo) / (self.hi - self.lo) * (self.hi_px - self.lo_px)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            return [(10.0**k, f"1e{k}") for k in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        return [(float(t), short_number(t)) for t in np.linspace(self.lo, self.hi, 6)[1:-1]]


def short_number(v: float) -> str:
    """A tick label of at most about six characters: 0.25, 84.2, 720k, 1.05M, 3.2e-05."""
    a = abs(v)
    if a >= 1e4:
        k = min(int(math.log10(a) // 3), 4)
        return f"{v / 10 ** (3 * k):.3g}{' kMGT'[k]}"
    return f"{v:.3g}"


def _tip(
    row: pd.Series, x: str, y: str, units: Mapping[str, str], errors: Mapping[str, str]
) -> str:
    def fmt(m: str) -> str:
        unit = units.get(m, "")
        error = f" ({errors[m]})" if errors.get(m) else ""
        return f"{m} = {row[m]:.5g}{f' {unit}' if unit else ''}{error}"

    return f"{row['arch_id']}\n{row['run_id']} #{row['eval_id']}\n{fmt(x)}\n{fmt(y)}"


def explorer_svg(
    df: pd.DataFrame,
    x: tuple[str, str],
    y: tuple[str, str],
    groups: Sequence[str],
    units: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
) -> str:
    """The scatter of (x, y) over every feasible design, each group's front highlighted;
    ``errors``: metric -> its expected error in a few words, shown in the hover."""
    feasible = df[df["feasible"]] if "feasible" in df.columns else df
    feasible = feasible[np.isfinite(feasible[x[0]]) & np.isfinite(feasible[y[0]])]
    ax = _Axis(feasible[x[0]].to_numpy(float), LEFT, WIDTH - RIGHT)
    ay = _Axis(feasible[y[0]].to_numpy(float), HEIGHT - BOTTOM, TOP)
    parts = [
        f"<svg class='explorer' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' role='img'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' "
        f"height='{HEIGHT - TOP - BOTTOM}' fill='none' stroke='#999'/>",
    ]
    for value, text in ax.ticks():
        px = float(ax.px(np.array([value]))[0])
        parts.append(
            f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{TOP}' y2='{HEIGHT - BOTTOM}' stroke='#eee'/>"
            f"<text x='{px:.1f}' y='{HEIGHT - BOTTOM + 16}' font-size='11' "
            f"text-anchor='middle'>{text}</text>"
        )
    for value, text in ay.ticks():
        py = float(ay.px(np.array([value]))[0])
        parts.append(
            f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{py:.1f}' y2='{py:.1f}' stroke='#eee'/>"
            f"<text x='{LEFT - 6}' y='{py + 4:.1f}' font-size='11' text-anchor='end'>{text}</text>"
        )
    parts.append(
        f"<text x='{(LEFT + WIDTH - RIGHT) / 2}' y='{HEIGHT - 18}' font-size='13' "
        f"text-anchor='middle'>{html.escape(axis_label(*x, units))}"
        f"{' (log)' if ax.log else ''}</text>"
        f"<text transform='translate(18,{(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)' "
        f"font-size='13' text-anchor='middle'>{html.escape(axis_label(*y, units))}"
        f"{' (log)' if ay.log else ''}</text>"
    )
    front_index: dict[object, int] = {}
    for i, group in enumerate(groups):
        sub = feasible[feasible["group"] == group]
        if len(sub):
            for idx in sub.index[nondominated_mask(minimisation_matrix(sub, [x, y]))]:
                front_index.setdefault(idx, i)
    cloud = feasible[~feasible.index.isin(list(front_index))]
    if len(cloud) > MAX_CLOUD:
        cloud = cloud.iloc[np.linspace(0, len(cloud) - 1, MAX_CLOUD).astype(int)]
    layers = [(cloud, None), (feasible.loc[list(front_index)], front_index)]
    for rows, fronts in layers:
        xs, ys = ax.px(rows[x[0]].to_numpy(float)), ay.px(rows[y[0]].to_numpy(float))
        for (idx, row), cx, cy in zip(rows.iterrows(), xs, ys):
            if not (np.isfinite(cx) and np.isfinite(cy)):
                continue
            tip = html.escape(_tip(row, x[0], y[0], units, errors or {}), quote=True)
            if fronts is None:
                style = "r='2.5' fill='#999' fill-opacity='0.45' class='cloud'"
            else:
                color = COLORS[fronts[idx] % len(COLORS)]
                style = f"r='5' fill='{color}' stroke='#222' stroke-width='0.6' class='pareto'"
            parts.append(
                f"<circle cx='{cx:.1f}' cy='{cy:.1f}' {style} data-tip='{tip}'>"
                f"<title>{tip}</title></circle>"
            )
    parts.append("</svg>")
    legend = " ".join(
        f"<span style='color:{COLORS[i % len(COLORS)]}'>&#9679;</span> {html.escape(g)} front"
        for i, g in enumerate(groups)
    )
    return (
        f"<figure>{''.join(parts)}<figcaption class='note'>{legend}; grey: other feasible designs. "
        f"Hover a point for its architecture.</figcaption></figure>"
    )
