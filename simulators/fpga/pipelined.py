"""Pipelined FPGA accelerator (EDD section 2.4.1; DNNBuilder-style): one stage per layer.

* Each layer has its own IP, bit-width and parallel factor; frames stream through the stages.
* Throughput is set by the slowest stage (eq. 2.7), and by the DDR traffic of all stages
  together, which share the board's bandwidth. A stage spends a fixed ``overhead_s`` per frame
  (control, set-up; 0 by default) on top of its compute.
* Resources are the sum over stages (eq. 2.9).
* Lanes per stage are powers of two (eq. 2.13's ``2**pf``) or, with ``integer_lanes``, any
  integer, as DNNBuilder unrolls channels by kernels; either way one DSP48 does one 16-bit (or,
  with Psi(8) = 0.5, two 8-bit) multiply-accumulates per cycle.

:func:`allocate_population` finds each graph's smallest feasible frame period: for a target
compute period ``T`` each stage needs the smallest power-of-two parallelism that brings it under
``T``, and the DSP (and LUT) cost of that is non-increasing in ``T``, so a bisection on ``T``
finds the balanced, fastest design under the budget. A single graph is binary-searched over the
candidate periods ``work_l / 2**k`` exactly; the graphs of a population are bisected together
in numpy, to a relative precision of 1e-9 of the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.simulators.fpga.model import LUT_PER_LANE, LayerTable, lookup

MAX_PF = 16
_REL_TOL = 1e-9


@dataclass(frozen=True)
class PipelinedDesign:
    """The accelerator for one graph."""

    lanes: np.ndarray  # parallel lanes per stage (2**pf, or any integer with integer parallelism)
    compute_s: np.ndarray  # compute seconds per stage and frame
    mem_s: np.ndarray  # DDR seconds per stage and frame
    stage_s: np.ndarray  # seconds per stage and frame, overhead included
    ddr_period_s: float  # all stages' DDR traffic per frame / bandwidth
    dsp: float  # eq. 2.9
    lut: float
    feasible: bool
    overhead_s: float = 0.0  # fixed seconds per stage and frame

    @property
    def pf(self) -> np.ndarray:
        """Parallel factor per stage: log2 of its lanes (eq. 2.13)."""
        return np.log2(self.lanes)

    @property
    def period_s(self) -> float:
        """Seconds between frames in steady state (eq. 2.7, bounded by shared DDR)."""
        return float(max(self.stage_s.max(initial=0.0), self.ddr_period_s))

    @property
    def throughput_fps(self) -> float:
        return 1.0 / self.period_s

    @property
    def latency_s(self) -> float:
        """One frame through the empty pipeline: the sum of the stage times."""
        return float(self.stage_s.sum())

    @property
    def busy_s(self) -> np.ndarray:
        """Seconds each stage holds a frame: its set-up plus its compute (what the DES runs)."""
        return self.compute_s + self.overhead_s


@dataclass(frozen=True)
class PipelinedPopulation:
    """Pipelines for every graph of a :class:`LayerTable`: per-stage arrays and per-graph totals."""

    layers: LayerTable
    lanes: np.ndarray  # per stage
    compute_s: np.ndarray
    mem_s: np.ndarray
    stage_s: np.ndarray
    ddr_period_s: np.ndarray  # per graph
    dsp: np.ndarray  # per graph (eq. 2.9)
    lut: np.ndarray
    feasible: np.ndarray
    overhead_s: float

    @property
    def period_s(self) -> np.ndarray:
        return np.maximum(self.layers.per_graph_max(self.stage_s), self.ddr_period_s)

    @property
    def latency_s(self) -> np.ndarray:
        return self.layers.per_graph(self.stage_s)

    def design(self, i: int) -> PipelinedDesign:
        s = self.layers.owner == i
        return PipelinedDesign(
            self.lanes[s],
            self.compute_s[s],
            self.mem_s[s],
            self.stage_s[s],
            float(self.ddr_period_s[i]),
            float(self.dsp[i]),
            float(self.lut[i]),
            bool(self.feasible[i]),
            self.overhead_s,
        )


def stage_seconds(
    compute_s: np.ndarray, mem_s: np.ndarray, overlap: bool, overhead_s: float = 0.0
) -> np.ndarray:
    """Seconds per frame of each stage: set-up plus compute, overlapping its DDR traffic or not."""
    busy = compute_s + overhead_s
    return np.maximum(busy, mem_s) if overlap else busy + mem_s


def _lanes_for(work_s: np.ndarray, period: np.ndarray, integer: bool = False) -> np.ndarray:
    """The fewest lanes that bring each stage's compute under ``period``: a power of two
    (eq. 2.13's 2**pf), or any integer (DNNBuilder-style channel x kernel unrolling)."""
    need = np.maximum(work_s / period, 1.0)
    if integer:
        return np.minimum(np.ceil(need * (1 - 1e-12)), 2.0**MAX_PF)
    return 2.0 ** np.clip(np.ceil(np.log2(need) - 1e-12), 0, MAX_PF)


def cost_at(
    layers: LayerTable,
    pf: np.ndarray,
    *,
    clock_hz: float,
    phi: dict[int, float],
    psi: dict[int, float],
    mem_s: np.ndarray | None = None,
    overlap: bool = True,
    overhead_s: float = 0.0,
) -> tuple[float, float, float]:
    """(frame period seconds, frame latency seconds, DSPs) of one graph's pipeline at the given
    parallel factor of each stage (real-valued, ``2**pf`` lanes), with no allocation: eqs. 2.7,
    2.9 and 2.13-2.15 (what EDD's differentiable cost reproduces at one-hot choices)."""
    if layers.n_graphs != 1 or len(pf) != len(layers):
        raise ValueError("cost_at takes one graph's layers and one parallel factor per stage")
    lanes = 2.0 ** np.asarray(pf, dtype=float)
    comp = lookup(phi, layers.bits) * layers.work / clock_hz / lanes
    mem = np.zeros(len(layers)) if mem_s is None else mem_s
    stage = stage_seconds(comp, mem, overlap, overhead_s)
    period = max(float(stage.max(initial=0.0)), float(mem.sum()))
    return period, float(stage.sum()), float(np.sum(lookup(psi, layers.bits) * lanes))


def allocate_population(
    layers: LayerTable,
    *,
    clock_hz: float,
    dsp_budget: float,
    lut_budget: float,
    phi: dict[int, float],
    psi: dict[int, float],
    mem_s: np.ndarray,
    overlap: bool = True,
    overhead_s: float = 0.0,
    integer_lanes: bool = False,
) -> PipelinedPopulation:
    work_s = lookup(phi, layers.bits) * layers.work / clock_hz  # eq. 2.13 at one lane
    dsp_lane = lookup(psi, layers.bits)  # eq. 2.15
    lut_lane = np.where(dsp_lane == 0, LUT_PER_LANE, 0.0)

    def fits(lanes: np.ndarray) -> np.ndarray:
        return (layers.per_graph(dsp_lane * lanes) <= dsp_budget) & (
            layers.per_graph(lut_lane * lanes) <= lut_budget
        )

    feasible = fits(np.ones(len(layers)))  # not even one lane per stage may fit
    if layers.n_graphs == 1 and not integer_lanes:
        lanes = _exact_one(work_s, fits) if feasible[0] else np.ones(len(layers))
    else:
        lanes = _bisect(layers, work_s, fits, feasible, integer_lanes)
    comp = work_s / lanes
    return PipelinedPopulation(
        layers,
        lanes,
        comp,
        mem_s,
        stage_seconds(comp, mem_s, overlap, overhead_s),
        layers.per_graph(mem_s),
        layers.per_graph(dsp_lane * lanes),
        layers.per_graph(lut_lane * lanes),
        feasible,
        overhead_s,
    )


def _exact_one(work_s: np.ndarray, fits) -> np.ndarray:
    """One graph: binary search over the candidate periods ``work_l / 2**k`` themselves."""
    candidates = np.unique((work_s[:, None] / 2.0 ** np.arange(MAX_PF + 1)[None, :]).ravel())
    candidates = candidates[candidates > 0]
    if len(candidates) == 0:
        return np.ones(len(work_s))
    lo, hi = 0, len(candidates) - 1  # candidates[hi] (every stage at one lane) always fits
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(_lanes_for(work_s, candidates[mid]))[0]:
            hi = mid
        else:
            lo = mid + 1
    return _lanes_for(work_s, candidates[lo])


def _bisect(
    layers: LayerTable, work_s: np.ndarray, fits, feasible: np.ndarray, integer: bool
) -> np.ndarray:
    """Every graph at once: bisection on log2 of the compute period."""
    owner = layers.owner
    # bisect log2(period) per graph between "every stage at 2**MAX_PF lanes" and "one lane each"
    slowest = np.maximum(layers.per_graph_max(work_s), 1e-300)
    hi = np.log2(slowest)  # always fits (pf 0 everywhere) for feasible graphs
    lo = hi - MAX_PF - 1.0  # below the fastest period any allocation reaches: never fits
    while np.any(hi - lo > _REL_TOL):
        mid = 0.5 * (lo + hi)
        ok = fits(_lanes_for(work_s, 2.0 ** mid[owner], integer))
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return np.where(feasible[owner], _lanes_for(work_s, 2.0 ** hi[owner], integer), 1.0)


def allocate(layers: LayerTable, **kw) -> PipelinedDesign:
    """The pipeline for a one-graph layer table (see :func:`allocate_population`)."""
    if layers.n_graphs != 1:
        raise ValueError(f"allocate takes one graph's layers, got {layers.n_graphs} graphs")
    return allocate_population(layers, **kw).design(0)
