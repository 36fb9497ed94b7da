"""FPGA simulators: EDD eqs. 2.6-2.15 on hand-computed cases, optimisers against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import dse
from dse.graph import GraphBuilder
from dse.registry import SIMULATORS
from dse.results import load
from dse.simulators.fpga import des, pipelined, recursive
from dse.simulators.fpga.boards import load_boards
from dse.simulators.fpga.model import (
    PHI_DEFAULT,
    PSI_DEFAULT,
    LayerRows,
    LayerTable,
    layer_table,
    lookup,
)


def two_conv_graph(bits_a: int = 16, bits_b: int = 16):
    b = GraphBuilder(act_bits=16)
    x = b.input((8, 16, 16))
    x = b.conv(x, 16, 3, weight_bits=bits_a)  # work 3*3*16*16*8*16 = 294,912
    x = b.conv(x, 32, 3, weight_bits=bits_b)  # work 3*3*16*16*16*32 = 1,179,648
    b.dwconv(x, 5, weight_bits=16)  # work 5*5*16*16*32 = 204,800
    return b.build()


def test_eq_2_14_work_per_layer_kind():
    layers = layer_table(two_conv_graph())
    assert layers.ip == ["conv3x3", "conv3x3", "dwconv5x5"]
    assert list(layers.work) == [
        3 * 3 * 16 * 16 * 8 * 16,
        3 * 3 * 16 * 16 * 16 * 32,
        5 * 5 * 16 * 16 * 32,
    ]
    b = GraphBuilder()
    x = b.input((4, 8, 8))
    b.act(b.norm(x), "relu")
    unfused = layer_table(b.build(), LayerRows(fuse=False))
    assert (
        unfused.ip == ["eltwise", "eltwise"] and list(unfused.work) == [4 * 8 * 8] * 2
    )  # h w c_in
    assert (
        len(layer_table(b.build())) == 0
    )  # fused (the default): BN folds into, ReLU streams with, a conv


def test_eq_2_13_and_2_15_phi_psi_piecewise():
    assert list(lookup(PSI_DEFAULT, np.array([2, 4, 5, 8, 9, 16]))) == [
        0,
        0,
        0.5,
        0.5,
        1,
        1,
    ]  # 2.4.1.2
    assert list(lookup(PHI_DEFAULT, np.array([8, 16]))) == [0.5, 1.0]
    with pytest.raises(ValueError, match="wider than"):
        lookup(PSI_DEFAULT, np.array([64]))
    # one layer, pf fixed by a budget that allows exactly 2**5 lanes at 16 bits:
    layers = LayerTable.of(["conv3x3"], [1_179_648.0], [16])
    d = recursive.allocate(
        layers,
        clock_hz=200e6,
        dsp_budget=32,
        lut_budget=1e9,
        phi=PHI_DEFAULT,
        psi=PSI_DEFAULT,
        mem_s=np.zeros(1),
    )
    assert d.pf.tolist() == [5] and d.dsp == 32  # Res = Psi(16) * 2**5 (eq. 2.15)
    assert d.latency_s == pytest.approx(1.0 * 2**-5 * 1_179_648 / 200e6)  # Phi(16) 2^-pf work / f
    d8 = recursive.allocate(
        LayerTable.of(["conv3x3"], layers.work, [8]),
        clock_hz=200e6,
        dsp_budget=32,
        lut_budget=1e9,
        phi=PHI_DEFAULT,
        psi=PSI_DEFAULT,
        mem_s=np.zeros(1),
    )
    assert d8.pf.tolist() == [6] and d8.dsp == 32  # half a DSP per 8-bit lane buys twice the lanes
    assert d8.latency_s == pytest.approx(0.5 * 2**-6 * 1_179_648 / 200e6)


def test_recursive_shares_ips_bits_and_dsps_eqs_2_6_and_2_10_to_2_12():
    layers = layer_table(two_conv_graph(bits_a=8, bits_b=16))
    d = recursive.allocate(
        layers,
        clock_hz=100e6,
        dsp_budget=64,
        lut_budget=1e9,
        phi=PHI_DEFAULT,
        psi=PSI_DEFAULT,
        mem_s=np.zeros(3),
    )
    assert d.ips == ("conv3x3", "dwconv5x5")
    assert d.ip_bits.tolist() == [16, 16]  # eq. 2.10: the 8-bit conv runs on the shared 16-bit IP
    lanes = 2.0**d.pf
    assert d.dsp == pytest.approx(lanes.sum())  # eq. 2.12: each IP counted once, Psi(16) = 1
    expected = (294_912 + 1_179_648) / lanes[0] / 100e6 + 204_800 / lanes[1] / 100e6
    assert d.latency_s == pytest.approx(expected)  # eq. 2.6: sum over layers
    # the greedy split is optimal here: brute force over all power-of-two splits within budget
    best = min(
        (1_474_560 / 2**a + 204_800 / 2**c) / 100e6
        for a, c in itertools.product(range(8), repeat=2)
        if 2**a + 2**c <= 64
    )
    assert d.latency_s == pytest.approx(best)


def test_pipelined_balances_stages_eqs_2_7_and_2_9():
    layers = layer_table(two_conv_graph())
    d = pipelined.allocate(
        layers,
        clock_hz=100e6,
        dsp_budget=100,
        lut_budget=1e9,
        phi=PHI_DEFAULT,
        psi=PSI_DEFAULT,
        mem_s=np.zeros(3),
    )
    lanes = 2.0**d.pf
    assert d.dsp == pytest.approx(lanes.sum()) and d.dsp <= 100  # eq. 2.9
    assert d.period_s == pytest.approx(max(layers.work / lanes) / 100e6)  # eq. 2.7
    assert d.throughput_fps == pytest.approx(1 / d.period_s)
    best = min(
        max(w / 2**p for w, p in zip(layers.work, pfs)) / 100e6
        for pfs in itertools.product(range(8), repeat=3)
        if sum(2**p for p in pfs) <= 100
    )
    assert d.period_s == pytest.approx(best)
    starved = pipelined.allocate(
        layers,
        clock_hz=100e6,
        dsp_budget=2,
        lut_budget=1e9,
        phi=PHI_DEFAULT,
        psi=PSI_DEFAULT,
        mem_s=np.zeros(3),
    )
    assert not starved.feasible  # three stages need at least three DSPs


def test_ddr_bound_and_double_buffering():
    layers = layer_table(two_conv_graph())
    mem = np.array([1e-3, 0.0, 0.0])
    kw = dict(
        clock_hz=100e6, dsp_budget=64, lut_budget=1e9, phi=PHI_DEFAULT, psi=PSI_DEFAULT, mem_s=mem
    )
    overlap = recursive.allocate(layers, overlap=True, **kw)
    serial = recursive.allocate(layers, overlap=False, **kw)
    comp = 294_912 / 2 ** overlap.pf[0] / 100e6
    assert overlap.layer_s[0] == pytest.approx(max(1e-3, comp) + min(1e-3, comp) / 16)  # 16 tiles
    assert serial.layer_s[0] == pytest.approx(1e-3 + 294_912 / 2 ** serial.pf[0] / 100e6)
    assert serial.latency_s > overlap.latency_s
    p = pipelined.allocate(layers, **kw)
    assert p.period_s >= 1e-3  # the DDR-bound stage sets the pace


def test_board_catalog_and_user_boards(tmp_path):
    boards = load_boards()
    assert {"ZC706", "ZCU102", "ZCU104", "Ultra96", "AlveoU50", "AlveoU250", "VCU118"} <= set(
        boards
    )
    assert (
        boards["ZC706"].dsp == 900
        and boards["ZCU102"].dsp == 2520
        and all(b.source for b in boards.values())
    )
    (tmp_path / "mine.toml").write_text(
        '[Tiny]\npart = "X"\ndsp = 64\nbram_18k = 100\nlut = 20000\n'
        "clock_mhz = 150\nddr_gbps = 4.0\n"
    )
    assert load_boards(tmp_path / "mine.toml")["Tiny"].dsp == 64
    (tmp_path / "bad.toml").write_text(
        '[Bad]\npart = "X"\ndsp = -1\nbram_18k = 1\nlut = 1\nclock_mhz = 1\nddr_gbps = 1\n'
    )
    with pytest.raises(ValueError, match="Bad.dsp: expected a positive number"):
        load_boards(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="board: 'ZC999' is not allowed"):
        SIMULATORS.create("fpga", board="ZC999")


def test_fpga_metrics_in_a_search_on_the_mbconv_chain(tmp_path):
    cfg = {
        "run": {"name": "fpga", "seed": 0},
        "space": {"name": "mbconv", "target": "fpga", "num_blocks": 8, "resolution": 96},
        "proxies": {"analytic": {}},
        "simulators": {"fpga": {"board": "ZC706", "architecture": "pipelined"}},
        "objectives": [
            {"metric": "macs", "direction": "max"},
            {"metric": "fpga_throughput_fps", "direction": "max"},
        ],
        "constraints": [{"metric": "fpga_feasible", "min": 1}],
        "search": {"driver": "pymoo", "pop_size": 8, "max_evaluations": 24},
    }
    df = load(dse.run(cfg, output=tmp_path, progress=False).path)
    assert (
        (df.status == "ok").all()
        and (df.fpga_dsp <= 900).all()
        and (df.fpga_throughput_fps > 0).all()
    )
    assert df["time_fpga_s"].notna().all()


@pytest.mark.parametrize("double_buffering", [True, False])
def test_recursive_des_equals_the_analytic_sum(double_buffering):
    rng = np.random.default_rng(0)
    comp, mem = rng.random(12) * 1e-3, rng.random(12) * 1e-3
    mem[::3] = 0.0  # some layers need no DDR traffic
    index = rng.integers(0, 3, size=12)
    trace = des.run_recursive(
        ("a", "b", "c"), index, comp, mem, double_buffering=double_buffering, tiles=8
    )
    analytic = recursive.layer_seconds(comp, mem, np.ones(12), double_buffering, tiles=8).sum()
    assert trace.latency_s == pytest.approx(analytic, rel=1e-9)
    assert np.all(np.diff(trace.layer_start_s) >= 0) and trace.layer_end_s[-1] == pytest.approx(
        trace.latency_s
    )
    for i, name in enumerate(("a", "b", "c")):
        assert trace.ip_utilisation[name] == pytest.approx(comp[index == i].sum() / trace.latency_s)
    assert trace.ddr_utilisation == pytest.approx(mem.sum() / trace.latency_s)


def test_pipelined_des_steady_state_matches_the_analytic_period():
    comp = np.array([2.0, 5.0, 3.0, 1.0]) * 1e-3
    trace = des.run_pipelined(comp, np.zeros(4), frames=80)
    assert trace.period_s == pytest.approx(5e-3, rel=1e-9)  # eq. 2.7: the slowest stage
    assert trace.fill_s == pytest.approx(comp.sum())  # the first frame meets an empty pipeline
    assert trace.stall_s[0] > 0 and trace.stall_s[1] == pytest.approx(
        0.0
    )  # upstream of the bottleneck stalls
    assert trace.utilisation[1] == pytest.approx(1.0, abs=0.05)
    # DDR-bound: the stages' transfers share one channel, so the period is their sum
    mem = np.array([2.0, 2.0, 2.0, 2.0]) * 1e-3
    bound = des.run_pipelined(comp, mem, frames=120)
    d = pipelined.PipelinedDesign(
        np.ones(4), comp, mem, np.maximum(comp, mem), float(mem.sum()), 0, 0, True
    )
    assert bound.period_s == pytest.approx(d.period_s, rel=0.02)
    deeper = des.run_pipelined(comp, np.zeros(4), frames=80, fifo_depth=4)
    assert deeper.period_s == pytest.approx(5e-3) and deeper.stall_s.sum() <= trace.stall_s.sum()


def test_des_metrics_from_the_plugin():
    from dse.spaces.zoo import build

    g = build("mobilenet_v2", resolution=64, weight_bits=8, act_bits=16)
    for arch in ("recursive", "pipelined"):
        sim = SIMULATORS.create(
            "fpga", board="ZC706", architecture=arch, des_frames=400
        )  # >> 150 stages
        m = sim.evaluate(g, {}, None)
        if arch == "recursive":
            assert m["fpga_des_latency_ms"] == pytest.approx(m["fpga_latency_ms"], rel=1e-9)
        else:
            assert m["fpga_des_throughput_fps"] == pytest.approx(m["fpga_throughput_fps"], rel=0.02)


@pytest.mark.parametrize(
    "arch,board,extra",
    [
        ("recursive", "ZCU102", {}),
        ("recursive", "Ultra96", {"layer_overhead_cycles": 2000, "double_buffering": False}),
        ("pipelined", "ZC706", {}),
        ("pipelined", "ZC706", {"integer_lanes": True, "layer_overhead_cycles": 500}),
    ],
)
def test_population_pass_equals_graph_by_graph(arch, board, extra):
    from dse.spaces.mbconv import MBConvChainSpace
    from dse.spaces.nasbench201 import NasBench201Space
    from dse.spaces.zoo import build

    rng = np.random.default_rng(1)
    graphs = [
        s.to_graph(s.sample(rng))
        for s in (
            MBConvChainSpace(num_blocks=8, resolution=96),
            NasBench201Space(weight_bits=8, act_bits=8),
        )
        for _ in range(12)
    ]
    graphs.append(build("resnet18", resolution=64, weight_bits=16, act_bits=16))
    sim = SIMULATORS.create("fpga", board=board, architecture=arch, **extra)
    population = sim.evaluate_population(graphs)
    for i, g in enumerate(graphs):
        one = sim.evaluate(g, {}, None)
        for metric, values in population.items():
            assert values[i] == pytest.approx(one[metric], rel=1e-7), (i, metric)


def test_fused_layers_and_per_layer_overhead_in_model_and_des():
    from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

    space = NasBench201Space()
    conv = space.to_graph(parse_arch_str("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    skip = space.to_graph(parse_arch_str("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    # ReLU-conv-BN is one layer once fused: one conv edge in each of 15 cells adds 15 layers
    assert len(layer_table(conv)) - len(layer_table(skip)) == 15
    assert (
        len(layer_table(conv, LayerRows(fuse=False)))
        - len(layer_table(skip, LayerRows(fuse=False)))
        == 45
    )
    plain = SIMULATORS.create("fpga", board="ZC706", architecture="recursive")
    slow = SIMULATORS.create(
        "fpga", board="ZC706", architecture="recursive", layer_overhead_cycles=1000, des_frames=2
    )
    n = len(layer_table(conv))
    base, extra = plain.evaluate(conv, {}, None), slow.evaluate(conv, {}, None)
    assert extra["fpga_latency_ms"] == pytest.approx(
        base["fpga_latency_ms"] + n * 1000 / 200e6 * 1e3
    )
    assert extra["fpga_des_latency_ms"] == pytest.approx(extra["fpga_latency_ms"], rel=1e-9)
    with pytest.raises(ValueError, match="layer_overhead_cycles: must be >= 0"):
        SIMULATORS.create("fpga", layer_overhead_cycles=-1)
    with pytest.raises(ValueError, match="integer_lanes: applies to architecture 'pipelined' only"):
        SIMULATORS.create("fpga", architecture="recursive", integer_lanes=True)


def test_integer_lanes_fill_the_dsp_budget_for_vgg16():
    from dse.spaces.zoo import build

    g = build("vgg16", weight_bits=16, act_bits=16)
    pow2 = SIMULATORS.create("fpga", board="ZC706", architecture="pipelined").evaluate(g, {}, None)
    anyint = SIMULATORS.create(
        "fpga", board="ZC706", architecture="pipelined", integer_lanes=True
    ).evaluate(g, {}, None)
    # one 16-bit MAC per DSP48 per cycle at 200 MHz bounds VGG16's 15.47 GMACs at 900 * 200e6 /
    # 15.47e9
    ceiling = 900 * 200e6 / 15.47e9
    assert anyint["fpga_dsp"] <= 900 and anyint["fpga_throughput_fps"] <= ceiling
    assert anyint["fpga_throughput_fps"] > 0.95 * ceiling > 1.5 * pow2["fpga_throughput_fps"]


def test_hwnasbench_fpga_latency_ranked_after_fitting_two_parameters():
    """HW-NAS-Bench's measured ZC706 latencies (tolerance: rho >= 0.97, median error <= 25%, the
    issue's targets; the benchmark script measures all 15,263 cells)."""
    import pandas as pd
    from conftest import reference_data

    from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

    df = pd.read_csv(reference_data("nasbench201_latency_measured.csv")).sample(
        n=400, random_state=0
    )
    space = NasBench201Space(weight_bits=16, act_bits=16)
    graphs = [space.to_graph(parse_arch_str(a)) for a in df.arch_str]
    sim = SIMULATORS.create("fpga", board="ZC706", architecture="recursive")
    lat = sim.evaluate_population(graphs)["fpga_latency_ms"]
    n_layers = np.bincount(sim.layers(graphs).owner, minlength=len(graphs))
    x, y = np.stack([lat, n_layers], 1), df.fpga_ms.to_numpy()
    coef, *_ = np.linalg.lstsq(x[:100], y[:100], rcond=None)  # scale and per-layer cost
    pred = x[100:] @ coef
    rho = pd.Series(pred).corr(pd.Series(y[100:]), method="spearman")
    assert rho >= 0.97 and np.median(np.abs(pred / y[100:] - 1)) <= 0.25
