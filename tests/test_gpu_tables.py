"""Measured kernel tables of GPUs (dse.simulators.gpu.tables) and calibrations that mix them."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import nasbench201_cells, one_conv, reference_data
from scipy.stats import spearmanr

from dse.catalogs.devices import get_device
from dse.measured_tables import (
    MixSource,
    OperatorTable,
    fit_operator_table,
    joined_tables,
    mix_candidates,
)
from dse.simulators.gpu.fewshot import MeasurementDesign, fit_few_shot
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import Calibration, load_calibration, parse_calibration
from dse.simulators.gpu.tables import GPU_TABLE, load_gpu_table, shipped_gpu_tables
from dse.spaces.fbnet import FBNetSpace

GPUS = ["GTX-1080-Ti", "Titan-RTX", "Titan-X-Pascal"]


def test_shipped_tables_are_named_by_device_and_a_fitted_one_survives_its_file():
    """Every shipped GPU table is its device's; a table fitted to latencies made from known
    per-kernel seconds explains them and reads back from TOML to the same numbers."""
    assert sorted(shipped_gpu_tables()) == GPUS
    assert all(load_gpu_table(t).device == t for t in GPUS)
    device = get_device("Titan-RTX")
    design = MeasurementDesign(device, nasbench201_cells(300), [1])
    rc = design.rows[1]
    kernels = (rc.op_class, rc.precision, rc.flops, rc.bytes, rc.kernels)
    true = GpuCostModel(device, load_calibration("Titan-RTX")).seconds(*kernels)
    y = design.counts @ true
    keys = np.column_stack(design.coster.table.arrays()).astype(float)
    table = fit_operator_table(keys, design.counts, y, true * 1.5, "t", GPU_TABLE, 1, "made up")
    looked = np.nan_to_num(table.lookup(keys, 1))
    rel = np.abs(design.counts @ looked / y - 1)
    assert np.median(rel) < 0.005 and rel.max() < 0.03, (np.median(rel), rel.max())
    assert np.all(table.keys[:, 1] > 0)  # views launch nothing: not in the table
    again = GPU_TABLE.parse(tomllib.loads(table.to_toml()), "t")
    assert np.array_equal(again.keys, table.keys) and np.array_equal(again.seconds, table.seconds)
    with pytest.raises(ValueError, match=r"t.columns: expected \['op_class', 'kernels'"):
        GPU_TABLE.parse({"columns": ["op_class", "seconds"], "rows": []}, "t")


def test_a_table_holds_each_batch_size_in_its_own_section():
    """A GPU's table holds a section per measured batch size (HELP measured 1, 32 and 256 on
    NAS-Bench-201, 1, 32 and 64 on FBNet): a lookup reads the batch size's own section, NaN at
    one not measured; the sections survive the file; a one-batch file of the old form (rows at
    the top) still reads; a batch size listed twice, or a section that is not one of a list, is
    refused, naming the field."""
    assert all(load_gpu_table(t).batch_sizes == [1, 32, 64, 256] for t in GPUS)
    device = get_device("Titan-RTX")
    design = MeasurementDesign(device, nasbench201_cells(60), [1, 256])
    keys = np.column_stack(design.coster.table.arrays()).astype(float)
    model = GpuCostModel(device, load_calibration("Titan-RTX"))
    sections = []
    for b in (1, 256):
        rc = design.rows[b]
        true = model.seconds(rc.op_class, rc.precision, rc.flops, rc.bytes, rc.kernels)
        y = design.counts @ true
        sections.append(fit_operator_table(keys, design.counts, y, true, "t", GPU_TABLE, b))
    table = joined_tables(sections, "two batch sizes")
    assert table.batch_sizes == [1, 256] and table.describe().startswith("batch 1/256, ")
    one, big = (np.nan_to_num(table.lookup(keys, b)) for b in (1, 256))
    assert np.array_equal(one, np.nan_to_num(sections[0].lookup(keys, 1)))
    assert np.array_equal(big, np.nan_to_num(sections[1].lookup(keys, 256)))
    assert big.sum() > 2 * one.sum()  # batch 256's kernels, not batch 1's
    assert np.isnan(table.lookup(keys, 32)).all()
    again = GPU_TABLE.parse(tomllib.loads(table.to_toml()), "t")
    for field in ("batches", "keys", "seconds"):
        assert np.array_equal(getattr(again, field), getattr(table, field))
    old = tomllib.loads(sections[1].to_toml())
    flat = {"device": "t", "columns": old["columns"], "batch_size": 256, **old["batch"][0]}
    assert GPU_TABLE.parse(flat, "t").batch_sizes == [256]
    twice = {"columns": old["columns"], "batch": [old["batch"][0], old["batch"][0]]}
    with pytest.raises(ValueError, match=r"t.batch\[1\].batch_size: expected a batch size >= 1"):
        GPU_TABLE.parse(twice, "t")
    with pytest.raises(ValueError, match=r"t.batch: expected \[\[batch\]\] sections"):
        GPU_TABLE.parse({"columns": old["columns"], "batch": old["batch"][0]}, "t")
    with pytest.raises(ValueError, match="one device's tables of one format, each batch size"):
        joined_tables([sections[0], sections[0]], "")


@pytest.mark.parametrize("batch", [1, 256])
def test_a_mix_prices_each_kernel_as_weighted_tables_plus_the_roofline_by_hand(batch):
    """``roofline_weight x roofline + sum_s w_s t_s``: a measured convolution from each table,
    one no table has (and any run at fp16: the tables are fp32) from each source's own model; at
    batch 256 from each table's batch-256 section."""
    device = get_device("A100-80GB-PCIe")
    plain = load_calibration("A100-80GB-PCIe")
    mine = replace(plain, tables={"Titan-RTX": 0.5, "GTX-1080-Ti": 0.25}, roofline_weight=0.4)
    measured, unmeasured = one_conv(16, 32, 16, 3), one_conv(24, 20, 40, 7)  # NAS-Bench-201's; none
    for g, precision in ((measured, "auto"), (unmeasured, "auto"), (measured, "fp16")):
        roof = GraphCoster(GpuCostModel(device, plain), batch, precision).cost([g]).seconds[0]
        parts = []
        for source in ("Titan-RTX", "GTX-1080-Ti"):
            coster = GraphCoster(GpuCostModel(device, plain), batch, precision)
            coster.cost([g])
            key = np.column_stack(coster.table.arrays()).astype(float)[-1:]
            t = load_gpu_table(source).lookup(key, batch)[0]
            if g is unmeasured or precision == "fp16":
                other = get_device(source)
                model = GpuCostModel(other, load_calibration(source))
                t = GraphCoster(model, batch, precision).cost([g]).seconds[0]
            else:
                assert t > 0
            parts.append(t)
        expected = 0.4 * roof + 0.5 * parts[0] + 0.25 * parts[1]
        got = GraphCoster(GpuCostModel(device, mine), batch, precision).cost([g]).seconds[0]
        assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("batch, read_at", [(256, 32), (64, None), (100, None)])
def test_a_source_at_a_batch_ratio_reads_that_section_by_hand(batch, read_at):
    """``"Titan-RTX@0.125x"`` priced at batch 256 is the Titan RTX's batch-32 section; at 64
    (8: no section) and 100 (12.5) the Titan RTX's own model at 8 and at 12.5 samples."""
    device = get_device("A100-80GB-PCIe")
    mine = Calibration("m", tables={"Titan-RTX@0.125x": 1.0}, roofline_weight=0.0)
    g = one_conv(16, 32, 16, 3)  # NAS-Bench-201's: in the Titan RTX's batch-32 section
    got = GraphCoster(GpuCostModel(device, mine), batch).cost([g]).seconds[0]
    coster = GraphCoster(GpuCostModel(device, load_calibration("A100-80GB-PCIe")), batch)
    coster.cost([g])
    key = np.column_stack(coster.table.arrays()).astype(float)[-1:]
    if read_at is not None:
        expected = load_gpu_table("Titan-RTX").lookup(key, read_at)[0]
        assert expected > 0
    else:
        own = GraphCoster(GpuCostModel(get_device("Titan-RTX"), load_calibration("Titan-RTX")))
        own.cost([g])
        cls, prec, flops, moved, nk = own.kernels_at(batch / 8)
        expected = own.model.seconds(cls, prec, flops, moved, nk)[-1]
    assert got == pytest.approx(expected, rel=1e-12)


def test_mix_sources_are_keys_that_survive_the_calibrations_file():
    """The keys a fit tries: at one measured batch size each table's smaller sections and its
    bigger ones up to 4x at their ratios, at several only the batch size priced; a ratio key
    survives the TOML, a bad one is one line naming it."""
    sections = {"A": [1, 32, 256], "B": [1, 64]}
    assert mix_candidates(sections, np.full(10, 32)) == ["A", "A@0.03125x", "B",
                                                         "B@0.03125x", "B@2x"]  # fmt: skip
    assert mix_candidates(sections, np.full(10, 1)) == ["A", "B"]  # 32x bigger: not tried
    assert mix_candidates(sections, np.array([1, 32])) == ["A", "B"]
    assert MixSource.parse("Titan-X-Pascal@0.5x") == MixSource("Titan-X-Pascal", 0.5)
    # measured at batch 3, a batch-1 section is ratio 1/3: its key reads that section at 3
    table = OperatorTable("d", np.array([1]), np.ones((1, 7)), np.array([2.0]), "", GPU_TABLE)
    third = MixSource.parse(mix_candidates({"d": [1]}, np.full(4, 3))[1])
    assert third.seconds(table, table.keys, 3, lambda b: np.full(1, -b))[0] == 2.0
    assert third.seconds(table, table.keys, 4, lambda b: np.full(1, -b))[0] == pytest.approx(-4 / 3)
    cal = Calibration("m", tables={"Titan-RTX@0.5x": 0.25, "GTX-1080-Ti": 0.5}, roofline_weight=0.1)
    back = parse_calibration(tomllib.loads(cal.to_toml()), "f")
    assert back.tables == cal.tables and back.roofline_weight == pytest.approx(0.1)
    for bad in ("Titan-RTX@x", "Titan-RTX@-2x", "Titan-RTX@2", "@2x"):
        with pytest.raises(ValueError, match=f"tables.{bad}: expected a table's name, or NAME@Rx"):
            Calibration("m", tables={bad: 1.0}, roofline_weight=0.0)


def test_ten_measurements_of_a_gpu_that_is_a_mix_recover_it():
    """A GPU whose every kernel costs 0.7 x the Titan RTX's + 0.2 x the 1080 Ti's measured
    table: from 10 cells the few-shot fit keeps the mix, and its TOML prices 200 other cells
    exactly."""
    device = get_device("Titan-X-Pascal")
    prior = load_calibration("GTX-1080-Ti")
    truth = Calibration("truth", tables={"Titan-RTX": 0.7, "GTX-1080-Ti": 0.2}, roofline_weight=0)
    graphs = nasbench201_cells(210, seed=3)
    design = MeasurementDesign(device, graphs, [1])
    one = np.ones(len(graphs), int)
    y = design.predict(truth, np.arange(len(graphs)), one)
    fit = fit_few_shot(design, np.arange(10), one[:10], y[:10], prior, "mine", "test",
                       tables=GPUS[:2])  # fmt: skip
    cal = fit.calibration
    assert fit.candidate == "tables" and "mixed with the measured tables" in cal.note
    assert cal.tables == pytest.approx({"Titan-RTX": 0.7, "GTX-1080-Ti": 0.2}, rel=1e-6)
    assert cal.roofline_weight == pytest.approx(0.0, abs=1e-9)
    back = parse_calibration(tomllib.loads(cal.to_toml()), "f")
    assert back.tables == pytest.approx(cal.tables, rel=1e-5) and back.roofline_weight < 1e-6
    pred = GraphCoster(GpuCostModel(device, back)).cost(graphs[10:]).seconds
    np.testing.assert_allclose(pred, y[10:], rtol=1e-6)
    with pytest.raises(ValueError, match="tables.x: must be a weight >= 0"):
        Calibration(tables={"x": -1.0})


def test_a_gpu_its_own_model_explains_mixes_in_no_table():
    """Measurements the prior's roofline gives exactly: the mix (which nests the model alone)
    gives every table weight 0, so the calibration keeps no table and says so."""
    device = get_device("Titan-X-Pascal")
    prior = load_calibration("GTX-1080-Ti")
    graphs = nasbench201_cells(30, seed=4)
    design = MeasurementDesign(device, graphs, [1])
    one = np.ones(len(graphs), int)
    y = design.predict(prior, np.arange(len(graphs)), one)
    fit = fit_few_shot(design, np.arange(10), one[:10], y[:10], prior, "m", "t", tables=GPUS[:2])
    assert fit.calibration.tables == {} and fit.candidate != "tables"
    assert "tables" not in fit.cv_loss and "mixed" not in fit.calibration.note


def test_ten_fbnet_networks_of_an_unseen_gpu_rank_like_its_own_table():
    """HELP's protocol for the Titan RTX on FBNet (its own table and calibration never used). At
    batch 1, where each kernel's launch weighs, the roofline alone ranks 490 other networks
    within 0.02 of the Titan RTX's own 2,000-network table (its grouped blocks' channel
    shuffles are copy kernels: as views it ranked them at about 0.93); at batch 32 the roofline
    alone ranks at about 0.94, and mixed with the other GPUs' measured tables within 0.02 of
    the own table."""
    df = pd.read_csv(reference_data("fbnet_latency_devices.csv")).sample(500, random_state=0)
    space = FBNetSpace()
    graphs = [space.to_graph(space.parse(a)) for a in df["arch"]]
    rest, prior = np.arange(10, len(df)), load_calibration("GTX-1080-Ti")
    own = Calibration("own", tables={"Titan-RTX": 1.0}, roofline_weight=0.0)
    for batch in (1, 32):
        y = df[f"titan_rtx_{batch}_ms"].to_numpy() * 1e-3
        design = MeasurementDesign(get_device("Titan-RTX"), graphs, [batch])
        at = np.full(len(y), batch)

        def rho(cal: Calibration, y=y, design=design, at=at) -> float:
            return spearmanr(design.predict(cal, rest, at[rest]), y[rest])[0]

        roofline = fit_few_shot(design, np.arange(10), at[:10], y[:10], prior, "m", "t")
        if batch == 1:
            assert rho(roofline.calibration) > rho(own) - 0.02, (
                rho(roofline.calibration),
                rho(own),
            )
            continue
        tables = ["GTX-1080-Ti", "Titan-X-Pascal"]
        fit = fit_few_shot(design, np.arange(10), at[:10], y[:10], prior, "m", "t", tables=tables)
        assert fit.calibration.tables and fit.candidate in ("tables", "regimes")
        assert rho(fit.calibration) > rho(own) - 0.02, (rho(fit.calibration), rho(own))
        assert rho(fit.calibration) > rho(roofline.calibration) + 0.03


def test_calibrate_mixes_gpu_tables_and_the_simulator_prices_with_them(
    tmp_path, capsys, monkeypatch
):
    """``dse calibrate --device`` a GPU tries every shipped GPU table (``auto``), writes the mix
    it keeps, and ``dse cost`` prices with that file; a calibration naming a table that is not
    shipped is one line, exit 2, nothing written."""
    from dse.cli import main

    monkeypatch.chdir(tmp_path)
    df = pd.read_csv(reference_data("fbnet_latency_devices.csv")).sample(12, random_state=2)
    pd.DataFrame({"arch": df["arch"], "latency_ms": df["titanx_1_ms"]}).to_csv("m.csv", index=False)
    args = ["calibrate", "--device", "Titan-X-Pascal", "--measured", "m.csv", "--space", "fbnet"]
    assert main([*args, "--out", "c.toml", "--tables", "GTX-1080-Ti,Titan-RTX"]) == 0
    out = capsys.readouterr().out
    assert "measured tables tried: GTX-1080-Ti, Titan-RTX" in out and "tables" in out
    cal = load_calibration(tmp_path / "c.toml")
    assert cal.validation is not None and set(cal.tables) <= {"GTX-1080-Ti", "Titan-RTX"}
    pd.DataFrame({"arch": df["arch"]}).to_csv("a.csv", index=False)
    cost = ["cost", "--space", "fbnet", "--archs", "a.csv", "--arch-column", "arch"]
    cost += ["--device", "Titan-X-Pascal"]
    assert main([*cost, "--calibration", "c.toml", "--out", "p.csv"]) == 0
    assert len(pd.read_csv("p.csv")) == 12
    bad = Calibration("bad", tables={"Pixel-9": 1.0}, roofline_weight=0.5)
    (tmp_path / "bad.toml").write_text(bad.to_toml())
    capsys.readouterr()
    assert main([*cost, "--calibration", "bad.toml", "--out", "q.csv"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'Pixel-9' is neither a TOML file nor a shipped GPU" in lines[0]
    assert not (tmp_path / "q.csv").exists()


def test_dse_list_tables_names_every_shipped_table_with_its_family(capsys):
    """``dse list tables``: what ``--tables`` may name, each with its simulator and batch."""
    from dse.cli import main
    from dse.simulators.cpu.tables import shipped_tables

    assert main(["list", "tables"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[1] for line in lines}
    assert listed == {t: "[gpu]" for t in GPUS} | {t: "[cpu]" for t in shipped_tables()}
    cpu = {line.split()[0]: line for line in lines if line.split()[1] == "[cpu]"}
    gpu = {line.split()[0]: line for line in lines if line.split()[1] == "[gpu]"}
    assert all(" batch 1, " in line and " operators: " in line for line in cpu.values())
    assert all(" batch 1/32/64/256, " in line for line in gpu.values())
    table = load_gpu_table("Titan-RTX")  # an operator of several sections is counted once
    operators = len(np.unique(table.keys, axis=0))
    assert operators < len(table.keys)
    assert f", {operators} operators in {len(table.keys)} rows: " in gpu["Titan-RTX"]
