"""GPU simulator: device catalog, roofline against tables 6.4-6.6, measured NAS-Bench-201
latencies, LLM workloads, the kernel-stream and serving discrete-event simulators."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data
from scipy.stats import spearmanr

import dse
from dse.catalogs.devices import get_device, load_devices
from dse.catalogs.llms import get_llm
from dse.registry import SIMULATORS
from dse.results import load
from dse.simulators.gpu.calibration import fit_graphs, fit_kernels, fit_kernels_csv
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.llm import LlmWorkload, StepShape
from dse.simulators.gpu.measured import predicted_tflops, table_points
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import Calibration, Efficiency, load_calibration, parse_calibration
from dse.simulators.gpu.serving import Request, poisson_requests, simulate_serving
from dse.simulators.gpu.stream import graph_kernels, run_kernels
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str
from dse.spaces.zoo import build

CATALOG = [
    "A100-80GB-PCIe",
    "A100-80GB-SXM",
    "H100-SXM",
    "H100-PCIe",
    "H200",
    "A6000",
    "A40",
    "L4",
    "V100-SXM2",
    "RTX-4090",
    "Titan-RTX",
    "GTX-1080-Ti",
    "Jetson-AGX-Orin",
]


# ----------------------------------------------------------------------------- devices
def test_catalog_has_the_required_devices_with_sources():
    devices = load_devices()
    assert set(CATALOG) <= set(devices)
    a100 = devices["A100-80GB-PCIe"]
    assert a100.memory_bandwidth == 1935e9 and a100.peak("fp16") == 312e12  # fig. 6.8
    assert all(d.source for d in devices.values())
    assert devices["Titan-RTX"].precision("tf32") == "fp32"  # no TF32 on Turing: falls back
    assert devices["H100-SXM"].ridge_point("fp16") == pytest.approx(989.4e12 / 3350e9)


def test_user_device_file_and_bad_fields(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        "[MyGPU]\nfp32_tflops = 10\nfp16_tflops = 40\nmemory_bandwidth_gbs = 500\nmemory_gb = "
        "16\nsms = 40\n"
    )
    assert get_device("MyGPU", f).peak("bf16") == 40e12
    f.write_text(
        "[MyGPU]\nfp32_tflops = 10\nmemory_bandwidth_gbs = 500\nmemory_gb = 16\nsms = 40\nclock = "
        "3\n"
    )
    with pytest.raises(ValueError, match=r"MyGPU\.clock: unknown field"):
        load_devices(f)
    with pytest.raises(ValueError, match="device: 'B200' is not allowed; allowed values"):
        get_device("B200")
    with pytest.raises(ValueError, match="precision: 'fp64' is not allowed"):
        get_device("L4").peak("fp64")


# ----------------------------------------------------------------------------- tables 6.4-6.6
@pytest.fixture(scope="module")
def llama_points():
    workload = LlmWorkload(get_llm("llama-33b"), GpuCostModel.create("A100-80GB-PCIe", "none"))
    return table_points(reference_data("nasbench201_naslib.csv").parent, workload), workload


def test_operational_intensity_matches_tables_6_4_to_6_6_within_1_percent(llama_points):
    pts, _ = llama_points
    assert len(pts) == 168
    np.testing.assert_allclose(pts["model_oi"], pts["operational_intensity"], rtol=0.01)


def test_uncalibrated_roofline_bounds_every_measurement(llama_points):
    pts, workload = llama_points
    assert np.all(predicted_tflops(pts, workload, calibrated=False) >= pts["tflops"])


def test_shipped_a100_calibration_predicts_tflops_within_20_percent_median(llama_points):
    pts, workload = llama_points
    calibrated = LlmWorkload(workload.config, GpuCostModel.create("A100-80GB-PCIe", "auto"))
    err = np.abs(predicted_tflops(pts, calibrated) / pts["tflops"] - 1)
    assert np.median(err) < 0.20
    # and the shipped file is what fitting the tables gives (reproducible, deterministic)
    refit = fit_kernels(
        workload.model.device,
        pts["op_class"],
        pts["flops"],
        pts["bytes"],
        pts["measured_seconds"],
        pts["kernels"],
    ).calibration
    shipped = load_calibration("A100-80GB-PCIe")
    for c in ("linear", "matmul"):
        assert refit.classes[c].compute == pytest.approx(shipped.classes[c].compute, rel=1e-4)
        assert refit.classes[c].memory == pytest.approx(shipped.classes[c].memory, rel=1e-4)
        assert refit.classes[c].overhead_s == pytest.approx(shipped.classes[c].overhead_s, rel=1e-4)


def test_fit_from_a_users_csv_of_measured_kernels(llama_points, tmp_path):
    pts, workload = llama_points
    csv = tmp_path / "measured.csv"
    pts.rename(columns={"measured_seconds": "seconds"})[
        ["op_class", "flops", "bytes", "seconds", "kernels"]
    ].to_csv(csv, index=False)
    rep = fit_kernels_csv(workload.model.device, csv)
    assert rep.n_points == 168 and rep.median_rel_error < 0.20
    (tmp_path / "cal.toml").write_text(rep.calibration.to_toml())
    assert load_calibration(tmp_path / "cal.toml").classes["linear"].compute == pytest.approx(
        rep.calibration.classes["linear"].compute, rel=1e-5
    )
    pts[["op_class", "flops"]].to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['bytes', 'seconds'\]"):
        fit_kernels_csv(workload.model.device, csv)


def test_calibration_toml_round_trip_and_errors():
    cal = Calibration("x", Efficiency(0.5, 0.8, 1e-5), {"pool": Efficiency(0.5, 0.2)}, note="fit")
    import tomllib

    back = parse_calibration(tomllib.loads(cal.to_toml()))
    assert (
        back.default.compute == 0.5
        and back.classes["pool"].memory == 0.2
        and back.default.overhead_s == pytest.approx(1e-5)
    )
    with pytest.raises(ValueError, match="classes.softmax: unknown op class"):
        parse_calibration({"classes": {"softmax": {"compute": 0.5}}})
    with pytest.raises(ValueError, match=r"efficiency.memory: must be in \(0, 1\]"):
        Efficiency(1.0, 1.5)
    with pytest.raises(ValueError, match="calibration: 'nope' is neither"):
        load_calibration("nope")


# ----------------------------------------------------------------------------- measured CNN latency
@pytest.fixture(scope="module")
def nb201_measured():
    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv")).sample(600, random_state=1)
    space = NasBench201Space()
    return df.reset_index(drop=True), [space.to_graph(parse_arch_str(a)) for a in df["arch_str"]]


def _score(device, calibration, graphs, y, batch):
    p = GraphCoster(GpuCostModel(get_device(device), calibration), batch).cost(graphs).seconds
    return spearmanr(p, y)[0], float(np.median(np.abs(p / y - 1)))


def test_shipped_nb201_calibrations_rank_measured_latency(nb201_measured):
    """Targets of the issue on 600 cells (the 14,263-cell figures are in
    benchmarks/gpu_calibrate.py):
    rho >= 0.90 at batch 1, >= 0.97 at batch 256 (0.95 here: a 600-cell sample), median error <=
    25%."""
    df, graphs = nb201_measured
    for device, col in (("Titan-RTX", "titan_rtx"), ("GTX-1080-Ti", "1080ti")):
        cal = load_calibration(device)
        for batch, min_rho in ((1, 0.90), (32, 0.90), (256, 0.95)):
            rho, err = _score(device, cal, graphs, df[f"{col}_{batch}_ms"].to_numpy() * 1e-3, batch)
            assert rho >= min_rho, (device, batch, rho)
            assert err <= 0.25, (device, batch, err)


def test_calibrate_on_titan_rtx_predict_gtx_1080_ti_from_its_data_sheet(nb201_measured):
    df, graphs = nb201_measured
    fit_idx, test_idx = np.arange(200), np.arange(200, 600)
    cal = fit_graphs(
        get_device("Titan-RTX"),
        [graphs[i] for i in fit_idx],
        {b: df[f"titan_rtx_{b}_ms"].to_numpy()[fit_idx] * 1e-3 for b in (1, 32, 256)},
    ).calibration
    test_graphs = [graphs[i] for i in test_idx]
    for batch in (1, 32, 256):
        y = df[f"1080ti_{batch}_ms"].to_numpy()[test_idx] * 1e-3
        rho, err = _score("GTX-1080-Ti", cal, test_graphs, y, batch)
        if batch in (1, 32):
            assert rho >= 0.90, (batch, rho)
        if batch in (32, 256):  # batch 1 is launch-bound: the host's overhead does not transfer
            assert err <= 0.25, (batch, err)


def test_depthwise_networks_are_slower_per_flop_than_resnet18():
    resnet, mobilenet = build("resnet18"), build("mobilenet_v2")
    for device in ("A100-80GB-PCIe", "Titan-RTX", "L4"):
        c = GraphCoster(GpuCostModel.create(device, "auto"), batch_size=1).cost([resnet, mobilenet])
        per_flop = c.seconds / c.flops
        assert per_flop[1] > 2 * per_flop[0], device


# ----------------------------------------------------------------------------- plugin
def test_population_path_equals_single_graph_path_and_kernel_rows():
    space = NasBench201Space()
    rng = np.random.default_rng(0)
    graphs = [space.to_graph(space.sample(rng)) for _ in range(20)]
    sim = SIMULATORS.create("gpu", device="Titan-RTX", batch_size=32)
    population = sim.evaluate_population(graphs)
    for i in (0, 7, 19):
        single = sim.evaluate(graphs[i], {}, space)
        assert single == {k: pytest.approx(float(v[i]), rel=1e-12) for k, v in population.items()}
        rows = sim.coster.kernels(graphs[i])
        assert rows["seconds"].sum() * 1e3 == pytest.approx(single["gpu_latency_ms"], rel=1e-12)
    assert set(population) == set(sim.metrics)
    with pytest.raises(ValueError, match="precision: 'fp64' is not allowed"):
        SIMULATORS.create("gpu", precision="fp64")


def test_precision_changes_bytes_and_peak():
    g = build("resnet18")
    fp32 = GraphCoster(GpuCostModel.create("A100-80GB-PCIe", "none"), 64, "fp32").cost([g])
    fp16 = GraphCoster(GpuCostModel.create("A100-80GB-PCIe", "none"), 64, "fp16").cost([g])
    assert fp16.bytes[0] == pytest.approx(fp32.bytes[0] / 2)
    assert fp16.seconds[0] < fp32.seconds[0] / 2


def test_gpu_simulator_in_a_search_config(tmp_path):
    cfg = {
        "run": {"name": "gpu", "seed": 3},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "simulators": {"gpu": {"device": "Titan-RTX", "batch_size": 32}},
        "objectives": [
            {"metric": "params", "direction": "max"},
            {"metric": "gpu_latency_ms", "direction": "min"},
        ],
        "constraints": [{"metric": "gpu_feasible", "min": 1}],
        "search": {"driver": "random", "max_evaluations": 30},
    }
    df = load(dse.run(cfg, output=tmp_path, progress=False).path)
    assert len(df) == 30 and (df["status"] == "ok").all()
    assert (
        (df["gpu_latency_ms"] > 0).all()
        and (df["gpu_throughput"] > 0).all()
        and df["is_pareto"].any()
    )


# ----------------------------------------------------------------------------- LLM workloads
def test_llm_presets_match_published_parameter_counts():
    published = {
        "llama-2-7b": 6.74e9,
        "llama-2-13b": 13.02e9,
        "llama-2-70b": 68.98e9,
        "llama-33b": 32.53e9,
        "zephyr-7b": 7.24e9,
    }
    for name, params in published.items():
        assert get_llm(name).params == pytest.approx(params, rel=0.01), name
    with pytest.raises(ValueError, match="model: 'gpt-5' is not allowed"):
        get_llm("gpt-5")


def test_kv_cache_memory_and_max_batch():
    w = LlmWorkload(get_llm("llama-2-7b"), GpuCostModel.create("A100-80GB-PCIe"))
    per_token = 2 * 32 * 32 * 128 * 2  # K and V, 32 layers, 32 KV heads x 128, fp16
    assert w.config.kv_bytes_per_token == per_token
    expected = int((80e9 * 0.9 - w.config.weight_bytes) // (2048 * per_token))
    assert int(w.max_batch(2048)) == expected
    gqa = LlmWorkload(get_llm("llama-2-70b"), GpuCostModel.create("H200"))
    assert gqa.config.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2  # 8 KV heads
    assert int(LlmWorkload(get_llm("llama-2-70b"), GpuCostModel.create("L4")).max_batch(1024)) == 0


def test_decode_is_memory_bound_and_prefill_compute_bound():
    w = LlmWorkload(get_llm("llama-7b"), GpuCostModel.create("A100-80GB-PCIe", "none"))
    ridge = w.model.device.ridge_point("fp16")
    decode = w.roofline("decode", 1, 1024).set_index("operator")
    prefill = w.roofline("prefill", 8, 2048).set_index("operator")
    assert decode.loc["up_proj", "oi"] < 2 < ridge < prefill.loc["up_proj", "oi"]
    # parallel decoding raises the linear layers' intensity by about the candidate count (fig. 6.19)
    medusa = w.roofline("parallel_decode", 1, 1024, 64).set_index("operator")
    assert medusa.loc["up_proj", "oi"] == pytest.approx(64 * decode.loc["up_proj", "oi"], rel=0.05)
    # a step is the sum of its operators times their repeat count; batch-16 steps vectorise
    steps = w.phase_seconds("decode", np.array([1, 16]), 1024)
    assert steps.shape == (2,) and steps[1] > steps[0]
    ops = w.operators(StepShape.phase("decode", 1, 1024))
    assert set(ops.names) >= {
        "q_proj",
        "k_proj",
        "v_proj",
        "qk",
        "pv",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    simplified = LlmWorkload(w.config, w.model, simplified=True).operators(
        StepShape.phase("decode", 1, 1024)
    )
    assert simplified.names == (
        "q_proj",
        "k_proj",
        "v_proj",
        "qk",
        "pv",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


# ----------------------------------------------------------------------------- discrete-event
# simulators
def test_kernel_stream_des_equals_analytic_when_launches_are_synchronous():
    coster = GraphCoster(GpuCostModel.create("Titan-RTX", "auto"), 1)
    g = NasBench201Space().to_graph(
        parse_arch_str(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
        )
    )
    analytic = float(coster.cost([g]).seconds[0])
    sync = run_kernels(graph_kernels(coster, g))
    assert sync.latency_s == pytest.approx(analytic, rel=1e-12)
    assert 0 < sync.utilisation < 1
    assert (
        len(sync.timeline) == (coster.kernels(g)["kernels"] > 0).sum()
    )  # one entry per launching node
    overlapped = run_kernels(graph_kernels(coster, g), async_launch=True)
    streams = run_kernels(graph_kernels(coster, g, streams=3), async_launch=True)
    assert streams.latency_s <= overlapped.latency_s < sync.latency_s
    # the timeline respects dependencies: no kernel starts before its inputs are done
    t = streams.timeline
    for i, k in enumerate(graph_kernels(coster, g, streams=3)):
        for d in k.deps:
            assert t.loc[i, "start_s"] >= t.loc[d, "end_s"] - 1e-15


@pytest.mark.slow
def test_serving_des_equals_analytic_for_a_lone_request_and_ttft_rises_with_load():
    w = LlmWorkload(get_llm("llama-7b"), GpuCostModel.create("A100-80GB-PCIe", "auto"))
    analytic = w.request_seconds(prompt=300, output=40)
    for scheduler in ("continuous", "static"):
        res = simulate_serving(
            w, [Request(0, 1.0, 300, 40)], scheduler=scheduler, batch_timeout_s=0.0
        )
        row = res.requests.iloc[0]
        for key in ("ttft_s", "tpot_s", "latency_s"):
            assert row[key] == pytest.approx(analytic[key], rel=1e-9), (scheduler, key)
    p50 = []
    for rate in (1.0, 8.0, 32.0):
        res = simulate_serving(w, poisson_requests(rate, 120, (64, 512), (16, 128), seed=2))
        assert res.requests["finish_s"].notna().all()
        p50.append(res.summary["ttft_p50_s"])
    assert p50[0] < p50[1] < p50[2]
    busy = simulate_serving(
        w,
        poisson_requests(32.0, 120, (64, 512), (16, 128), seed=2),
        scheduler="static",
        max_batch=8,
    )
    cont = simulate_serving(w, poisson_requests(32.0, 120, (64, 512), (16, 128), seed=2))
    assert cont.summary["throughput_tokens_per_s"] > busy.summary["throughput_tokens_per_s"]


def test_a_trace_of_requests_is_read_in_arrival_order_and_a_bad_cell_is_named(tmp_path):
    """``trace_requests``: rows sorted by arrival; text, a negative or a fractional token count
    was a NaN cast to int (a traceback) or a request of -1 tokens."""
    from dse.simulators.gpu.serving import trace_requests

    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,prompt,output\n0.5,300,40\n0.1,64,16\n")
    assert [(r.arrival_s, r.prompt, r.output) for r in trace_requests(path)] == [
        (0.1, 64, 16),
        (0.5, 300, 40),
    ]
    for row, column, what in [
        ("0.7,abc,3", "prompt", "a whole number >= 1"),
        ("0.7,30,-1", "output", "a whole number >= 1"),
        ("0.7,30.5,4", "prompt", "a whole number >= 1"),
        ("-1,30,4", "arrival_s", "a number >= 0"),
    ]:
        path.write_text(f"arrival_s,prompt,output\n0.5,300,40\n0.1,64,16\n{row}\n")
        message = f"trace: {column}: row 3 of {path} is not {what}"
        with pytest.raises(ValueError, match=re.escape(message)):
            trace_requests(path)


def test_serving_respects_kv_capacity_and_rejects_impossible_requests():
    w = LlmWorkload(
        get_llm("llama-2-13b"), GpuCostModel.create("L4")
    )  # 26 GB of weights on a 24 GB card
    with pytest.raises(ValueError, match="'llama-2-13b'.*does not fit"):
        simulate_serving(w, [Request(0, 0.0, 10, 10)])
    w = LlmWorkload(get_llm("llama-7b"), GpuCostModel.create("A6000"))
    capacity = 48e9 * 0.9 - w.config.weight_bytes
    with pytest.raises(ValueError, match="request 0: needs"):
        simulate_serving(w, [Request(0, 0.0, int(capacity / w.config.kv_bytes_per_token), 10)])
    reqs = [Request(i, 0.0, 2000, 200) for i in range(40)]
    res = simulate_serving(w, reqs, max_batch=64)
    per_request = 2200 * w.config.kv_bytes_per_token
    assert res.steps["batch"].max() <= capacity // per_request < 40
    with pytest.raises(ValueError, match="scheduler: 'fifo' is not allowed"):
        simulate_serving(w, reqs, scheduler="fifo")


# ----------------------------------------------------------------------------- roofline command
@pytest.mark.slow
def test_roofline_command_draws_png_and_csv(tmp_path, subprocess_env):
    from test_cli import DSE

    out, csv = tmp_path / "roof.png", tmp_path / "points.csv"
    measured = reference_data("llama33b_a100pcie_mlp_linear.csv")
    r = subprocess.run(
        [
            *DSE,
            "roofline",
            "--model",
            "llama-33b",
            "--phases",
            "decode,parallel_decode",
            "--batch",
            "1,16",
            "--seq",
            "1024",
            "--measured",
            str(measured),
            "--out",
            str(out),
            "--csv",
            str(csv),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    points = pd.read_csv(csv)
    assert set(points["label"]) >= {"qk/pv ar", "up/gate/down medusa"}
    r = subprocess.run(
        [*DSE, "roofline", "--network", "mobilenet_v2", "--out", str(tmp_path / "m.svg")],
        capture_output=True,
        text=True,
        env=subprocess_env,
    )
    assert r.returncode == 0 and (tmp_path / "m.svg").read_text().startswith("<?xml")
    r = subprocess.run(
        [*DSE, "roofline", "--phases", "warmup"], capture_output=True, text=True, env=subprocess_env
    )
    assert r.returncode == 2 and "--phases: 'warmup' is not allowed" in r.stderr


def test_calibration_none_is_the_bare_roofline():
    """calibration = "none" means the roofline alone: every efficiency 1 and no per-kernel
    overhead, so a decode step costs exactly its kernels' max(FLOPs/peak, bytes/bandwidth)."""
    from dse.catalogs.devices import get_device
    from dse.simulators.gpu.roofline import OP_CLASSES

    bare = GpuCostModel.create("A100-80GB-PCIe", "none")
    assert (bare.overhead(np.arange(len(OP_CLASSES))) == 0).all()
    workload = LlmWorkload(get_llm("llama-2-7b"), bare)
    step = workload.phase_seconds("decode", 1, 1024)
    ops = workload.operators(StepShape.phase("decode", 1, 1024))
    dev = get_device("A100-80GB-PCIe")
    peak = dev.peak("fp16")
    roof = (np.maximum(ops.flops / peak, ops.bytes / dev.memory_bandwidth) * ops.repeat).sum()
    assert float(step) == pytest.approx(roof, rel=1e-9)
    # the data sheet without a calibration still pays its launch overhead per kernel
    datasheet = LlmWorkload(get_llm("llama-2-7b"), GpuCostModel(dev)).phase_seconds(
        "decode", 1, 1024
    )
    assert float(datasheet) > 1.2 * float(step)
