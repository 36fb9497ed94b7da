"""Fitting a :class:`Calibration` to measured latencies.

Two kinds of measurements:

* **kernels** (:func:`fit_kernels`): one measured time per operator run, e.g. the Llama-33B
  tables 6.4-6.6 or a user's CSV with columns ``op_class, flops, bytes, seconds`` (optionally
  ``kernels`` and ``precision``). Each class gets its own (eta_compute, eta_memory); the
  per-kernel overhead is shared.
* **networks** (:func:`fit_graphs`): one measured latency per (graph, batch size), e.g.
  NAS-Bench-201 on Titan RTX. Few parameters are shared by every kernel: eta_compute,
  eta_memory and the per-kernel overhead, plus a memory efficiency for each class named in
  ``memory_classes`` (pooling kernels run far below bandwidth in cuDNN).

Both minimise the mean squared log ratio of predicted to measured time (relative error, so
small and large kernels count alike) with Nelder-Mead over bounded transforms of the
parameters. Deterministic: the same data give the same calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.optimize import minimize

from dse.catalogs.devices import Device
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, GpuCostModel
from dse.simulators.gpu.roofline import Calibration, Efficiency


def _eta(u):
    """Efficiency from an unbounded parameter: exp(u), capped at 1."""
    return np.minimum(1.0, np.exp(u))


def _logit(p):
    return float(np.log(p))


def _fit(
    predict: Callable[[np.ndarray], np.ndarray], measured: np.ndarray, x0: Sequence[float]
) -> np.ndarray:
    log_y = np.log(measured)

    def loss(x):
        p = predict(x)
        return float(np.mean((np.log(p) - log_y) ** 2))

    x = np.asarray(x0, dtype=float)
    for _ in range(3):  # restarts escape Nelder-Mead's early collapse of the simplex
        x = minimize(
            loss, x, method="Nelder-Mead", options=dict(maxiter=4000, xatol=1e-6, fatol=1e-12)
        ).x
    return x


@dataclass
class FitReport:
    """A fitted calibration and how well it predicts the data it was fitted on."""

    calibration: Calibration
    median_rel_error: float
    n_points: int


def fit_kernels(
    device: Device,
    op_class: Sequence[str],
    flops,
    bytes_,
    seconds,
    kernels=None,
    precision: Sequence[str] | str = "fp16",
    name: str = "fitted",
    note: str = "",
) -> FitReport:
    """Per-class (eta_compute, eta_memory) and one per-kernel overhead shared by all classes
    (launch and dispatch cost is a property of the device and host, not of the operator; a
    per-class overhead cannot be told apart from bandwidth efficiency when a class was measured
    at a single matrix size, as the MLP of table 6.6 is)."""
    op_class = np.asarray(op_class)
    flops, bytes_, seconds = (np.asarray(a, dtype=float) for a in (flops, bytes_, seconds))
    kernels = np.ones_like(flops) if kernels is None else np.asarray(kernels, dtype=float)
    if isinstance(precision, str):
        precision = [precision] * len(flops)
    prec = np.array([PRECISION_INDEX[p] for p in precision])
    names = sorted(set(op_class.tolist()))
    for c in names:
        if c not in CLASS_INDEX:
            raise ValueError(f"op_class: {c!r} is not allowed; allowed values: {list(CLASS_INDEX)}")
    which = np.array([names.index(c) for c in op_class])
    peak = GpuCostModel(device).peak(prec)
    f, b = flops / kernels, bytes_ / kernels

    def predict(x):
        eta_c, eta_m = _eta(x[1::2])[which], _eta(x[2::2])[which]
        return kernels * (
            np.maximum(f / (peak * eta_c), b / (device.memory_bandwidth * eta_m))
            + np.exp(x[0]) * 1e-6
        )

    x = _fit(predict, seconds, [np.log(5.0)] + [_logit(0.7)] * (2 * len(names)))
    overhead = float(np.exp(x[0]) * 1e-6)
    classes = {
        c: Efficiency(float(_eta(x[1 + 2 * j])), float(_eta(x[2 + 2 * j])), overhead)
        for j, c in enumerate(names)
    }
    cal = Calibration(name, Efficiency(overhead_s=overhead), classes, note)
    return FitReport(cal, float(np.median(np.abs(predict(x) / seconds - 1))), len(seconds))


def fit_kernels_csv(device: Device, path, name: str | None = None) -> FitReport:
    """:func:`fit_kernels` on a CSV with columns ``op_class, flops, bytes, seconds`` and optionally
    ``kernels`` (per row, default 1) and ``precision`` (default fp16)."""
    import pandas as pd

    df = pd.read_csv(path)
    missing = {"op_class", "flops", "bytes", "seconds"} - set(df.columns)
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {sorted(missing)}; need op_class, flops, bytes, seconds"
        )
    return fit_kernels(
        device,
        df["op_class"],
        df["flops"],
        df["bytes"],
        df["seconds"],
        df["kernels"] if "kernels" in df else None,
        list(df["precision"]) if "precision" in df else "fp16",
        name=name or device.name,
        note=f"fitted to {path}",
    )


def graph_counts(coster: GraphCoster, graphs: Sequence[nx.DiGraph]) -> np.ndarray:
    """(graphs x kernel-table rows) matrix of how many nodes of each distinct op a graph has."""
    rows, lengths = coster.node_rows(graphs)
    owner = np.repeat(np.arange(len(graphs)), lengths)
    n_rows = len(coster.table.arrays()[0])
    return np.bincount(owner * n_rows + rows, minlength=len(graphs) * n_rows).reshape(
        len(graphs), n_rows
    )


def fit_graphs(
    device: Device,
    graphs: Sequence[nx.DiGraph],
    measured: dict[int, np.ndarray],
    memory_classes: Sequence[str] = ("pool",),
    name: str = "fitted",
    note: str = "",
) -> FitReport:
    """Shared (eta_compute, eta_memory, overhead) plus a memory efficiency per class in
    ``memory_classes`` from whole-network latencies: ``measured[batch] = seconds per graph``."""
    for c in memory_classes:
        if c not in CLASS_INDEX:
            raise ValueError(
                f"memory_classes: {c!r} is not allowed; allowed values: {list(CLASS_INDEX)}"
            )
    coster = GraphCoster(GpuCostModel(device))
    counts = graph_counts(coster, graphs)  # the same for every batch size
    parts = []
    for batch, y in sorted(measured.items()):
        rc = coster.row_costs(batch)
        per = np.maximum(rc.kernels, 1)
        parts.append(
            (
                rc.op_class,
                rc.kernels,
                rc.flops / per,
                rc.bytes / per,
                coster.model.peak(rc.precision),
                np.asarray(y, dtype=float),
            )
        )
    special = [CLASS_INDEX[c] for c in memory_classes]

    def predict_all(x):
        out = []
        for cls, nk, f, b, peak, _ in parts:
            eta_m = np.full(len(cls), _eta(x[1]))
            for j, c in enumerate(special):
                eta_m[cls == c] = _eta(x[3 + j])
            row_s = nk * (
                np.maximum(f / (peak * _eta(x[0])), b / (device.memory_bandwidth * eta_m))
                + np.exp(x[2]) * 1e-6
            )
            out.append(counts @ row_s)
        return np.concatenate(out)

    y_all = np.concatenate([p[-1] for p in parts])
    x = _fit(
        predict_all, y_all, [_logit(0.3), _logit(0.5), np.log(20.0)] + [_logit(0.3)] * len(special)
    )
    default = Efficiency(float(_eta(x[0])), float(_eta(x[1])), float(np.exp(x[2]) * 1e-6))
    classes = {
        c: Efficiency(default.compute, float(_eta(x[3 + j])), default.overhead_s)
        for j, c in enumerate(memory_classes)
    }
    cal = Calibration(name, default, classes, note)
    return FitReport(cal, float(np.median(np.abs(predict_all(x) / y_all - 1))), len(y_all))
