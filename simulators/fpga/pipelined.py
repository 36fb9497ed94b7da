"""Pipelined FPGA accelerator (EDD section 2.4.1; DNNBuilder-style): one stage per layer.

* Each layer has its own IP, bit-width and parallel factor; frames stream through the stages.
* Throughput is set by the slowest stage (eq. 2.7), and by the DDR traffic of all stages
  together, which share the board's bandwidth.
* Resources are the sum over stages (eq. 2.9).

:func:`allocate` finds the smallest feasible frame period: for a target period ``T`` each stage
needs the smallest power-of-two parallelism that brings it under ``T``, and the DSP (and LUT)
cost of that is non-increasing in ``T``, so a binary search over the candidate periods
``work_l / 2**k`` gives the balanced, fastest design under the budget, vectorised in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.simulators.fpga.model import LUT_PER_LANE, LayerTable, lookup

MAX_PF = 16


@dataclass(frozen=True)
class PipelinedDesign:
    pf: np.ndarray  # parallel factor per stage
    compute_s: np.ndarray  # compute seconds per stage and frame
    mem_s: np.ndarray  # DDR seconds per stage and frame
    stage_s: np.ndarray  # seconds per stage and frame
    ddr_period_s: float  # all stages' DDR traffic per frame / bandwidth
    dsp: float  # eq. 2.9
    lut: float
    feasible: bool

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


def _lanes_for(work_s: np.ndarray, period: float) -> np.ndarray:
    pf = np.ceil(np.log2(np.maximum(work_s / period, 1.0)) - 1e-12)
    return np.clip(pf, 0, MAX_PF)


def allocate(layers: LayerTable, *, clock_hz: float, dsp_budget: float, lut_budget: float,
             phi: dict[int, float], psi: dict[int, float], mem_s: np.ndarray,
             overlap: bool = True) -> PipelinedDesign:
    work_s = lookup(phi, layers.bits) * layers.work / clock_hz  # eq. 2.13 at one lane
    dsp_per_lane = lookup(psi, layers.bits)  # eq. 2.15
    lut_per_lane = np.where(dsp_per_lane == 0, LUT_PER_LANE, 0.0)
    ddr_period = float(mem_s.sum())

    def cost(pf: np.ndarray) -> tuple[float, float]:
        lanes = 2.0 ** pf
        return float(dsp_per_lane @ lanes), float(lut_per_lane @ lanes)

    def fits(pf: np.ndarray) -> bool:
        d, l_ = cost(pf)
        return d <= dsp_budget and l_ <= lut_budget

    zero = np.zeros(len(layers))
    if len(layers) == 0 or not fits(zero):
        pf = zero
        feasible = len(layers) == 0  # not even one lane per stage fits the budget
    else:
        ks = 2.0 ** np.arange(MAX_PF + 1)
        candidates = np.unique((work_s[:, None] / ks[None, :]).ravel())
        candidates = candidates[candidates > 0]
        lo, hi = 0, len(candidates) - 1  # candidates[hi] (all stages at one lane) always fits
        while lo < hi:
            mid = (lo + hi) // 2
            if fits(_lanes_for(work_s, candidates[mid])):
                hi = mid
            else:
                lo = mid + 1
        pf = _lanes_for(work_s, candidates[lo])
        feasible = True
    comp = work_s / 2.0 ** pf
    stage = np.maximum(comp, mem_s) if overlap else comp + mem_s
    dsp, lut = cost(pf)
    return PipelinedDesign(pf.astype(np.int64), comp, mem_s, stage, ddr_period, dsp, lut, bool(feasible))
