"""A CPU's few-shot fit (dse.simulators.cpu.fit): which scales ten cells free, and which prior
they start from."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
from conftest import nasbench201_cells, reference_data

from dse.catalogs.devices import get_any_device
from dse.commands.calibrate import auto_cpu_priors, nearest_cpu_calibration
from dse.simulators.cpu.calibration import CPU_CLASSES, CpuCalibration, load_cpu_calibration
from dse.simulators.cpu.fit import CpuDesign, fit_few_shot, fit_few_shot_from
from dse.simulators.cpu.model import CpuCostModel


def slower_class(cal: CpuCalibration, op_class: str, factor: float) -> CpuCalibration:
    """``cal`` with one class's whole time ``factor`` times as long (overhead and compute)."""
    return replace(
        cal,
        name=f"{op_class} x{factor}",
        overhead_us={**cal.overhead_us, op_class: cal.overhead_us[op_class] * factor},
        efficiency={**cal.efficiency, op_class: cal.efficiency[op_class] / factor},
    )


def measured_on(truth: CpuCalibration, prior: CpuCalibration):
    """``(design, seconds)``: 210 NAS-Bench-201 cells priced on the Silver 4210R by ``truth``,
    the design priced from ``prior``."""
    device = get_any_device("Xeon-Silver-4210R", None, "cpu")
    graphs = nasbench201_cells(210, seed=3)
    design = CpuDesign(CpuCostModel(device, prior), graphs, [1])
    return design, design.priced(truth, np.arange(len(graphs)), np.ones(len(graphs), int))


def halfway(a: CpuCalibration, b: CpuCalibration, device) -> CpuCalibration:
    """The calibration whose every parameter is the geometric mean of ``a``'s and ``b``'s."""
    (oa, ea, ma), (ob, eb, mb) = a.arrays(device), b.arrays(device)
    over, eff = np.sqrt(oa * ob) * 1e6, np.sqrt(ea * eb)
    return CpuCalibration(
        "halfway",
        {c: float(over[i]) for i, c in enumerate(CPU_CLASSES)},
        {c: float(eff[i]) for i, c in enumerate(CPU_CLASSES)},
        float(np.sqrt(ma * mb)),
        device.name,
    )


def ten_cells(design: CpuDesign, y: np.ndarray):
    """``fit(prior)``: the few-shot fit of the first ten cells from ``prior``."""
    return lambda prior: fit_few_shot(
        design, np.arange(10), np.ones(10, int), y[:10], prior, "m", "t"
    )


def median_error(cal: CpuCalibration, design: CpuDesign, y: np.ndarray) -> float:
    """Median relative error of ``cal`` on the 200 cells after the ten measured ones."""
    rest = np.arange(10, len(y))
    return float(np.median(np.abs(design.priced(cal, rest, np.ones(len(rest), int)) / y[rest] - 1)))


def test_a_class_twice_as_slow_as_the_prior_says_gets_its_own_scale():
    """A CPU whose convolutions run 2x as long as its prior's (the rest as the prior): three
    global scales cannot say it (cross-validated error 10x the per-class candidate's), so ten
    cells keep ``classes`` and price 200 others within 2% (median)."""
    prior = load_cpu_calibration("Xeon-Silver-4114")
    design, y = measured_on(slower_class(prior, "conv", 2.0), prior)
    fit = fit_few_shot(design, np.arange(10), np.ones(10, int), y[:10], prior, "m", "t")
    assert fit.candidate == "classes"
    assert fit.cv_loss["classes"] < fit.cv_loss["memory"] / 5
    assert median_error(fit.calibration, design, y) < 0.02
    assert fit.prior == prior.name and fit.standard_error >= 0


def test_the_data_sheet_replaces_the_nearest_prior_only_where_it_wins_clearly():
    """From [nearest calibration, data sheet]: a CPU built like the sheet keeps the sheet's
    fit; one built like the calibration keeps the calibration's; one halfway between, where
    the sheet's fit cross-validates a little better (within one standard error), keeps the
    first prior's. The note names both priors and their cross-validated errors."""
    device = get_any_device("Xeon-Silver-4210R", None, "cpu")
    nearest, sheet = load_cpu_calibration("Xeon-Silver-4114"), CpuCalibration(device=device.name)
    cases = (
        (sheet, sheet.name),
        (slower_class(nearest, "pool", 1.1), nearest.name),
        (halfway(nearest, sheet, device), nearest.name),
    )
    for truth, expected in cases:
        design, y = measured_on(truth, nearest)
        fit = fit_few_shot_from([nearest, sheet], ten_cells(design, y))
        assert fit.prior == expected, truth.name
        assert set(fit.prior_loss) == {nearest.name, sheet.name}
        assert f"{nearest.name!r} (" in fit.calibration.note
        assert median_error(fit.calibration, design, y) < 0.05
    assert fit.prior_loss[sheet.name] < fit.prior_loss[nearest.name]  # the halfway CPU


def test_auto_priors_are_the_nearest_calibration_then_the_data_sheet():
    """``--prior auto``: the nearest shipped calibration other than those excluded (the same
    runtime first), then the device's data sheet."""
    for name in ("Pixel-3", "Samsung-A50", "Xeon-Gold-6240"):
        device = get_any_device(name, None, "cpu")
        priors = auto_cpu_priors(device, exclude=(name,))
        assert [p.name for p in priors] == [
            nearest_cpu_calibration(device, exclude=(name,)),
            CpuCalibration(device=name).name,
        ]
        assert priors[0].name != name and priors[1].device == name


def test_calibrate_prints_each_prior_tried_and_writes_the_kept_one(tmp_path, capsys):
    from dse.cli import main

    df = pd.read_csv(reference_data("nasbench201_latency_devices.csv")).sample(10, random_state=2)
    measured = tmp_path / "m.csv"
    pd.DataFrame({"arch": df["arch_str"], "latency_ms": df["samsung_s7_ms"]}).to_csv(
        measured, index=False
    )
    out = tmp_path / "s7.toml"
    args = ["calibrate", "--device", "Samsung-S7", "--measured", str(measured), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "prior 'Samsung-S7': cross-validated mean squared log error" in text
    assert "prior 'data sheet': cross-validated mean squared log error" in text
    note = tomllib.loads(out.read_text())["note"]
    assert "Prior kept by the same cross-validation" in note and "'data sheet' (" in note
