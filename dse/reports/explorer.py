"""Interactive Pareto explorer: an inline SVG scatter whose points name their architecture.

Each design is an SVG circle carrying its architecture id, run, ``eval_id`` and coordinates;
a few lines of script in the page show them beside the pointer on hover (and the circle's
``<title>`` gives the same text as a native tooltip where scripts are off). The wheel zooms
around the pointer, a drag pans, a double click or the reset button restores the view; ticks
sit at round numbers (1, 2 or 5 times a power of ten, :func:`nice_ticks`) and are recomputed by
the same rule as the view changes. Nothing is fetched at view time, so the page stays one
self-contained file. Axes follow :mod:`dse.reports.axes`.
"""

from __future__ import annotations

import html
import math
import re
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
  function niceStep(span) {
    var raw = span / 5, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (raw <= steps[i] * mag) return steps[i] * mag; }
    return 10 * mag;
  }
  function label(v, step) {
    var a = Math.abs(v);
    if (a >= 1e4) {
      var k = Math.min(Math.floor(Math.log10(a) / 3), 4), s = Math.pow(10, 3 * k);
      var d = Math.max(0, -Math.floor(Math.log10(step / s) + 1e-9));
      return (v / s).toFixed(Math.min(d, 3)) + ' kMGT'[k];
    }
    return v.toFixed(Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))));
  }
  function logLabel(v) {
    var k = Math.floor(Math.log10(v) + 1e-9), m = Math.round(v / Math.pow(10, k));
    if (k >= -2 && k <= 3) return String(m * Math.pow(10, k)).replace(/(\\.\\d*?)0+$/, '$1');
    return m + 'e' + k;
  }
  function ticks(lo, hi, log) {
    var out = [];
    if (log) {
      var mult = (hi - lo) < 1.5 ? [1, 2, 5] : [1];
      for (var k = Math.floor(lo); k <= Math.ceil(hi); k++) {
        mult.forEach(function (m) {
          var t = Math.log10(m) + k;
          if (t >= lo && t <= hi) out.push([t, logLabel(Math.pow(10, t))]);
        });
      }
      return out;
    }
    var step = niceStep(hi - lo);
    for (var j = Math.ceil(lo / step); j * step <= hi + 1e-12 * Math.abs(hi); j++) {
      out.push([j * step, label(j * step, step)]);
    }
    return out;
  }
  document.querySelectorAll('svg.explorer').forEach(function (svg) {
    var d = svg.dataset, NS = 'http://www.w3.org/2000/svg';
    var x0 = [+d.xlo, +d.xhi], y0 = [+d.ylo, +d.yhi], xlog = d.xlog === '1', ylog = d.ylog === '1';
    var px = [+d.left, +d.right], py = [+d.bottom, +d.top];
    var view = {x: x0.slice(), y: y0.slice()};
    var circles = svg.querySelectorAll('circle');
    var tickGroup = svg.querySelector('g.ticks');
    function toPx(v, dom, pix) {
      return pix[0] + (v - dom[0]) / (dom[1] - dom[0]) * (pix[1] - pix[0]);
    }
    function fromPx(p, dom, pix) {
      return dom[0] + (p - pix[0]) / (pix[1] - pix[0]) * (dom[1] - dom[0]);
    }
    function draw() {
      circles.forEach(function (c) {
        c.setAttribute('cx', toPx(+c.dataset.vx, view.x, px).toFixed(1));
        c.setAttribute('cy', toPx(+c.dataset.vy, view.y, py).toFixed(1));
      });
      while (tickGroup.firstChild) tickGroup.removeChild(tickGroup.firstChild);
      ticks(view.x[0], view.x[1], xlog).forEach(function (t) {
        var p = toPx(t[0], view.x, px);
        var line = document.createElementNS(NS, 'line');
        line.setAttribute('x1', p); line.setAttribute('x2', p);
        line.setAttribute('y1', py[1]); line.setAttribute('y2', py[0]);
        line.setAttribute('stroke', '#eee');
        var text = document.createElementNS(NS, 'text');
        text.setAttribute('x', p); text.setAttribute('y', py[0] + 16);
        text.setAttribute('font-size', '11'); text.setAttribute('text-anchor', 'middle');
        text.setAttribute('class', 'xtick'); text.textContent = t[1];
        tickGroup.appendChild(line); tickGroup.appendChild(text);
      });
      ticks(view.y[0], view.y[1], ylog).forEach(function (t) {
        var p = toPx(t[0], view.y, py);
        var line = document.createElementNS(NS, 'line');
        line.setAttribute('x1', px[0]); line.setAttribute('x2', px[1]);
        line.setAttribute('y1', p); line.setAttribute('y2', p);
        line.setAttribute('stroke', '#eee');
        var text = document.createElementNS(NS, 'text');
        text.setAttribute('x', px[0] - 6); text.setAttribute('y', p + 4);
        text.setAttribute('font-size', '11'); text.setAttribute('text-anchor', 'end');
        text.setAttribute('class', 'ytick'); text.textContent = t[1];
        tickGroup.appendChild(line); tickGroup.appendChild(text);
      });
    }
    function svgPoint(e) {
      var r = svg.getBoundingClientRect();
      return [(e.clientX - r.left) * svg.viewBox.baseVal.width / r.width,
              (e.clientY - r.top) * svg.viewBox.baseVal.height / r.height];
    }
    svg.addEventListener('wheel', function (e) {
      e.preventDefault();
      var p = svgPoint(e), f = e.deltaY < 0 ? 1 / 1.25 : 1.25;
      var cx = fromPx(p[0], view.x, px), cy = fromPx(p[1], view.y, py);
      view.x = [cx + (view.x[0] - cx) * f, cx + (view.x[1] - cx) * f];
      view.y = [cy + (view.y[0] - cy) * f, cy + (view.y[1] - cy) * f];
      draw();
    }, {passive: false});
    var drag = null;
    svg.addEventListener('mousedown', function (e) {
      drag = {p: svgPoint(e), x: view.x, y: view.y};
    });
    window.addEventListener('mouseup', function () { drag = null; });
    svg.addEventListener('mousemove', function (e) {
      if (!drag) return;
      var p = svgPoint(e);
      var dx = (p[0] - drag.p[0]) / (px[1] - px[0]) * (drag.x[1] - drag.x[0]);
      var dy = (p[1] - drag.p[1]) / (py[1] - py[0]) * (drag.y[1] - drag.y[0]);
      view.x = [drag.x[0] - dx, drag.x[1] - dx];
      view.y = [drag.y[0] - dy, drag.y[1] - dy];
      draw();
    });
    function reset() { view = {x: x0.slice(), y: y0.slice()}; draw(); }
    svg.addEventListener('dblclick', reset);
    var button = svg.parentNode.querySelector('button.reset');
    if (button) button.addEventListener('click', reset);
  });
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
    "svg.explorer{border:1px solid #eee;background:#fff;cursor:grab;user-select:none}"
    "svg.explorer circle:hover{stroke:#000;"
    "stroke-width:2}#dse-tip{position:fixed;display:none;background:#222;color:#fff;"
    "padding:.3em .5em;border-radius:3px;font:12px monospace;white-space:pre;pointer-events:none;"
    "z-index:10}"
)


def nice_step(span: float) -> float:
    """The tick spacing of about five ticks over ``span``: 1, 2 or 5 times a power of ten."""
    raw = span / 5 if span > 0 else 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if raw <= m * mag)


def tick_label(v: float, step: float) -> str:
    """A round tick's label, with the decimals its step needs: 0.25, 1500, 1.5k, 2M."""
    a = abs(v)
    if a >= 1e4:
        k = min(int(math.log10(a) // 3), 4)
        scale = 10.0 ** (3 * k)
        digits = max(0, -math.floor(math.log10(step / scale) + 1e-9))
        return f"{v / scale:.{min(digits, 3)}f}{' kMGT'[k]}"
    return f"{v:.{max(0, min(6, -math.floor(math.log10(step) + 1e-9)))}f}"


def _log_label(v: float) -> str:
    k = math.floor(math.log10(v) + 1e-9)
    m = round(v / 10.0**k)
    if -2 <= k <= 3:
        return f"{m * 10.0**k:.{max(0, -k)}f}"
    return f"{m}e{k}"


def nice_ticks(lo: float, hi: float, log: bool) -> list[tuple[float, str]]:
    """Ticks at round numbers in [lo, hi] (in axis space: log10 of the value on a log axis),
    as (position, label): multiples of :func:`nice_step`, or decades (and 2 and 5 times them
    when the axis spans less than 1.5 decades). The page's script applies the same rule."""
    if log:
        mult = (1, 2, 5) if hi - lo < 1.5 else (1,)
        out = []
        for k in range(math.floor(lo), math.ceil(hi) + 1):
            for m in mult:
                t = math.log10(m) + k
                if lo <= t <= hi:
                    out.append((t, _log_label(10.0**t)))
        return out
    step = nice_step(hi - lo)
    first, last = math.ceil(lo / step), math.floor(hi / step + 1e-12)
    return [(k * step, tick_label(k * step, step)) for k in range(first, last + 1)]


class _Axis:
    def __init__(self, values: np.ndarray, lo_px: float, hi_px: float):
        self.log = use_log(values)
        v = values[np.isfinite(values)]
        v = np.log10(v) if self.log else v
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        pad = (hi - lo) * 0.04 or 0.5
        self.lo, self.hi, self.lo_px, self.hi_px = lo - pad, hi + pad, lo_px, hi_px

    def space(self, values: np.ndarray) -> np.ndarray:
        """Values in axis space (log10 on a log axis; NaN where a log axis cannot show one)."""
        return np.log10(np.where(values > 0, values, np.nan)) if self.log else values

    def px(self, values: np.ndarray) -> np.ndarray:
        v = self.space(values)
        return self.lo_px + (v - self.lo) / (self.hi - self.lo) * (self.hi_px - self.lo_px)

    def ticks(self) -> list[tuple[float, str]]:
        """(value, label) of the initial view's ticks."""
        return [
            (10.0**t if self.log else t, text) for t, text in nice_ticks(self.lo, self.hi, self.log)
        ]


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
    # every explorer clips to the same plot rectangle, so ids may repeat; deterministic output
    clip = "clip-" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{x[0]}-{y[0]}")
    parts = [
        f"<svg class='explorer' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' role='img' "
        f"data-xlo='{ax.lo!r}' data-xhi='{ax.hi!r}' data-xlog='{int(ax.log)}' "
        f"data-ylo='{ay.lo!r}' data-yhi='{ay.hi!r}' data-ylog='{int(ay.log)}' "
        f"data-left='{LEFT}' data-right='{WIDTH - RIGHT}' data-top='{TOP}' "
        f"data-bottom='{HEIGHT - BOTTOM}'>",
        f"<defs><clipPath id='{clip}'><rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' "
        f"height='{HEIGHT - TOP - BOTTOM}'/></clipPath></defs>",
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' "
        f"height='{HEIGHT - TOP - BOTTOM}' fill='none' stroke='#999'/>",
        "<g class='ticks'>",
    ]
    for value, text in ax.ticks():
        px = float(ax.px(np.array([value]))[0])
        parts.append(
            f"<line x1='{px:.1f}' x2='{px:.1f}' y1='{TOP}' y2='{HEIGHT - BOTTOM}' stroke='#eee'/>"
            f"<text x='{px:.1f}' y='{HEIGHT - BOTTOM + 16}' font-size='11' "
            f"text-anchor='middle' class='xtick'>{text}</text>"
        )
    for value, text in ay.ticks():
        py = float(ay.px(np.array([value]))[0])
        parts.append(
            f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{py:.1f}' y2='{py:.1f}' stroke='#eee'/>"
            f"<text x='{LEFT - 6}' y='{py + 4:.1f}' font-size='11' text-anchor='end' "
            f"class='ytick'>{text}</text>"
        )
    parts.append("</g>")
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
    parts.append(f"<g clip-path='url(#{clip})'>")
    for rows, fronts in layers:
        xs, ys = ax.px(rows[x[0]].to_numpy(float)), ay.px(rows[y[0]].to_numpy(float))
        vxs, vys = ax.space(rows[x[0]].to_numpy(float)), ay.space(rows[y[0]].to_numpy(float))
        for (idx, row), cx, cy, vx, vy in zip(rows.iterrows(), xs, ys, vxs, vys):
            if not (np.isfinite(cx) and np.isfinite(cy)):
                continue
            tip = html.escape(_tip(row, x[0], y[0], units, errors or {}), quote=True)
            if fronts is None:
                style = "r='2.5' fill='#999' fill-opacity='0.45' class='cloud'"
            else:
                color = COLORS[fronts[idx] % len(COLORS)]
                style = f"r='5' fill='{color}' stroke='#222' stroke-width='0.6' class='pareto'"
            parts.append(
                f"<circle cx='{cx:.1f}' cy='{cy:.1f}' {style} data-vx='{float(vx)!r}' "
                f"data-vy='{float(vy)!r}' "
                f"data-tip='{tip}'><title>{tip}</title></circle>"
            )
    parts.append("</g></svg>")
    legend = " ".join(
        f"<span class='legend'><span style='color:{COLORS[i % len(COLORS)]}'>&#9679;</span> "
        f"{html.escape(g)} front</span>"
        for i, g in enumerate(groups)
    )
    return (
        f"<figure>{''.join(parts)}<figcaption class='note'>{legend}; grey: other feasible designs. "
        "Hover a point for its architecture; the wheel zooms, a drag pans, a double click "
        "<button type='button' class='reset'>reset</button>s the view.</figcaption></figure>"
    )
