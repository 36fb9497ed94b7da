"""Device families: CPUs (servers, phones, single-board computers) and dataflow ASICs in the
catalog, their cost models on hand-computed cases, the few-shot fit and the command line."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data, toy_cpu, unseen_gold

from dse.catalogs.devices import get_any_device, get_device, load_all_devices
from dse.simulators.asic.eyeriss import EYERISS_V1, Conv
from dse.simulators.asic.mapper import FIELDS, layer_row
from dse.simulators.asic.plugin import AsicSimulator
from dse.simulators.cpu.calibration import CpuCalibration, load_cpu_calibration
from dse.simulators.cpu.model import CpuCostModel
from dse.spaces.nasbench201 import NasBench201Space


def test_every_family_is_in_the_catalog_and_a_wrong_family_is_named():
    devices = load_all_devices()
    families = {d.family for d in devices.values()}
    assert families == {"gpu", "cpu", "asic"}
    assert get_any_device("Raspberry-Pi-4", None, "cpu").peak_flops == 4 * 1.5e9 * 8
    with pytest.raises(ValueError, match="'Raspberry-Pi-4' is of family 'cpu', not 'gpu'"):
        get_device("Raspberry-Pi-4")


@pytest.mark.parametrize(
    "entry, message",
    [
        ('family = "tpu"', "family: 'tpu' is not allowed"),
        (
            'family = "cpu"\ncores = 4\nfrequency_ghz = 2\nflops_per_cycle = 8',
            "memory_bandwidth_gbs",
        ),
        (
            'family = "cpu"\ncores = 4\nfrequency_ghz = 2\nflops_per_cycle = 8\n'
            'memory_bandwidth_gbs = 10\nruntime = "jit"',
            "runtime: 'jit' is not allowed",
        ),
        (
            'family = "asic"\npe_rows = 12\npe_cols = 14\nfrequency_mhz = 200\nglb_kb = 108\n'
            'dram_bandwidth_gbs = 1\ndataflow = "diagonal"',
            "dataflow: 'diagonal' is not allowed",
        ),
        (
            'family = "asic"\npe_rows = 0\npe_cols = 14\nfrequency_mhz = 200\nglb_kb = 108\n'
            "dram_bandwidth_gbs = 1",
            "pe_rows: expected a positive number",
        ),
    ],
)
def test_a_bad_device_entry_names_its_field(tmp_path, entry, message):
    path = tmp_path / "devices.toml"
    path.write_text(f"[mine]\n{entry}\n")
    with pytest.raises(ValueError, match=message):
        load_all_devices(path)


def test_cpu_conv_time_is_the_hand_computed_roofline_plus_overhead(tmp_path):
    device = toy_cpu(tmp_path)
    cal = CpuCalibration(efficiency={"conv": 0.5}, memory_efficiency=0.8)
    model = CpuCostModel(device, cal)
    g = Conv(16, 32, 32, 3).graph()  # 32x32x32 outputs, 16*9 MACs each
    flops = 2 * 32 * 32 * 32 * 16 * 9
    moved = (16 * 32 * 32 + 32 * 32 * 32) * 4 + 32 * 16 * 9 * 4  # fits 4 x 256 KB of L2
    compute = flops / (4 * 2e9 * 16 * 0.5)  # 32,768 outputs: every core busy
    memory = moved / (4 * 2e9 * 32 * 0.8)
    assert model.seconds([g])[0] == pytest.approx(7e-6 + max(compute, memory), rel=1e-12)
    # one output row of 4 channels: 1 thread of 4; DRAM-sized weights use the DRAM bandwidth
    small = Conv(512, 1, 4, 1).graph()
    t = model.seconds([small], batch_size=1)[0]
    small_flops = 2 * 4 * 512
    small_moved = (512 + 4) * 4 + 4 * 512 * 4
    expected = 7e-6 + max(small_flops / (1 * 2e9 * 16 * 0.4), small_moved / (4 * 2e9 * 32 * 0.8))
    assert t == pytest.approx(expected, rel=1e-12)
    # two of the four cores: half the rate (and the L2 bandwidth); more than four is refused
    two = CpuCostModel(device, cal, threads=2).seconds([g])[0]
    assert two == pytest.approx(7e-6 + max(2 * compute, 2 * memory), rel=1e-12)
    with pytest.raises(ValueError, match="threads: must be 1 to toy's 4 cores, got 8"):
        CpuCostModel(device, cal, threads=8)


def test_a_fused_runtime_folds_norms_and_a_graph_runtime_drops_dead_code():
    space = NasBench201Space()
    # node 1's pool feeds only 'none' edges: a graph compiler never runs it
    arch = space.parse("|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|")
    g = space.to_graph(arch)
    from dataclasses import replace

    phone = get_any_device("Samsung-S7", None, "cpu")
    eager = CpuCostModel(replace(phone, runtime="eager"), CpuCalibration())
    counts = eager.counts([g])[0]
    graph_rt = CpuCostModel(replace(phone, runtime="graph"), CpuCalibration())
    live = graph_rt.counts([g])[0]
    pools = sum(1 for _, d in g.nodes(data=True) if d["op"].kind == "pool")
    zeros = sum(1 for _, d in g.nodes(data=True) if d["op"].kind == "zero")
    assert counts.sum() == g.number_of_nodes()
    # every cell's pool (15) and every zero (3 per cell) are gone; the rest still runs
    assert counts.sum() - live.sum() == 15 + zeros and pools >= 15
    fused = CpuCostModel(replace(phone, runtime="fused"), CpuCalibration())
    assert fused.seconds([g])[0] < eager.seconds([g])[0]
    assert graph_rt.seconds([g])[0] < fused.seconds([g])[0]


def test_dead_code_of_a_mixed_population_is_networkx_reachability():
    """``live_nodes`` on a population where some graphs hold a ``zero`` and some do not (only
    those are searched) equals, per graph, networkx's: the nodes that reach a sink once the
    edges into ``zero`` nodes are cut, the zeros themselves left out."""
    import networkx as nx

    from dse.graph.optable import population_ops
    from dse.simulators.cpu.model import live_nodes

    space = NasBench201Space()
    rng = np.random.default_rng(5)
    graphs = [space.to_graph(space.sample(rng)) for _ in range(40)]
    ops, lengths = population_ops(graphs)
    zero = np.array([op.kind == "zero" for op in ops])
    got = np.split(live_nodes(graphs, zero, lengths), np.cumsum(lengths)[:-1])
    for g, live in zip(graphs, got, strict=True):
        kind = {v: d["op"].kind for v, d in g.nodes(data=True)}
        cut = nx.DiGraph(g)
        cut.remove_edges_from([(u, v) for u, v in g.edges if kind[v] == "zero"])
        sinks = [v for v in g if g.out_degree(v) == 0]
        reach = set(sinks).union(*(nx.ancestors(cut, t) for t in sinks))
        want = [v in reach and kind[v] != "zero" for v in g]
        assert live.tolist() == want
    assert any(z.any() for z in np.split(zero, np.cumsum(lengths)[:-1]))
    assert not all(z.any() for z in np.split(zero, np.cumsum(lengths)[:-1]))


def test_row_stationary_utilisation_and_accesses_by_hand():
    sim = AsicSimulator("Eyeriss-v1", calibration="none")
    perfect = Conv(64, 14, 64, 3).graph()  # R=3 rows x E=14 columns, 4 sets: all 168 PEs
    idle = Conv(96, 27, 256, 5, groups=2).graph()  # AlexNet CONV2: 5 x 2 x 13.5 = 135 PEs
    t = sim.totals([perfect, idle])
    assert t["active_pes"].tolist() == [168.0, 135.0]
    r = sim.evaluate_population([perfect, idle])
    assert r["asic_utilization"][0] == pytest.approx(1.0)
    assert r["asic_utilization"][1] == pytest.approx(135 / 168)
    macs = 64 * 14 * 14 * 64 * 9
    assert t["macs"][0] == macs and t["rf_words"][0] == 4 * macs
    ifmap, weights, ofmap = 64 * 14 * 14, 64 * 64 * 9, 64 * 14 * 14
    assert t["dram_words"][0] == ifmap + weights + ofmap
    m_pass = (260 // 2) // 3  # register-file words / 2 per filter row of 3 taps
    reads = ifmap * math.ceil(64 / m_pass)
    assert t["glb_words"][0] == reads + weights + ofmap
    assert t["noc_words"][0] == reads * 3 + weights * 14 + ofmap * 3
    d = sim.device
    energy = d.energy_mac_j * (
        macs
        + 4 * macs * 1
        + t["noc_words"][0] * 2
        + t["glb_words"][0] * 6
        + t["dram_words"][0] * 200
    )
    assert r["asic_energy_mj"][0] == pytest.approx(energy * 1e3)
    cycles = max(macs / 168, t["noc_words"][0] * 2 / 6.4e9 * 200e6) + (
        t["dram_words"][0] * 2 / 0.48e9 * 200e6
    )
    assert r["asic_latency_ms"][0] == pytest.approx(cycles / 200e6 * 1e3)


def test_the_global_buffer_sets_off_chip_traffic_by_hand():
    """A 3x3 layer of 256 -> 256 channels on a 28 x 28 map, batch 1, on Eyeriss (108 KB: 55,296
    words): its outputs' partial sums (784 words a filter) do not fit, so the cheapest tiling
    holds 70 filters' whole maps, reads the input once per block (4 blocks) and the weights
    once (the tiles-outer order would re-read them: the array holds 21,840 of 589,824); 1 MB
    holds all 256 (every tensor once), 8 KB costs more."""
    op = next(d["op"] for _, d in Conv(256, 28, 256, 3).graph().nodes(data=True) if d["op"].macs)
    device = AsicSimulator("Eyeriss-v1", calibration="none").device
    ifmap, weights, ofmap = 256 * 28 * 28, 256 * 256 * 9, 256 * 28 * 28

    def dram(kb: float) -> float:
        return layer_row(op, replace(device, glb_bytes=kb * 1024), 1)[FIELDS.index("dram_words")]

    assert dram(108) == weights + 4 * ifmap + ofmap
    assert dram(1024) == weights + ifmap + ofmap
    assert dram(8) > dram(108)


def test_eyeriss_reproduces_its_published_alexnet_figures():
    """Eyeriss v1 (JSSC 2017, :mod:`dse.simulators.asic.eyeriss`): AlexNet CONV1-5 at batch 4,
    200 MHz: 154, 135, 156, 156, 156 active PEs and 115.3 ms (34.7 frames/s). Tolerance: 2% on
    PEs (the mapper averages CONV1's strips: 151.25), 25% on latency: the model moves raw words
    off chip, not Eyeriss' run-length-compressed activations, and does not overlap the
    transfers with computation."""
    alexnet = EYERISS_V1["alexnet"]
    sim = AsicSimulator("Eyeriss-v1", batch_size=alexnet.batch, calibration="none")
    active = sim.totals(alexnet.graphs())["active_pes"]
    assert np.allclose(active, alexnet.active_pes, rtol=0.02)
    total_ms = sim.evaluate_population(alexnet.graphs())["asic_latency_ms"].sum()
    assert total_ms == pytest.approx(alexnet.ms_per_batch, rel=0.25)


@pytest.mark.parametrize("network", ["alexnet", "vgg16"])
def test_eyeriss_off_chip_traffic_against_its_published_figures(network):
    """DRAM accesses per MAC on the convolution layers: 0.0029 on AlexNet (batch 4), 0.0035 on
    VGG-16 (batch 3), after Eyeriss compresses its activations' zeros. The model's raw words
    are at least that and at most 1.5x."""
    run = EYERISS_V1[network]
    t = AsicSimulator("Eyeriss-v1", batch_size=run.batch, calibration="none").totals(run.graphs())
    per_mac = t["dram_words"].sum() / t["macs"].sum()
    assert run.dram_per_mac <= per_mac <= 1.5 * run.dram_per_mac, per_mac


def test_eyeriss_vgg16_latency_within_2x_of_its_published_figure():
    """VGG-16's convolution layers at batch 3: 0.7 frames/s published (4.3 s a batch). The model
    is 1.8x too fast (it does not have what slows Eyeriss on VGG's large maps beyond the
    buffer's re-reads); 2x is the tolerance (before the buffer's capacity was modelled: 2.5x)."""
    vgg = EYERISS_V1["vgg16"]
    sim = AsicSimulator("Eyeriss-v1", batch_size=vgg.batch, calibration="none")
    total_ms = sim.evaluate_population(vgg.graphs())["asic_latency_ms"].sum()
    assert vgg.ms_per_batch / 2 <= total_ms <= vgg.ms_per_batch


def test_fbnet_space_counts_and_both_string_forms():
    from dse.graph import totals
    from dse.spaces.fbnet import LAYERS, FBNetSpace

    space = FBNetSpace()
    df = pd.read_csv(reference_data("fbnet_latency_devices.csv")).head(5)
    for text, idx in zip(df["arch"], df["op_idx"], strict=True):
        assert space.parse(text) == space.parse(idx)
        assert space.arch_id(space.parse(text)) == text
    # every layer k3_e1: params by hand (conv weights + BN's two per channel + classifier)
    arch = {f"l{i:02d}": "k3_e1" for i in range(22)}
    params, cin = 3 * 16 * 9 + 2 * 16, 16
    for cout, _ in LAYERS:
        params += cin * cin + 2 * cin + cin * 9 + 2 * cin + cin * cout + 2 * cout
        cin = cout
    params += cin * 1504 + 2 * 1504 + 1504 * 100 + 100
    assert totals(space.to_graph(arch)).params == params
    with pytest.raises(ValueError, match="expected 22 ops"):
        space.parse("k3_e1-skip")
    with pytest.raises(ValueError, match="unknown op 'k7_e1'"):
        space.parse("-".join(["k7_e1"] * 22))
    idx = df["op_idx"][0].split()
    assert space.parse("(" + ", ".join(idx) + ")") == space.parse(df["arch"][0])  # a tuple
    for bad in (["-1"] + idx[1:], ["9"] + idx[1:]):  # -1 is not the last op, 9 is no op
        with pytest.raises(ValueError, match="expected 22 op indices in 0..8"):
            space.parse(" ".join(bad))


def test_ten_cells_of_an_unseen_cpu_rank_the_rest_like_the_shipped_fit():
    """HELP's protocol on one device (the benchmark does all): the Xeon Gold 6240 calibrated
    from 10 measured cells with the Silver 4210R's calibration as the prior ranks 1,990 other
    cells within 0.02 of its own 12,000-cell calibration."""
    from dse.simulators.cpu.fit import fit_few_shot, to_vector

    table, space = "nasbench201_latency_devices.csv", NasBench201Space()
    design, y, prior, graphs = unseen_gold(table, "arch_str", space, 2000)
    device = design.model.device
    fit = fit_few_shot(design, np.arange(10), np.ones(10, int), y[:10], prior, "mine", "test")
    rest = np.arange(10, len(y))
    from scipy.stats import spearmanr

    pred = design.predict(to_vector(fit.calibration, device), rest, np.ones(len(rest), int))
    own = CpuCostModel(device, load_cpu_calibration("Xeon-Gold-6240")).seconds(
        [graphs[i] for i in rest]
    )
    rho, rho_own = spearmanr(pred, y[rest])[0], spearmanr(own, y[rest])[0]
    assert rho > rho_own - 0.02, (rho, rho_own)
    assert np.median(np.abs(pred / y[rest] - 1)) < 0.15
    assert fit.calibration.validation is not None and fit.calibration.validation.fitted_on == 10


def test_calibrate_and_cost_a_cpu_from_the_command_line(tmp_path, capsys):
    from dse.cli import main

    df = pd.read_csv(reference_data("nasbench201_latency_devices.csv")).sample(40, random_state=1)
    measured = tmp_path / "m.csv"
    pd.DataFrame({"arch": df["arch_str"][:10], "latency_ms": df["silver_4114_ms"][:10]}).to_csv(
        measured, index=False
    )
    out = tmp_path / "mine.toml"
    code = main(
        [
            "calibrate",
            "--device",
            "Xeon-Silver-4114",
            "--measured",
            str(measured),
            "--out",
            str(out),
            "--prior",
            "Xeon-Gold-6240",
        ]
    )
    assert code == 0 and out.exists()
    assert "prior: Xeon-Gold-6240" in capsys.readouterr().out
    archs = tmp_path / "a.csv"
    df[["arch_str"]][10:].to_csv(archs, index=False)
    pred = tmp_path / "pred.csv"
    code = main(
        [
            "cost",
            "--space",
            "nasbench201",
            "--archs",
            str(archs),
            "--device",
            "Xeon-Silver-4114",
            "--calibration",
            str(out),
            "--out",
            str(pred),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "expected error: cpu_latency_ms" in text and "Xeon-Silver-4114" in text
    table = pd.read_csv(pred)
    assert len(table) == 30 and (table["cpu_calibration"] == "Xeon-Silver-4114").all()
    rel = np.abs(table["cpu_latency_ms"].to_numpy() / df["silver_4114_ms"][10:].to_numpy() - 1)
    assert np.median(rel) < 0.15


def test_calibrate_an_asic_recovers_a_known_scale_and_costs_energy(tmp_path, capsys):
    from dse.cli import main

    space = NasBench201Space()
    df = pd.read_csv(reference_data("nasbench201_naslib.csv")).head(12)
    graphs = [space.to_graph(space.parse(a)) for a in df["arch_str"]]
    sim = AsicSimulator("Eyeriss-v1", calibration="none")
    truth = 1.3 * (
        sim.evaluate_population(graphs)["asic_latency_ms"]
        + sim.totals(graphs)["layers"] * 2000 / 200e6 * 1e3
    )
    measured = tmp_path / "m.csv"
    pd.DataFrame({"arch": df["arch_str"], "latency_ms": truth}).to_csv(measured, index=False)
    out = tmp_path / "eyeriss.toml"
    code = main(
        ["calibrate", "--device", "Eyeriss-v1", "--measured", str(measured), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    from dse.simulators.asic.calibration import load_asic_calibration

    cal = load_asic_calibration(out)
    assert cal.scale == pytest.approx(1.3, rel=1e-6)
    assert cal.layer_overhead_cycles == pytest.approx(2000, rel=1e-4)
    capsys.readouterr()
    code = main(
        ["cost", "--network", "resnet18", "--device", "Eyeriss-v1", "--calibration", str(out)]
    )
    text = capsys.readouterr().out
    assert code == 0 and "asic_energy_mj" in text and "asic_utilization" in text
    devices = tmp_path / "devices.toml"  # a second array: the calibration is not its
    devices.write_text(
        '[twin]\nfamily = "asic"\npe_rows = 12\npe_cols = 14\nfrequency_mhz = 200\n'
        "glb_kb = 108\ndram_bandwidth_gbs = 1\n"
    )
    twin = ["--device", "twin", "--devices-file", str(devices), "--calibration", str(out)]
    assert main(["cost", "--network", "resnet18", *twin]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "was fitted on 'Eyeriss-v1', and the device is 'twin'" in lines[0]


def test_an_asic_measured_at_two_batch_sizes_is_fitted_on_both(tmp_path, capsys):
    """Eyeriss published its runs at batch 3 and 4: measurements at several batch sizes fit one
    scale and per-layer cost (paid once per batch), each batch size with its own error record,
    an architecture's points held out together."""
    from dse.cli import main
    from dse.simulators.asic.calibration import load_asic_calibration

    space = NasBench201Space()
    df = pd.read_csv(reference_data("nasbench201_naslib.csv")).head(8)
    graphs = [space.to_graph(space.parse(a)) for a in df["arch_str"]]
    rows = []
    for b in (1, 4):
        sim = AsicSimulator("Eyeriss-v1", batch_size=b, calibration="none")
        ms = sim.evaluate_population(graphs)["asic_latency_ms"]
        truth = 1.3 * (ms + sim.totals(graphs)["layers"] * 2000 / 200e6 * 1e3)
        rows += [(a, t, b) for a, t in zip(df["arch_str"], truth, strict=True)]
    measured = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["arch", "latency_ms", "batch_size"]).to_csv(measured, index=False)
    out = tmp_path / "eyeriss.toml"
    args = ["calibrate", "--device", "Eyeriss-v1", "--measured", str(measured), "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    cal = load_asic_calibration(out)
    assert cal.scale == pytest.approx(1.3, rel=1e-6)
    assert cal.layer_overhead_cycles == pytest.approx(2000, rel=1e-4)
    assert [e.condition for e in cal.validation.errors] == ["batch 1", "batch 4"]
    assert [e.n for e in cal.validation.errors] == [8, 8] and cal.validation.fitted_on == 8
    assert all(e.median < 1e-6 for e in cal.validation.errors)
    for b, other in ((4, 1), (2, 0)):  # batch 2 was not measured: the line says so
        sim = AsicSimulator("Eyeriss-v1", batch_size=b, calibration=str(out))
        line = sim.fidelity()["asic_latency_ms"].line("asic_latency_ms")
        assert (f"batch {b}, 8 points" in line) == bool(other), line
        assert ("not batch 2" in line) == (b == 2), line


@pytest.mark.parametrize(
    "args, message",
    [
        (["cost", "--network", "resnet18", "--device", "Pixel-9"], "--device: 'Pixel-9'"),
        (
            ["calibrate", "--device", "Pixel-9", "--measured", "m.csv", "--out", "x.toml"],
            "--device: 'Pixel-9'",
        ),
        (
            ["cost", "--network", "resnet18", "--device", "Pixel-3", "--calibration", "nope"],
            "calibration: 'nope' is neither",
        ),
    ],
)
def test_bad_devices_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, args, message):
    from dse.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(args)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_list_shows_every_family_and_the_shipped_cpu_calibrations(capsys):
    from dse.cli import main

    assert main(["list", "devices"]) == 0
    text = capsys.readouterr().out
    assert "Raspberry-Pi-4" in text and "cpu:" in text and "Eyeriss-v1" in text
    assert main(["list", "calibrations"]) == 0
    text = capsys.readouterr().out
    assert "Pixel-3" in text and "Samsung-A50" in text


def test_a_new_cpu_is_calibrated_from_the_reference_networks_by_name(tmp_path, capsys):
    """A user measures the zoo's reference networks on a device (here 1.5x the Raspberry Pi 4's
    data-sheet figures), names them in the CSV, and costs a table of names with the fit."""
    from dse.cli import main
    from dse.spaces.zoo import NETWORKS, build

    device = get_any_device("Raspberry-Pi-4", None, "cpu")
    sheet = CpuCostModel(device, CpuCalibration(device=device.name))
    names = sorted(NETWORKS)
    truth = 1.5e3 * sheet.seconds([build(n) for n in names])
    measured = tmp_path / "pi.csv"
    measured.write_text(
        "arch,latency_ms\n" + "".join(f"{n},{t}\n" for n, t in zip(names[:-1], truth[:-1]))
    )
    out = tmp_path / "pi.toml"
    args = ["--measured", str(measured), "--out", str(out), "--prior", "none"]
    code = main(["calibrate", "--device", device.name, "--space", "zoo", *args, "--tables", "none"])
    assert code == 0, capsys.readouterr().err
    archs = tmp_path / "archs.csv"
    archs.write_text("arch\n" + "\n".join(names) + "\n")
    pred = tmp_path / "pred.csv"
    cost = ["cost", "--space", "zoo", "--archs", str(archs), "--device", device.name]
    assert main([*cost, "--calibration", str(out), "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    assert list(table["network"]) == names  # the names read back as they were written
    assert table["cpu_latency_ms"].to_numpy() == pytest.approx(truth, rel=0.02)  # unseen: last
    capsys.readouterr()
    archs.write_text("arch\nresnet19\n")
    assert main([*cost, "--out", str(tmp_path / "bad.csv")]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "row 1: network: 'resnet19' is not allowed" in lines[0]
    assert not (tmp_path / "bad.csv").exists()
