"""The Cauchy loss: fitting ten measurements of which one may be wrong.

A few-shot calibration reads ten measured networks. On a phone, one of ten is often slow for
reasons not in the network (a background task, a thermal step, the whole-millisecond timer):
on HELP's Samsung A50, 1.3% of NAS-Bench-201 cells run 1.4x (up to 10x) slower than the device's
own 14,000-cell fit predicts while 90% sit within 6% of it, and three of five random ten-cell
draws hold one. Squared log error lets that cell pull every fitted scale and mix weight; the Cauchy
loss ``sum log(1 + r^2)`` of residuals ``r`` in units of the measurement noise (the
maximum-likelihood loss under Cauchy-distributed noise) treats a residual within the noise
almost as least squares does and one far outside it as nearly fixed cost, so the other nine
set the fit. The few-shot fits use it (:func:`dse.simulators.cpu.fit.fit_few_shot`,
:func:`dse.measured_tables.mix_weights`); fits to thousands of measurements, whose outliers
average out, stay least squares.
"""

from __future__ import annotations

import numpy as np

#: the spread of one measured latency about what its network explains, in natural-log (about
#: relative) units, for every few-shot fit: phones time in whole milliseconds (5-10% of a
#: cell), the GPUs' 1,000-cell fits leave 4-15%
NOISE = 0.15


def cauchy_residuals(r: np.ndarray) -> np.ndarray:
    """Residuals ``r`` (in units of their noise) mapped to ``sign(r) sqrt(log(1 + r^2))``,
    whose squares sum to the Cauchy loss: least squares over them (``scipy.optimize.
    least_squares`` with its default loss) is the Cauchy fit. Smooth, and equal to ``r`` to
    first order near 0."""
    r = np.asarray(r, dtype=float)
    return np.sign(r) * np.sqrt(np.log1p(r * r))


def cauchy_weights(r: np.ndarray) -> np.ndarray:
    """The weight ``1 / (1 + r^2)`` iteratively reweighted least squares gives a residual ``r``
    (in units of its noise) to minimise the Cauchy loss: 1 within the noise, 1/10 at three
    times it."""
    r = np.asarray(r, dtype=float)
    return 1.0 / (1.0 + r * r)
