"""Recursive FPGA accelerator (EDD section 2.4.1): one IP per layer type, shared by all layers.

* Layers of one type share an IP and so one bit-width, the widest they need (eq. 2.10).
* End-to-end latency is the sum over layers (eq. 2.6).
* Each IP's DSPs are counted once however many layers use it (eqs. 2.11-2.12; the tanh of
  eq. 2.11 is its differentiable stand-in for "1 if used").

:func:`allocate` splits the DSP budget between IPs: starting from one lane each, it repeatedly
doubles the parallel factor of the IP whose doubling saves the most latency per resource spent
(a heap keyed by that ratio), while the DSP and LUT budgets allow.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from dse.simulators.fpga.model import LUT_PER_LANE, LayerTable, lookup

MAX_PF = 16


@dataclass(frozen=True)
class RecursiveDesign:
    ips: tuple[str, ...]
    index: np.ndarray  # IP of each layer
    compute_s: np.ndarray  # compute seconds per layer at the allocated parallelism
    mem_s: np.ndarray  # DDR seconds per layer
    ip_bits: np.ndarray  # shared bit-width per IP (eq. 2.10)
    pf: np.ndarray  # parallel factor per IP (2**pf lanes)
    layer_s: np.ndarray  # seconds per layer
    dsp: float  # eq. 2.12
    lut: float
    feasible: bool

    @property
    def latency_s(self) -> float:
        return float(self.layer_s.sum())  # eq. 2.6


def layer_seconds(work_s: np.ndarray, mem_s: np.ndarray, lanes: np.ndarray, overlap: bool,
                  tiles: int = 16) -> np.ndarray:
    """Compute time at ``lanes`` parallelism combined with the DDR time of each layer, which is
    moved in ``tiles`` equal tiles. With double buffering the next tile loads while the current
    one computes, a two-stage flow shop: ``max(c, m) + min(c, m) / tiles``. Without it, ``c + m``.
    The discrete-event simulator (des.py) reproduces both exactly."""
    comp = work_s / lanes
    if not overlap:
        return comp + mem_s
    return np.maximum(comp, mem_s) + np.minimum(comp, mem_s) / tiles


def allocate(layers: LayerTable, *, clock_hz: float, dsp_budget: float, lut_budget: float,
             phi: dict[int, float], psi: dict[int, float], mem_s: np.ndarray,
             overlap: bool = True, tiles: int = 16) -> RecursiveDesign:
    ips = tuple(sorted(set(layers.ip)))
    position = {t: i for i, t in enumerate(ips)}
    index = np.array([position[t] for t in layers.ip], dtype=np.int64)
    ip_bits = np.zeros(len(ips), dtype=np.int64)
    np.maximum.at(ip_bits, index, layers.bits)  # eq. 2.10: a shared IP runs at its widest layer's bits
    work_s = lookup(phi, ip_bits[index]) * layers.work / clock_hz  # seconds at one lane (eq. 2.13)
    dsp_per_lane = lookup(psi, ip_bits)  # eq. 2.15
    lut_per_lane = np.where(dsp_per_lane == 0, LUT_PER_LANE, 0.0)
    pf = np.zeros(len(ips), dtype=np.int64)
    feasible = dsp_per_lane.sum() <= dsp_budget and lut_per_lane.sum() <= lut_budget
    if feasible:
        # IP latency at every parallel factor at once: one_hot (IPs x layers) @ (layers x pf)
        lanes_all = 2.0 ** np.arange(MAX_PF + 2)
        per_layer = layer_seconds(work_s[:, None], mem_s[:, None], lanes_all[None, :], overlap, tiles)
        one_hot = (index[None, :] == np.arange(len(ips))[:, None]).astype(float)
        ip_seconds = (one_hot @ per_layer).tolist()

        dsp_lane, lut_lane = dsp_per_lane.tolist(), lut_per_lane.tolist()  # plain floats: fast scalars
        level = [0] * len(ips)

        def entry(i: int) -> tuple[float, int, int]:
            """Heap entry: (-latency saved per unit of resource by doubling IP i, i, its pf)."""
            p = level[i]
            saved = ip_seconds[i][p] - ip_seconds[i][p + 1]
            cost = (dsp_lane[i] / dsp_budget + lut_lane[i] / lut_budget) * 2.0 ** p
            return (-saved / cost if cost > 0 else -np.inf) if saved > 0 else 0.0, i, p

        heap = [e for e in map(entry, range(len(ips))) if e[0] < 0]
        heapq.heapify(heap)
        dsp_used, lut_used = sum(dsp_lane), sum(lut_lane)
        while heap:
            _, i, at = heapq.heappop(heap)
            if at != level[i] or level[i] >= MAX_PF:
                continue
            lanes = 2.0 ** level[i]
            extra_dsp, extra_lut = dsp_lane[i] * lanes, lut_lane[i] * lanes
            if dsp_used + extra_dsp > dsp_budget or lut_used + extra_lut > lut_budget:
                continue  # budgets only shrink, so this IP can never double again
            level[i] += 1
            dsp_used += extra_dsp
            lut_used += extra_lut
            e = entry(i)
            if e[0] < 0:
                heapq.heappush(heap, e)
        pf = np.array(level, dtype=np.int64)
    lanes = 2.0 ** pf
    return RecursiveDesign(
        ips, index, work_s / lanes[index], mem_s, ip_bits, pf, layer_seconds(work_s, mem_s, lanes[index], overlap, tiles),
        float(dsp_per_lane @ lanes), float(lut_per_lane @ lanes), bool(feasible),
    )
