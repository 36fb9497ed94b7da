"""One slow measurement of ten does not set a few-shot fit (dse.robust: the Cauchy loss)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import nasbench201_cells

from dse.catalogs.devices import get_any_device
from dse.measured_tables import mix_weights
from dse.robust import cauchy_residuals, cauchy_weights
from dse.simulators.cpu.calibration import CpuCalibration, load_cpu_calibration
from dse.simulators.cpu.fit import CpuDesign, fit_few_shot
from dse.simulators.cpu.model import CpuCostModel

XEONS = ["Xeon-Gold-6240", "Xeon-Silver-4114"]


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


def test_ten_cells_of_a_cpu_with_one_slow_measurement_price_the_rest_as_the_clean_fit():
    """A CPU that is a mix of two Xeons' tables, measured on 10 cells of which one ran 1.8x
    slow: the few-shot fit prices 200 other cells within 1% (median) of the truth, and its
    mix weights are within 3% of the true ones."""
    device = get_any_device("Xeon-Silver-4210R", None, "cpu")
    prior = load_cpu_calibration(XEONS[1])
    truth = CpuCalibration(device=device.name, tables={XEONS[0]: 0.6, XEONS[1]: 0.3},
                           roofline_weight=0.0)  # fmt: skip
    graphs = nasbench201_cells(210, seed=3)
    design = CpuDesign(CpuCostModel(device, prior), graphs, [1])
    one = np.ones(len(graphs), int)
    y = design.priced(truth, np.arange(len(graphs)), one)
    measured = y[:10].copy()
    measured[6] *= 1.8
    fit = fit_few_shot(design, np.arange(10), one[:10], measured, prior, "m", "t", tables=XEONS)
    rest = np.arange(10, len(graphs))
    pred = design.priced(fit.calibration, rest, one[rest])
    assert np.median(np.abs(pred / y[rest] - 1)) < 0.01
    assert fit.calibration.tables == pytest.approx({XEONS[0]: 0.6, XEONS[1]: 0.3}, rel=0.03)
