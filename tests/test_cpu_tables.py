"""Measured operator tables of CPUs (dse.simulators.cpu.tables) and calibrations that mix them."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import nasbench201_cells, one_conv, reference_data, unseen_gold
from scipy.stats import spearmanr

from dse.catalogs.devices import get_any_device
from dse.measured_tables import fit_operator_table
from dse.simulators.cpu.calibration import (
    CpuCalibration,
    load_cpu_calibration,
    parse_cpu_calibration,
)
from dse.simulators.cpu.fit import CpuDesign, fit_few_shot
from dse.simulators.cpu.model import CpuCostModel
from dse.simulators.cpu.tables import (
    COLUMNS,
    CPU_TABLE,
    load_operator_table,
    parse_operator_table,
    runtime_tables,
    shipped_tables,
)

XEONS = ["Xeon-Gold-6240", "Xeon-Silver-4114", "Xeon-Silver-4210R"]


def test_a_table_fitted_to_measurements_gives_them_back_and_survives_its_file():
    """Latencies made from known per-op seconds are explained exactly by the fitted table, and
    the TOML form reads back to the same numbers."""
    device = get_any_device("Xeon-Gold-6240", None, "cpu")
    design = CpuDesign(
        CpuCostModel(device, load_cpu_calibration("Xeon-Gold-6240")), nasbench201_cells(300), [1]
    )
    true = design.model.row_seconds(design.rows[1])
    y = design.counts @ true
    keys = design.model.table.matrix()
    model = true * np.where(keys[:, 0] == 0, 2.0, 0.5)  # a model off by 2x either way
    table = fit_operator_table(keys, design.counts, y, model, "test-cpu", CPU_TABLE, 1, "made up")
    assert np.all(table.keys[:, 0] >= 0)  # views are free in the model: not in the table
    looked = np.nan_to_num(table.lookup(keys, 1))
    rel = np.abs(design.counts @ looked / y - 1)  # the data, not the model's 2x errors
    assert np.median(rel) < 0.005 and rel.max() < 0.03, (np.median(rel), rel.max())
    ran = (design.counts.sum(0) > 0) & (keys[:, 0] >= 0)
    assert np.all(looked[ran] > 0)  # ops that always occur together: each keeps a share
    assert np.isnan(table.lookup(keys, 2)).all()  # another batch size: not measured
    again = parse_operator_table(tomllib.loads(table.to_toml()), "t")
    assert np.array_equal(again.keys, table.keys) and np.array_equal(again.seconds, table.seconds)
    with pytest.raises(ValueError, match=r"t.rows\[0\]: expected \[class"):
        parse_operator_table({"columns": list(COLUMNS), "rows": [["warp", 1, 2, 3, 4, 5.0]]}, "t")


def test_a_mix_prices_each_op_as_weighted_tables_plus_the_roofline_by_hand():
    """``roofline_weight x roofline + sum_s w_s t_s(op)``: a measured op from each table, and an
    op no table has from each source device's own calibrated model."""
    device = get_any_device("Xeon-Gold-6240", None, "cpu")
    mine = CpuCalibration("mix", device=device.name, tables={XEONS[1]: 0.5, XEONS[2]: 0.25},
                          roofline_weight=0.4)  # fmt: skip
    plain = CpuCalibration(device=device.name)
    measured, unmeasured = one_conv(16, 32, 16, 3), one_conv(24, 20, 40, 7)  # NAS-Bench-201's; none
    for g in (measured, unmeasured):
        roof = CpuCostModel(device, plain).seconds([g])[0]
        parts = []
        for source in XEONS[1:]:
            table = load_operator_table(source)
            model = CpuCostModel(device, plain)
            model.seconds([g])
            key = model.table.matrix()[-1:]
            t = table.lookup(key, 1)[0]
            if g is unmeasured:
                assert np.isnan(t)
                other = get_any_device(source, None, "cpu")
                t = CpuCostModel(other, load_cpu_calibration(source)).seconds([g])[0]
            else:
                assert t > 0
            parts.append(t)
        expected = 0.4 * roof + 0.5 * parts[0] + 0.25 * parts[1]
        assert CpuCostModel(device, mine).seconds([g])[0] == pytest.approx(expected, rel=1e-12)


def a_mix_of_two_xeons():
    """``(design, seconds, prior, graphs)``: 210 NAS-Bench-201 cells of a CPU whose every op
    costs 0.6 x the Gold 6240's + 0.3 x the Silver 4114's measured table, the design priced
    from the Silver 4114's calibration."""
    device = get_any_device("Xeon-Silver-4210R", None, "cpu")
    prior = load_cpu_calibration("Xeon-Silver-4114")
    truth = CpuCalibration(device=device.name, tables={XEONS[0]: 0.6, XEONS[1]: 0.3},
                           roofline_weight=0.0)  # fmt: skip
    graphs = nasbench201_cells(210, seed=3)
    design = CpuDesign(CpuCostModel(device, prior), graphs, [1])
    y = design.priced(truth, np.arange(len(graphs)), np.ones(len(graphs), int))
    return design, y, prior, graphs


def test_ten_measurements_of_a_cpu_that_is_a_mix_recover_it():
    """From 10 cells of a CPU that is a mix of two Xeons' tables, the few-shot fit keeps the
    mix and prices 200 other cells exactly."""
    design, y, prior, graphs = a_mix_of_two_xeons()
    device, one = design.model.device, np.ones(len(graphs), int)
    fit = fit_few_shot(design, np.arange(10), one[:10], y[:10], prior, "mine", "test",
                       tables=XEONS[:2])  # fmt: skip
    cal = fit.calibration
    assert fit.candidate == "tables" and fit.cv_loss["tables"] < min(
        v for k, v in fit.cv_loss.items() if k != "tables"
    )
    assert cal.tables == pytest.approx({XEONS[0]: 0.6, XEONS[1]: 0.3}, rel=1e-6)
    assert cal.roofline_weight == pytest.approx(0.0, abs=1e-9)
    back = parse_cpu_calibration(tomllib.loads(cal.to_toml()), "f")
    pred = CpuCostModel(device, back).seconds(graphs[10:])
    np.testing.assert_allclose(pred, y[10:], rtol=1e-6)


def test_ten_cells_of_a_cpu_with_one_slow_measurement_price_the_rest_as_the_clean_fit():
    """The same CPU measured on 10 cells of which one ran 1.8x slow (dse.robust): the few-shot
    fit prices 200 other cells within 1% (median) of the truth (least squares: 3%), and its mix
    keeps both tables near their true weights (least squares: the Gold 6240's alone, at 0.8;
    here the kept roofline is the simplest candidate, which takes a weight of about 0.1)."""
    design, y, prior, graphs = a_mix_of_two_xeons()
    one = np.ones(len(graphs), int)
    measured = y[:10].copy()
    measured[6] *= 1.8
    tables = XEONS[:2]
    fit = fit_few_shot(design, np.arange(10), one[:10], measured, prior, "m", "t", tables=tables)
    rest = np.arange(10, len(graphs))
    pred = design.priced(fit.calibration, rest, one[rest])
    assert np.median(np.abs(pred / y[rest] - 1)) < 0.01
    assert fit.calibration.tables == pytest.approx({XEONS[0]: 0.6, XEONS[1]: 0.3}, abs=0.12)


def test_runtime_tables_are_the_same_runtimes_and_never_the_excluded():
    assert all(load_operator_table(t).device == t for t in shipped_tables())  # named by device
    gold = get_any_device("Xeon-Gold-6240", None, "cpu")
    assert runtime_tables(gold, exclude=("Xeon-Gold-6240",)) == XEONS[1:]
    phone = get_any_device("Samsung-A50", None, "cpu")
    assert set(runtime_tables(phone)) == {"Essential-Phone", "Samsung-A50", "Samsung-S7"}
    pixel = get_any_device("Pixel-3", None, "cpu")  # the only graph runtime: every other table
    assert len(runtime_tables(pixel, exclude=("Pixel-3",))) == 6
    with pytest.raises(ValueError, match="tables.x: must be a weight >= 0"):
        CpuCalibration(tables={"x": -1.0})
    with pytest.raises(ValueError, match="roofline_weight: must be 1 without"):
        CpuCalibration(roofline_weight=0.5)


def test_ten_fbnet_networks_of_an_unseen_xeon_rank_like_its_own_table():
    """HELP's protocol for the Xeon Gold 6240 on FBNet (its own table never used): the roofline
    alone ranks 490 other networks at about 0.82 (a kernel-selection cliff it has not); mixed
    with the other Xeons' measured tables, within 0.03 of the Gold's own 2,000-network fit."""
    from dse.spaces.fbnet import FBNetSpace

    design, y, prior, _ = unseen_gold("fbnet_latency_devices.csv", "arch", FBNetSpace(), 500)
    device = design.model.device
    one = np.ones(len(y), int)
    rest = np.arange(10, len(y))
    tables = runtime_tables(device, exclude=(device.name,))
    fit = fit_few_shot(design, np.arange(10), one[:10], y[:10], prior, "m", "t", tables=tables)
    assert fit.candidate == "tables"
    rho = spearmanr(design.priced(fit.calibration, rest, one[rest]), y[rest])[0]
    table = load_operator_table("Xeon-Gold-6240")
    own_rho = spearmanr(design.counts[rest] @ np.nan_to_num(table.lookup(
        design.model.table.matrix(), 1)), y[rest])[0]  # fmt: skip
    assert rho > own_rho - 0.03, (rho, own_rho)
    roofline = fit_few_shot(design, np.arange(10), one[:10], y[:10], prior, "m", "t")
    assert rho > spearmanr(design.priced(roofline.calibration, rest, one[rest]), y[rest])[0] + 0.05


def test_calibrate_names_its_tables_and_refuses_unknown_ones(tmp_path, capsys, monkeypatch):
    from dse.cli import main

    monkeypatch.chdir(tmp_path)
    df = pd.read_csv(reference_data("nasbench201_latency_devices.csv")).sample(12, random_state=2)
    pd.DataFrame({"arch": df["arch_str"], "latency_ms": df["gold_6240_ms"]}).to_csv(
        "m.csv", index=False
    )
    args = ["calibrate", "--device", "Xeon-Gold-6240", "--measured", "m.csv", "--out", "c.toml"]
    for tables, message in (
        ("Pixel-9", "--tables: Pixel-9 is not a shipped CPU table; allowed values: auto, none"),
        (",", "--tables: ',' is not a shipped CPU table"),
    ):
        assert main([*args, "--tables", tables]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0], lines
    gpu = ["calibrate", "--device", "Titan-RTX", "--measured", "m.csv", "--out", "c.toml"]
    assert main([*gpu, "--tables", "Pixel-3"]) == 2  # a CPU's table for a GPU
    assert "--tables: Pixel-3 is not a shipped GPU table" in capsys.readouterr().err
    eyeriss = ["calibrate", "--device", "Eyeriss-v1", "--measured", "m.csv", "--out", "c.toml"]
    assert main([*eyeriss, "--tables", "none"]) == 2
    assert "--tables: only a CPU's or GPU's fit" in capsys.readouterr().err
    board = ["calibrate", "--board", "ZC706", "--measured", "m.csv", "--out", "c.toml"]
    for fit in (eyeriss, board):  # a prior named where the fit has none: refused, not ignored
        assert main([*fit, "--prior", "Titan-RTX"]) == 2
        assert "--prior: only a CPU's or GPU's fit starts from a prior" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    assert main([*args, "--tables", "Xeon-Silver-4114,Xeon-Silver-4210R"]) == 0
    out = capsys.readouterr().out
    assert "measured tables tried: Xeon-Silver-4114, Xeon-Silver-4210R" in out
    assert "tables" in out and "cross-validated" in out
    cal = load_cpu_calibration(tmp_path / "c.toml")
    assert cal.validation is not None and set(cal.tables) <= {XEONS[1], XEONS[2]}


def test_a_calibration_naming_a_table_not_shipped_is_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    from dse.cli import main

    monkeypatch.chdir(tmp_path)
    bad = CpuCalibration("bad", device="Xeon-Gold-6240", tables={"Pixel-9": 1.0})
    (tmp_path / "bad.toml").write_text(bad.to_toml())
    args = ["cost", "--network", "resnet18", "--device", "Xeon-Gold-6240"]
    assert main([*args, "--calibration", "bad.toml", "--out", "p.csv"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'Pixel-9' is neither a TOML file nor a shipped operator" in lines[0]
    assert not (tmp_path / "p.csv").exists()
