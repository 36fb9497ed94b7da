"""Recursive FPGA accelerator (EDD section 2.4.1): one IP per layer type, shared by all layers.

* Layers of one type share an IP and so one bit-width, the widest they need (eq. 2.10).
* End-to-end latency is the sum over layers (eq. 2.6), each layer plus a fixed
  ``overhead_s`` (control and DMA set-up; 0 by default).
* Each IP's DSPs are counted once however many layers use it (eqs. 2.11-2.12; the tanh of
  eq. 2.11 is its differentiable stand-in for "1 if used").

:func:`allocate_population` splits each graph's DSP budget between its IPs: starting from one lane
each, it repeatedly doubles the parallel factor of the IP whose doubling saves the most latency
per resource spent, while the DSP and LUT budgets allow; an IP whose doubling no longer fits
drops out (budgets only shrink). All graphs of a population advance together, one doubling per
graph per numpy round, so a population costs a few numpy passes per doubling step; a single
graph runs the same greedy with a heap in plain Python, which is faster at that size.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dse.simulators.fpga.model import LUT_PER_LANE, LayerTable, lookup

MAX_PF = 16
_SCALAR_GRAPHS = 4


@dataclass(frozen=True)
class RecursiveDesign:
    """The accelerator for one graph."""

    ips: tuple[str, ...]
    index: np.ndarray  # IP of each layer
    compute_s: np.ndarray  # compute seconds per layer at the allocated parallelism
    mem_s: np.ndarray  # DDR seconds per layer
    ip_bits: np.ndarray  # shared bit-width per IP (eq. 2.10)
    pf: np.ndarray  # parallel factor per IP (2**pf lanes)
    layer_s: np.ndarray  # seconds per layer, overhead included
    dsp: float  # eq. 2.12
    lut: float
    feasible: bool
    overhead_s: float = 0.0  # fixed seconds per layer

    @property
    def latency_s(self) -> float:
        return float(self.layer_s.sum())  # eq. 2.6


@dataclass(frozen=True)
class RecursivePopulation:
    """Accelerators for every graph of a :class:`LayerTable`: per-IP-instance arrays (instances
    ordered by graph, then IP name), per-layer arrays and per-graph totals."""

    layers: LayerTable
    group: np.ndarray  # IP instance of each layer
    group_owner: np.ndarray  # graph of each IP instance
    group_ip: np.ndarray  # IP code of each instance
    ip_bits: np.ndarray  # per instance (eq. 2.10)
    pf: np.ndarray  # per instance
    compute_s: np.ndarray  # per layer
    mem_s: np.ndarray  # per layer
    layer_s: np.ndarray  # per layer
    latency_s: np.ndarray  # per graph (eq. 2.6)
    dsp: np.ndarray  # per graph (eq. 2.12)
    lut: np.ndarray  # per graph
    feasible: np.ndarray  # per graph: one lane per IP fits the budgets
    overhead_s: float

    def design(self, i: int) -> RecursiveDesign:
        """Graph ``i``'s accelerator, with IP and layer indices local to it."""
        layer = self.layers.owner == i
        groups = np.flatnonzero(self.group_owner == i)
        names = tuple(self.layers.ip_names[c] for c in self.group_ip[groups])
        local = self.group[layer] - (groups[0] if len(groups) else 0)
        return RecursiveDesign(
            names,
            local,
            self.compute_s[layer],
            self.mem_s[layer],
            self.ip_bits[groups],
            self.pf[groups],
            self.layer_s[layer],
            float(self.dsp[i]),
            float(self.lut[i]),
            bool(self.feasible[i]),
            self.overhead_s,
        )


def layer_seconds(
    work_s: np.ndarray,
    mem_s: np.ndarray,
    lanes: np.ndarray,
    overlap: bool,
    tiles: int = 16,
    overhead_s: float = 0.0,
) -> np.ndarray:
    """Compute time at ``lanes`` parallelism combined with the DDR time of each layer, which is
    moved in ``tiles`` equal tiles, after ``overhead_s`` of set-up. With double buffering the next
    tile loads while the current one computes, a two-stage flow shop:
    ``max(c, m) + min(c, m) / tiles``. Without it, ``c + m``. The discrete-event simulator
    (des.py) reproduces both exactly."""
    comp = work_s / lanes
    if not overlap:
        return overhead_s + comp + mem_s
    return overhead_s + np.maximum(comp, mem_s) + np.minimum(comp, mem_s) / tiles


def cost_at(
    layers: LayerTable,
    pf: Mapping[str, float],
    *,
    clock_hz: float,
    phi: dict[int, float],
    psi: dict[int, float],
    mem_s: np.ndarray | None = None,
    overlap: bool = True,
    tiles: int = 16,
    overhead_s: float = 0.0,
) -> tuple[float, float]:
    """(latency seconds, DSPs) of one graph's recursive accelerator at the given parallel factor
    of each IP (by IP name; real-valued, ``2**pf`` lanes), with no allocation: eqs. 2.6 and
    2.13-2.15, each IP at its widest layer's bits (eq. 2.10) and its DSPs counted once (eq.
    2.12). What :func:`allocate_population` evaluates at the parallel factors it picks, and
    what EDD's differentiable cost reproduces at one-hot choices."""
    if layers.n_graphs != 1:
        raise ValueError(f"cost_at takes one graph's layers, got {layers.n_graphs} graphs")
    names = layers.ip_names
    missing = sorted({names[c] for c in layers.ip_code} - set(pf))
    if missing:
        raise ValueError(f"pf: no parallel factor for IP(s) {missing}")
    ip_bits = np.zeros(len(names), dtype=np.int64)
    np.maximum.at(ip_bits, layers.ip_code, layers.bits)  # eq. 2.10
    used = np.bincount(layers.ip_code, minlength=len(names)) > 0
    lanes = 2.0 ** np.array([float(pf.get(n, 0.0)) for n in names])
    work_s = lookup(phi, ip_bits[layers.ip_code]) * layers.work / clock_hz  # eq. 2.13
    mem = np.zeros(len(layers)) if mem_s is None else mem_s
    layer_s = layer_seconds(work_s, mem, lanes[layers.ip_code], overlap, tiles, overhead_s)
    dsp = float(np.sum(lookup(psi, ip_bits[used]) * lanes[used]))  # eqs. 2.12, 2.15
    return float(layer_s.sum()), dsp


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
    tiles: int = 16,
    overhead_s: float = 0.0,
) -> RecursivePopulation:
    n = layers.n_graphs
    names = layers.ip_names
    rank = np.argsort(np.argsort(np.array(names, dtype=object))) if names else np.zeros(0, np.int64)
    width = max(len(names), 1)  # IP codes per graph in the (graph, IP) key
    key = layers.owner * width + rank[layers.ip_code] if len(layers) else layers.owner
    uniq, group = np.unique(key, return_inverse=True)
    group = group.reshape(-1)
    by_rank = np.argsort(rank) if len(names) else rank
    group_owner = uniq // width
    group_ip = by_rank[uniq % width] if len(uniq) else np.zeros(0, np.int64)
    n_groups = len(uniq)
    ip_bits = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(
        ip_bits, group, layers.bits
    )  # eq. 2.10: a shared IP runs at its widest layer's bits
    work_s = lookup(phi, ip_bits[group]) * layers.work / clock_hz  # seconds at one lane (eq. 2.13)
    dsp_lane = lookup(psi, ip_bits)  # eq. 2.15
    lut_lane = np.where(dsp_lane == 0, LUT_PER_LANE, 0.0)
    feasible = (np.bincount(group_owner, dsp_lane, minlength=n) <= dsp_budget) & (
        np.bincount(group_owner, lut_lane, minlength=n) <= lut_budget
    )
    pf = _greedy_doubling(
        group,
        group_owner,
        n,
        work_s,
        mem_s,
        dsp_lane,
        lut_lane,
        feasible,
        dsp_budget,
        lut_budget,
        overlap,
        tiles,
    )
    lanes = 2.0**pf
    layer_s = layer_seconds(work_s, mem_s, lanes[group], overlap, tiles, overhead_s)
    return RecursivePopulation(
        layers,
        group,
        group_owner,
        group_ip,
        ip_bits,
        pf,
        work_s / lanes[group],
        mem_s,
        layer_s,
        layers.per_graph(layer_s),
        np.bincount(group_owner, dsp_lane * lanes, minlength=n),
        np.bincount(group_owner, lut_lane * lanes, minlength=n),
        feasible,
        overhead_s,
    )


def _greedy_doubling(
    group,
    group_owner,
    n,
    work_s,
    mem_s,
    dsp_lane,
    lut_lane,
    feasible,
    dsp_budget,
    lut_budget,
    overlap,
    tiles,
) -> np.ndarray:
    """Parallel factor of every IP instance (0 for graphs that do not fit at one lane)."""
    n_groups = len(group_owner)
    pf = np.zeros(n_groups, dtype=np.int64)
    if n_groups == 0 or not feasible.any():
        return pf
    levels = np.arange(MAX_PF + 2)
    # IP latency at every parallel factor at once: (instances x levels), summed over layers
    per_layer = layer_seconds(
        work_s[:, None], mem_s[:, None], 2.0 ** levels[None, :], overlap, tiles
    )
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(n_groups))
    ip_s = np.add.reduceat(per_layer[order], starts, axis=0)
    if n <= _SCALAR_GRAPHS:  # a few graphs: plain Python beats a hundred tiny numpy rounds
        for i in np.flatnonzero(feasible):
            g = np.flatnonzero(group_owner == i)
            pf[g] = _greedy_one(
                ip_s[g].tolist(), dsp_lane[g].tolist(), lut_lane[g].tolist(), dsp_budget, lut_budget
            )
        return pf
    # instances as a padded (graphs x slots) grid; slots of a graph are its IPs by name
    first = np.searchsorted(group_owner, np.arange(n))
    slot = np.arange(n_groups) - first[group_owner]
    width = int(slot.max()) + 1
    real = np.zeros((n, width), dtype=bool)
    real[group_owner, slot] = True
    sec = np.zeros((n, width, MAX_PF + 2))
    sec[group_owner, slot] = ip_s
    unit_cost = np.zeros((n, width))
    unit_cost[group_owner, slot] = dsp_lane / dsp_budget + lut_lane / lut_budget
    d_lane, l_lane = np.zeros((n, width)), np.zeros((n, width))
    d_lane[group_owner, slot], l_lane[group_owner, slot] = dsp_lane, lut_lane
    d_used = np.bincount(group_owner, dsp_lane, minlength=n)
    l_used = np.bincount(group_owner, lut_lane, minlength=n)
    level = np.zeros((n, width), dtype=np.int64)
    active = real & feasible[:, None]
    # seconds saved by the next doubling and its budget cost, at every level at once; a
    # round reads them at each instance's level (flat index: instance * levels + level)
    levels_n = MAX_PF + 1
    saved_at = (sec[..., :-1] - sec[..., 1:]).reshape(-1)
    cost_at = (unit_cost[..., None] * 2.0 ** np.arange(levels_n)).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_at = np.where(cost_at > 0, saved_at / cost_at, np.inf)
    base = np.arange(n * width).reshape(n, width) * levels_n
    while True:
        at = base + level
        active &= (saved_at[at] > 0) & (level < MAX_PF)
        live = np.flatnonzero(active.any(axis=1))
        if len(live) == 0:
            break
        ratio = np.where(active[live], ratio_at[at[live]], -1.0)
        j = np.argmax(ratio, axis=1)  # ties: the first IP by name, as a heap of (ratio, index)
        r = live
        lanes = 2.0 ** level[r, j]
        extra_d, extra_l = d_lane[r, j] * lanes, l_lane[r, j] * lanes
        fits = (d_used[r] + extra_d <= dsp_budget) & (l_used[r] + extra_l <= lut_budget)
        grow = r[fits]
        level[grow, j[fits]] += 1
        d_used[grow] += extra_d[fits]
        l_used[grow] += extra_l[fits]
        active[r[~fits], j[~fits]] = False  # budgets only shrink: it can never double again
    return level[group_owner, slot]


def _greedy_one(
    ip_seconds: list[list[float]],
    dsp_lane: list[float],
    lut_lane: list[float],
    dsp_budget: float,
    lut_budget: float,
) -> list[int]:
    """The same doubling for one graph with a heap keyed by (-saving per resource, IP index)."""
    level = [0] * len(ip_seconds)

    def entry(i: int) -> tuple[float, int, int]:
        p = level[i]
        saved = ip_seconds[i][p] - ip_seconds[i][p + 1]
        cost = (dsp_lane[i] / dsp_budget + lut_lane[i] / lut_budget) * 2.0**p
        return (-saved / cost if cost > 0 else -math.inf) if saved > 0 else 0.0, i, p

    heap = [e for e in map(entry, range(len(level))) if e[0] < 0]
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
    return level


def allocate(layers: LayerTable, **kw) -> RecursiveDesign:
    """The accelerator for a one-graph layer table (see :func:`allocate_population`)."""
    if layers.n_graphs != 1:
        raise ValueError(f"allocate takes one graph's layers, got {layers.n_graphs} graphs")
    return allocate_population(layers, **kw).design(0)
