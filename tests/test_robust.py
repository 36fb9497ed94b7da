"""One slow measurement of ten does not set a few-shot fit (dse.robust: the Cauchy loss); the
CPU's few-shot fit with one: tests/test_cpu_tables.py."""

from __future__ import annotations

import numpy as np
import pytest

from dse.measured_tables import mix_weights
from dse.robust import cauchy_residuals, cauchy_weights


def test_the_cauchy_residuals_square_to_its_loss_and_are_least_squares_near_zero():
    r = np.array([-3.0, -1.0, -1e-4, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(cauchy_residuals(r) ** 2, np.log1p(r**2), rtol=1e-12)
    assert np.array_equal(np.sign(cauchy_residuals(r)), np.sign(r))
    assert cauchy_residuals(np.array([1e-4]))[0] == pytest.approx(1e-4, rel=1e-7)
    np.testing.assert_allclose(cauchy_weights(np.array([0.0, 1.0, 3.0])), [1.0, 0.5, 0.1])


def test_a_mix_of_ten_measurements_with_one_slow_prices_the_other_nine():
    """Ten points that are exactly 0.7 x column 0 + 0.2 x column 1, one measured 1.7x slow:
    the mix prices the other nine within 1% and its weights are within 4% of the true ones
    (least squares: up to 7% and 23% off)."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    cols = rng.uniform(1.0, 3.0, size=(10, 2)) * np.array([1.0, 4.0])
    y = cols @ np.array([0.7, 0.2])
    y[4] *= 1.7
    clean = np.arange(10) != 4
    w = mix_weights(cols, y)
    assert np.max(np.abs(cols[clean] @ w / y[clean] - 1)) < 0.01
    np.testing.assert_allclose(w, [0.7, 0.2], rtol=0.04)
    plain, _ = nnls(cols / y[:, None], np.ones(10))  # what the slow point does otherwise
    assert np.max(np.abs(cols[clean] @ plain / y[clean] - 1)) > 0.05
