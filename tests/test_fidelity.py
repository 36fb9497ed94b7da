"""Fidelity travels with the numbers: few-shot calibration, validation records, error lines."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

from dse.catalogs.devices import get_device
from dse.cli import main
from dse.config import parse_config
from dse.configfile import read_config_file
from dse.fidelity import ErrorStats, Fidelity, Validation
from dse.registry import SIMULATORS
from dse.runner import run
from dse.simulators.fpga.calibration import load_fpga_calibration
from dse.simulators.gpu.fewshot import MeasurementDesign, fit_few_shot
from dse.simulators.gpu.roofline import load_calibration
from dse.simulators.gpu.tables import shipped_gpu_tables
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str
from dse.sweeps import plan_sweep

BATCHES = (1, 32, 256)


@pytest.fixture(scope="module")
def measured() -> pd.DataFrame:
    """12 NAS-Bench-201 cells measured on the GTX 1080 Ti at three batch sizes (long format,
    the ``dse calibrate`` CSV)."""
    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv")).sample(12, random_state=3)
    rows = [
        {"arch": r["arch_str"], "batch_size": b, "latency_ms": r[f"1080ti_{b}_ms"]}
        for _, r in df.iterrows()
        for b in BATCHES
    ]
    return pd.DataFrame(rows)


def test_fixture_reads_the_1080ti_columns(measured):
    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv"))
    first = measured.iloc[0]
    row = df[df["arch_str"] == first["arch"]].iloc[0]
    assert first["latency_ms"] == row[f"1080ti_{first['batch_size']}_ms"]


def _calibrate(tmp_path, measured, *extra) -> tuple[int, str]:
    csv = tmp_path / "m.csv"
    measured.to_csv(csv, index=False)
    out = tmp_path / "my-1080ti.toml"
    rc = main(
        ["calibrate", "--device", "GTX-1080-Ti", "--measured", str(csv), "--out", str(out)]
        + list(extra)
    )
    return rc, str(out)


@pytest.mark.slow
def test_calibrate_writes_a_file_a_config_names_and_it_reproduces_its_error(
    tmp_path, measured, capsys
):
    rc, out = _calibrate(tmp_path, measured, "--prior", "Titan-RTX")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cross-validated median error" in printed and "my-1080ti.toml" in printed
    cal = load_calibration(out)
    assert cal.validation is not None and cal.validation.method == "k-fold"
    assert [e.condition for e in cal.validation.errors] == [f"batch {b}" for b in BATCHES]
    assert cal.validation.fitted_on == 12
    b1 = cal.validation.errors[0]
    assert b1.n == 12 and b1.median < 0.2  # ten-odd cells reach the 1,000-cell fit's ~10%

    # the same measurements through the API give the same calibration and error (deterministic)
    space = NasBench201Space()
    keys = sorted(set(measured["arch"]))
    graphs = [space.to_graph(parse_arch_str(a)) for a in keys]
    device = get_device("GTX-1080-Ti")
    design = MeasurementDesign(device, graphs, BATCHES)
    arch = measured["arch"].map({a: i for i, a in enumerate(keys)}).to_numpy()
    fit = fit_few_shot(
        design,
        arch,
        measured["batch_size"].to_numpy(),
        measured["latency_ms"].to_numpy() * 1e-3,
        load_calibration("Titan-RTX"),
        "again",
        "again",
        tables=shipped_gpu_tables(),  # what --tables auto tries for a GPU
    )
    for mine, theirs in zip(fit.calibration.validation.errors, cal.validation.errors):
        assert mine.median == pytest.approx(theirs.median, rel=1e-5)
        assert mine.p90 == pytest.approx(theirs.p90, rel=1e-5)
    assert fit.calibration.default.overhead_s == pytest.approx(cal.default.overhead_s, rel=1e-5)

    # named in [simulators.gpu] (relative to the config), the simulator predicts the measured
    # cells within the cross-validated error (in-sample is no worse than out-of-fold)
    (tmp_path / "run.toml").write_text(
        '[run]\nname = "cal"\n[space]\nname = "nasbench201"\n'
        '[simulators.gpu]\ndevice = "GTX-1080-Ti"\ncalibration = "my-1080ti.toml"\n'
        '[search]\ndriver = "random"\nmax_evaluations = 30\n'
        '[[objectives]]\nmetric = "gpu_latency_ms"\ndirection = "min"\n'
    )
    cfg = parse_config(read_config_file(tmp_path / "run.toml"))
    for b, stats in zip(BATCHES, cal.validation.errors):
        sim = SIMULATORS.create(
            "gpu",
            device="GTX-1080-Ti",
            batch_size=b,
            calibration=dict(cfg.simulators[0].params)["calibration"],
        )
        at = measured["batch_size"] == b
        pred = sim.evaluate_population([graphs[i] for i in arch[at]])["gpu_latency_ms"]
        err = np.median(np.abs(pred / measured["latency_ms"][at].to_numpy() - 1))
        assert err <= stats.median + 0.02
        assert sim.fidelity()["gpu_latency_ms"].errors == (stats,)

    # a run's manifest names the calibration of every simulated metric; show prints the line
    result = run(cfg, output=str(tmp_path / "results"), progress=False)
    manifest = json.loads((result.path / "manifest.json").read_text())
    entry = Fidelity.from_dict(manifest["fidelity"]["gpu_latency_ms"][0])
    assert entry.calibration == "GTX-1080-Ti" and entry.errors == (cal.validation.errors[0],)
    assert set(manifest["fidelity"]) == set(manifest["metrics"])
    capsys.readouterr()
    assert main(["show", str(result.path), "--limit", "3"]) == 0
    shown = capsys.readouterr().out
    assert "expected error of the simulated metrics:" in shown
    assert f"gpu_latency_ms: median error {b1.median:.1%}" in shown
    assert "GTX-1080-Ti calibration" in shown and "cross-validated" in shown


def test_report_prints_the_error_in_its_table_and_hover(tmp_path):
    cfg = parse_config(
        {
            "run": {"name": "rep", "seed": 1},
            "space": {"name": "nasbench201"},
            "simulators": {
                "gpu": {"device": "Titan-RTX"},
                "fpga": {"board": "ZC706", "calibration": "ZC706"},
            },
            "search": {"driver": "random", "max_evaluations": 40},
            "objectives": [
                {"metric": "gpu_latency_ms", "direction": "min"},
                {"metric": "fpga_latency_ms", "direction": "min"},
                {"metric": "gpu_memory_gb", "direction": "min"},
            ],
        }
    )
    result = run(cfg, output=str(tmp_path), progress=False)
    assert main(["report", str(result.path), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Expected error of the simulated metrics" in page
    titan = load_calibration("Titan-RTX").validation.errors[0]
    assert f"median error {titan.median:.1%}, 90th pct {titan.p90:.1%}, Titan-RTX" in page
    assert "analytic count, not validated against measurement" in page  # gpu_memory_gb
    zc = load_fpga_calibration("ZC706").validation.errors[0]
    assert "fpga_latency_ms = " in page and f"(median error {zc.median:.1%})" in page  # hover


@pytest.mark.slow
def test_calibrate_refuses_bad_input_and_writes_nothing(tmp_path, measured, capsys):
    bad = measured.rename(columns={"latency_ms": "ms"})
    rc, out = _calibrate(tmp_path, bad)
    assert rc == 2 and "latency_ms" in capsys.readouterr().err
    assert not (tmp_path / "my-1080ti.toml").exists()
    negative = measured.assign(latency_ms=-measured["latency_ms"])
    rc, _ = _calibrate(tmp_path, negative)
    assert rc == 2 and "latency_ms: every value must be a positive" in capsys.readouterr().err
    typo = measured.assign(arch=measured["arch"].str.replace("nor_conv_3x3", "conv9x9"))
    rc, _ = _calibrate(tmp_path, typo)
    assert rc == 2 and "arch: cannot read" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.toml")) and not list(tmp_path.glob(".*tmp*"))
    rc, out = _calibrate(tmp_path, measured)
    assert rc == 0
    before = (tmp_path / "my-1080ti.toml").read_text()
    rc, _ = _calibrate(tmp_path, measured.head(9), "--prior", "none")
    assert rc == 2 and "--force" in capsys.readouterr().err
    assert (tmp_path / "my-1080ti.toml").read_text() == before  # kept, not overwritten


def test_design_predictions_are_the_simulators_own(measured):
    space = NasBench201Space()
    graphs = [space.to_graph(parse_arch_str(a)) for a in sorted(set(measured["arch"]))]
    design = MeasurementDesign(get_device("Titan-RTX"), graphs, BATCHES)
    cal = load_calibration("Titan-RTX")
    for b in BATCHES:
        arch = np.arange(len(graphs))
        pred = design.predict(cal, arch, np.full(len(graphs), b))
        sim = SIMULATORS.create("gpu", device="Titan-RTX", batch_size=b, calibration="Titan-RTX")
        np.testing.assert_allclose(
            pred * 1e3, sim.evaluate_population(graphs)["gpu_latency_ms"], rtol=1e-12
        )


def test_shipped_calibrations_carry_their_validation():
    for name in ("Titan-RTX", "GTX-1080-Ti"):
        v = load_calibration(name).validation
        assert v is not None and v.method == "held-out" and v.fitted_on == 1000
        assert {e.condition: e.n for e in v.errors} == {f"batch {b}": 14263 for b in BATCHES}
        assert all(e.spearman > 0.95 and e.median < 0.16 for e in v.errors)
    a100 = load_calibration("A100-80GB-PCIe").validation
    assert a100 is not None and a100.method == "k-fold" and sum(e.n for e in a100.errors) == 168
    zc706 = load_fpga_calibration("ZC706").validation
    assert zc706 is not None and zc706.errors[0].spearman > 0.99 and zc706.errors[0].median < 0.03


def test_uncalibrated_numbers_say_so():
    sim = SIMULATORS.create("gpu", device="H100-SXM")
    line = sim.fidelity()["gpu_latency_ms"].line("gpu_latency_ms")
    assert line.startswith("gpu_latency_ms: uncalibrated: data sheet only (H100-SXM")
    bare = SIMULATORS.create("gpu", device="Titan-RTX", calibration="none")
    assert "bare roofline" in bare.fidelity()["gpu_latency_ms"].line("x")
    override = SIMULATORS.create("gpu", device="Titan-RTX", launch_overhead_us=10)
    assert "not validated" in override.fidelity()["gpu_latency_ms"].line("x")
    fpga = SIMULATORS.create("fpga", board="ZC706")
    assert "uncalibrated: data sheet only" in fpga.fidelity()["fpga_latency_ms"].line("x")
    # a batch size that was never validated is named, with the validated range
    odd = SIMULATORS.create("gpu", device="Titan-RTX", batch_size=8).fidelity()["gpu_latency_ms"]
    assert len(odd.errors) == 3 and "only, not batch 8" in odd.line("gpu_latency_ms")
    # a calibration validated at one batch size only says so at another
    one = Validation("m.csv", "k-fold", "5 folds", (ErrorStats("batch 1", 12, 0.99, 0.01, 0.02),))
    at_32 = Fidelity.of_calibration("mine", one, "batch 32").line("gpu_latency_ms")
    assert "(validated at batch 1, 12 points, Spearman 0.990 only, not batch 32)" in at_32
    assert "only" not in Fidelity.of_calibration("mine", one, "batch 1").line("gpu_latency_ms")


def test_fpga_calibration_is_a_scale_and_a_per_layer_cost():
    space = NasBench201Space("cifar10", weight_bits=16, act_bits=16)
    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv")).head(40)
    graphs = [space.to_graph(parse_arch_str(a)) for a in df["arch_str"]]
    base = SIMULATORS.create("fpga", board="ZC706")
    cal = load_fpga_calibration("ZC706")
    tuned = SIMULATORS.create("fpga", board="ZC706", calibration="auto")
    layers = np.bincount(base.layers(graphs).owner, minlength=len(graphs))
    expected = cal.scale * (
        base.evaluate_population(graphs)["fpga_latency_ms"]
        + layers * cal.layer_overhead_cycles / base.board.clock_hz * 1e3
    )
    got = tuned.evaluate_population(graphs)
    np.testing.assert_allclose(got["fpga_latency_ms"], expected, rtol=1e-9)
    np.testing.assert_allclose(got["fpga_throughput_fps"], 1e3 / expected, rtol=1e-9)
    err = np.median(np.abs(got["fpga_latency_ms"] / df["fpga_ms"].to_numpy() - 1))
    assert err < 0.05  # the shipped ZC706 calibration on measured cells
    with pytest.raises(ValueError, match="is for board 'ZC706'"):
        SIMULATORS.create("fpga", board="ZCU102", calibration="ZC706")
    with pytest.raises(ValueError, match="layer_overhead_cycles: the calibration sets it"):
        SIMULATORS.create("fpga", board="ZC706", calibration="ZC706", layer_overhead_cycles=5)


def test_calibrate_fits_an_fpga_board_from_ten_cells(tmp_path, capsys):
    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv")).sample(10, random_state=0)
    csv = tmp_path / "zc.csv"
    df.rename(columns={"arch_str": "arch", "fpga_ms": "latency_ms"})[["arch", "latency_ms"]].to_csv(
        csv, index=False
    )
    out = tmp_path / "zc.toml"
    argv = ["calibrate", "--board", "ZC706", "--measured", str(csv), "--out", str(out)]
    assert main(argv + ["--space-param", "weight_bits=16", "--space-param", "act_bits=16"]) == 0
    cal = load_fpga_calibration(out)
    assert cal.validation is not None and cal.validation.errors[0].median < 0.05
    shipped = load_fpga_calibration("ZC706")
    assert cal.scale == pytest.approx(shipped.scale, rel=0.2)


def test_validation_round_trips_through_toml():
    v = Validation(
        "d",
        "k-fold",
        "5-fold",
        (ErrorStats("batch 1", 10, 0.9, 0.1, 0.2), ErrorStats("batch 2", 2, float("nan"), 0, 0)),
        10,
    )
    back = Validation.from_dict(tomllib.loads(v.to_toml())["validation"])
    assert back.errors[0] == v.errors[0] and np.isnan(back.errors[1].spearman)
    with pytest.raises(ValueError, match="validation.method"):
        Validation("d", "guess", "", ())


def test_a_sweep_records_each_configurations_error():
    plan = plan_sweep(
        {
            "run": {"name": "f"},
            "space": {"name": "nasbench201"},
            "simulators": {"gpu": {"device": "A100-80GB-PCIe"}},
            "sweep": {
                "points": 4,
                "workers": 0,
                "parameters": {"simulators.gpu.device": ["Titan-RTX", "H100-SXM"], "arch": "all"},
            },
        }
    )
    entries = [Fidelity.from_dict(e) for e in plan.fidelity["gpu_latency_ms"]]
    assert {e.calibration for e in entries} == {"Titan-RTX", ""}
    assert any(e.note.startswith("uncalibrated: data sheet only") for e in entries)


def test_list_prints_the_shipped_calibrations_error(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "shipped: median error" in out and "Titan-RTX calibration" in out
    assert "ZC706 calibration" in out


def test_cross_validation_keeps_a_richer_candidate_only_if_it_wins_by_a_standard_error():
    """The one-standard-error rule (``within_se=1``): a candidate that cross-validates a little
    better than a simpler one (within the folds' noise) is not kept, one that does much better
    is; without the rule the lowest error wins. The standard error is that of the kept
    candidate's five per-fold errors."""
    from dse.fidelity import cross_validate, grouped_folds

    arch, batch, seconds = np.arange(10), np.ones(10, int), np.linspace(1e-3, 2e-3, 10)
    z = np.random.default_rng(0).standard_normal(10)
    log_error = {"simple": 0.10 * z, "close": 0.097 * z, "clear": 0.01 * z}

    def held_out(cand: str, train: np.ndarray) -> np.ndarray:
        return seconds[~train] * np.exp(log_error[cand][~train])

    args = (arch, batch, seconds, "synthetic")
    assert cross_validate(["simple", "close"], held_out, *args).candidate == "close"
    kept = cross_validate(["simple", "close"], held_out, *args, within_se=1.0)
    assert kept.candidate == "simple"
    assert cross_validate(["simple", "clear"], held_out, *args, within_se=1.0).candidate == "clear"
    folds = [np.mean((0.10 * z[t]) ** 2) for t in grouped_folds(10, 5)]
    assert kept.standard_error == pytest.approx(np.std(folds, ddof=1) / np.sqrt(5), rel=1e-12)
