"""A factor per kernel class and roofline regime: what ten measurements say a mix misprices.

A new GPU calibrated from ten cells borrows most of its structure: the prior's efficiencies and
the other GPUs' measured tables (:mod:`dse.simulators.gpu.tables`). What does not transfer is
often one kind of kernel. At batch 256, HELP's Titan RTX spends 2.2x as long as the GTX 1080
Ti on NAS-Bench-201's 3x3 convolutions (compute-bound) but 0.5-0.7x on its 1x1 convolutions
(memory-bound) and 0.3-0.5x on its pooling; a mix of the 1080 Ti's table scales them all alike,
and the roofline's two efficiencies per class cannot say it either once the tables carry the
cost. So the few-shot fit may free one factor per (class, regime) group the measurements
exercise: the kernels of class ``conv`` that the device's data-sheet roofline has
compute-bound, say (:func:`~dse.simulators.gpu.roofline.regime_index`), each priced at that
factor times the calibrated mix (``regime_scales`` of a
:class:`~dse.simulators.gpu.roofline.Calibration`).

The factors are a maximum-a-posteriori fit in log space, as the rest of the few-shot fit: the
measurements' log errors under the Cauchy loss (:mod:`dse.robust`) and a wide Gaussian pull of
each log factor towards 0 (:data:`REGIME_SD`); a group that carries under
:data:`~dse.measured_tables.MIN_SHARE` of the measured latency keeps factor 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import least_squares

from dse.measured_tables import MIN_SHARE
from dse.robust import NOISE, cauchy_residuals
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import REGIME_KEYS, Calibration

if TYPE_CHECKING:  # fewshot imports this module
    from dse.simulators.gpu.fewshot import MeasurementDesign

#: prior spread of each log factor (natural log): wide, a guard for a group the measurements
#: hardly pin, not a pull. The measurement noise the fit assumes (``NOISE``, 15%: phones')
#: outweighs the few percent a factor moves at batch 256, so a tight prior undoes it: with
#: HELP's Titan RTX from ten cells at batch 256 the median error on NAS-Bench-201 is 2.4% at
#: 1.5 (the efficiencies' ``PRIOR_SD``), 1.2% at 5, 1.1% at 10 (the GTX 1080 Ti's 0.3%); at 20
#: the rule lets in factors that cost FBNet's batch 32 ranking (0.976 -> 0.972)
REGIME_SD = 10.0


def regime_columns(
    design: MeasurementDesign, calibration: Calibration, arch: np.ndarray, batch: np.ndarray
) -> np.ndarray:
    """(points x :data:`REGIME_KEYS`): the seconds of each (arch index, batch size) point's
    kernels in each (class, regime) group under ``calibration`` (its own ``regime_scales``
    applied); rows sum to the point's predicted seconds."""
    model = GpuCostModel(design.device, calibration)
    out = np.zeros((len(arch), len(REGIME_KEYS)))
    for b in design.rows:
        at = batch == b
        if at.any():
            seconds = design.coster.mixed_seconds(model, b)
            group = design.coster.regimes_at(model, b)
            by_group = np.zeros((len(seconds), len(REGIME_KEYS)))
            by_group[np.arange(len(seconds)), group] = seconds
            out[at] = design.counts[arch[at]] @ by_group
    return out


def fit_regime_factors(columns: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """One factor per :data:`REGIME_KEYS` position (1 where not freed) that best explains
    measured ``seconds`` as ``columns @ factors`` (module docstring)."""
    free = np.flatnonzero(columns.mean(0) > MIN_SHARE * columns.sum(1).mean())
    log_y = np.log(seconds)

    def factors(z: np.ndarray) -> np.ndarray:
        f = np.ones(columns.shape[1])
        f[free] = np.exp(z)
        return f

    def residuals(z: np.ndarray) -> np.ndarray:
        r = (np.log(columns @ factors(z)) - log_y) / NOISE
        return np.concatenate([cauchy_residuals(r), z / REGIME_SD])

    return factors(least_squares(residuals, np.zeros(len(free)), method="trf").x)


def regime_scales(factors: np.ndarray) -> dict[str, float]:
    """The factors that differ from 1, as a calibration's ``regime_scales``."""
    return {k: float(f) for k, f in zip(REGIME_KEYS, factors, strict=True) if f != 1.0}


def describe(scales: dict[str, float]) -> str:
    """``conv.compute 1.39, pool.memory 0.728``: the factors as a note or a command prints them."""
    return ", ".join(f"{k} {v:.3g}" for k, v in scales.items())
