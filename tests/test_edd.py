"""EDD's differentiable cost against the simulators it is built from (dissertation 2.3-2.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dse.drivers.edd.cost import FpgaCost, GpuCost, smooth_max  # noqa: E402
from dse.drivers.edd.tables import (  # noqa: E402
    GPU_PRECISION,
    candidate_ops,
    fpga_tables,
    gpu_tables,
    one_hot,
)
from dse.registry import SIMULATORS  # noqa: E402
from dse.simulators.fpga import pipelined, recursive  # noqa: E402
from dse.spaces.mbconv import MBConvChainSpace  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def fpga():
    space = MBConvChainSpace()
    sim = SIMULATORS.create("fpga", board="ZCU102", double_buffering=False)
    tables = fpga_tables(space, sim)
    return space, sim, tables, FpgaCost(tables, F64)


def _archs(space, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_one_hot_recursive_cost_is_the_simulators(fpga):
    space, sim, tables, cost = fpga
    rng = np.random.default_rng(1)
    for arch in _archs(space):
        P, Q = one_hot(space, arch)
        pf = rng.uniform(0.0, 7.0, len(tables.ip_names))
        lat, dsp = cost.recursive(
            torch.tensor(P, dtype=F64), torch.tensor(Q, dtype=F64), torch.tensor(pf), "exact"
        )
        ref_lat, ref_dsp = recursive.cost_at(
            sim.layers([space.to_graph(arch)]),
            dict(zip(tables.ip_names, pf)),
            clock_hz=sim.board.clock_hz,
            phi=sim.phi,
            psi=sim.psi,
            overlap=False,
        )
        assert float(lat) == pytest.approx(ref_lat, rel=1e-6)
        assert float(dsp) == pytest.approx(ref_dsp, rel=1e-6)


def test_one_hot_pipelined_cost_is_the_simulators(fpga):
    space, sim, tables, cost = fpga
    n_stem = len(sim.layers([space.segment_graphs(16)[0]]))
    rng = np.random.default_rng(2)
    for arch in _archs(space, seed=3):
        P, Q = one_hot(space, arch)
        pf = rng.uniform(0.0, 6.0, (space.num_blocks, len(candidate_ops(space))))
        pf_fixed = rng.uniform(0.0, 6.0, len(tables.fixed_ip))
        period, latency, dsp = cost.pipelined(
            torch.tensor(P, dtype=F64),
            torch.tensor(Q, dtype=F64),
            torch.tensor(pf),
            torch.tensor(pf_fixed),
        )
        # the same parallel factors per stage, in the full graph's layer order
        per_stage = list(pf_fixed[:n_stem])
        for i in range(space.num_blocks):
            m = candidate_ops(space).index(arch[f"b{i:02d}.op"])
            per_stage += [pf[i, m]] * int(np.sum((tables.block == i) & (tables.op == m)))
        per_stage += list(pf_fixed[n_stem:])
        ref = pipelined.cost_at(
            sim.layers([space.to_graph(arch)]),
            np.array(per_stage),
            clock_hz=sim.board.clock_hz,
            phi=sim.phi,
            psi=sim.psi,
            overlap=False,
        )
        np.testing.assert_allclose([float(period), float(latency), float(dsp)], ref, rtol=1e-6)


def test_one_hot_gpu_cost_is_the_simulators():
    space = MBConvChainSpace(target="gpu")
    tables = gpu_tables(space, SIMULATORS.create("gpu", device="Titan-RTX"))
    cost = GpuCost(tables, F64)
    for arch in _archs(space, seed=4):
        P, q = one_hot(space, arch)
        lat = cost.latency(torch.tensor(P, dtype=F64), torch.tensor(q, dtype=F64))
        precision = GPU_PRECISION[arch["bits"]]
        sim = SIMULATORS.create("gpu", device="Titan-RTX", precision=precision)
        ref = sim.evaluate_population([space.to_graph(arch)])["gpu_latency_ms"][0] * 1e-3
        assert float(lat) == pytest.approx(ref, rel=1e-6)


def _relaxed(space, seed=0):
    g = torch.Generator().manual_seed(seed)
    P = torch.softmax(
        torch.randn(space.num_blocks, len(candidate_ops(space)), generator=g, dtype=F64), 1
    )
    Q = torch.softmax(torch.randn(space.num_blocks, 3, generator=g, dtype=F64), 1)
    return P, Q


def test_cost_gradients_are_right(fpga):
    space, _, tables, cost = fpga
    P, Q = _relaxed(space)
    pf = torch.rand(len(tables.ip_names), dtype=F64) * 5
    for sharing in ("tanh", "exact"):
        assert torch.autograd.gradcheck(
            lambda p, q, f, s=sharing: cost.recursive(p, q, f, s),
            (P.clone().requires_grad_(), Q.clone().requires_grad_(), pf.clone().requires_grad_()),
        )
    pf2 = torch.rand(space.num_blocks, len(candidate_ops(space)), dtype=F64) * 5
    pff = torch.rand(len(tables.fixed_ip), dtype=F64) * 5
    assert torch.autograd.gradcheck(
        lambda p, q, a, b: cost.pipelined(p, q, a, b, tau=0.05, scale_s=1e-4),
        tuple(t.clone().requires_grad_() for t in (P, Q, pf2, pff)),
    )
    gpu = GpuCost(
        gpu_tables(MBConvChainSpace(target="gpu"), SIMULATORS.create("gpu", device="Titan-RTX")),
        F64,
    )
    q = torch.softmax(torch.randn(3, dtype=F64), 0)
    assert torch.autograd.gradcheck(
        gpu.latency, (P.clone().requires_grad_(), q.clone().requires_grad_())
    )
    # eq. 2.13: every layer's latency scales as 2**-pf, so dLat/dpf summed over IPs = -ln2 Lat
    pf = pf.clone().requires_grad_()
    lat, _ = cost.recursive(P, Q, pf)
    (grad,) = torch.autograd.grad(lat, pf)
    assert float(grad.sum()) == pytest.approx(-math.log(2) * float(lat.detach()), rel=1e-9)


def test_tanh_sharing_counts_a_shared_ip_once_and_an_unchosen_one_not(fpga):
    space, _, tables, cost = fpga
    k7 = tables.ip_names.index("dwconv7x7")
    assert not tables.fixed_uses[k7]  # only searchable blocks use the 7x7 depthwise IP
    pf = torch.zeros(len(tables.ip_names), dtype=F64)
    Q = torch.zeros(space.num_blocks, 3, dtype=F64)
    Q[:, 2] = 1  # 16 bits: Psi = 1 DSP per lane
    for k in (3, 5, 8):
        P = torch.zeros(space.num_blocks, len(candidate_ops(space)), dtype=F64)
        P[:, candidate_ops(space).index("k3_e4")] = 1
        P[:k, candidate_ops(space).index("k3_e4")] = 0
        P[:k, candidate_ops(space).index("k7_e6")] = 1  # the 7x7 op in k blocks
        _, with_k7 = cost.recursive(P, Q, pf, "tanh")
        _, exact = cost.recursive(P, Q, pf, "exact")
        P_without = P.clone()
        P_without[:k, candidate_ops(space).index("k7_e6")] = 0
        P_without[:k, candidate_ops(space).index("k3_e4")] = 1
        _, without = cost.recursive(P_without, Q, pf, "tanh")
        counted = float(with_k7 - without)  # the 7x7 IP's share of the DSPs (one lane, Psi 1)
        assert 1 - math.tanh(k) - 1e-12 <= 1 - counted <= 1 - math.tanh(k) + 1e-9
        assert float(exact - without) == pytest.approx(1.0)  # counted once, not k times
        assert float(without) == pytest.approx(float(cost.recursive(P_without, Q, pf, "exact")[1]))


def test_smooth_max_is_a_unit_safe_upper_bound():
    x = torch.tensor([1e-4, 3e-4, 2e-4], dtype=F64)
    assert float(smooth_max(x, 0.0)) == pytest.approx(3e-4)
    soft = float(smooth_max(x, 0.01, scale=3e-4))
    assert 3e-4 <= soft <= 3e-4 * (1 + 0.01 * math.log(3)) + 1e-15
    # the same in milliseconds: the result scales with the units
    ms = float(smooth_max(x * 1e3, 0.01, scale=3e-1))
    assert ms == pytest.approx(soft * 1e3, rel=1e-12)


def _edd_config(tmp_path, epochs: int, budget: int, architecture: str = "recursive") -> dict:
    return {
        "run": {"name": "edd", "seed": 3, "output": str(tmp_path)},
        "space": {"name": "mbconv", "target": "fpga"},
        "simulators": {"fpga": {"board": "ZC706", "architecture": architecture, "dsp_budget": 600}},
        "search": {
            "driver": "edd",
            "max_evaluations": budget,
            "epochs": epochs,
            "width": 0.125,
            "resolution": 16,
            "batch_size": 128,
            "retrain_epochs": 1,
            "warmup_epochs": 0,
        },
        "objectives": [
            {"metric": "fpga_latency_ms", "direction": "min"},
            {"metric": "fpga_dsp", "direction": "min"},
        ],
    }


@pytest.mark.slow
def test_edd_run_records_every_epoch_meets_the_budget_and_resumes_exactly(tmp_path):
    import json

    from dse.config import parse_config
    from dse.results import load
    from dse.runner import run

    whole = run(parse_config(_edd_config(tmp_path / "a", 3, 3)), progress=False)
    rows = load(whole.path).sort_values("eval_id")
    epochs = json.loads((whole.path / "driver" / "edd_epochs.json").read_text())
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert (whole.path / "driver" / "edd.pt").exists()
    # every epoch's derived design is a record, re-tuned by the simulator's own allocator
    assert len(rows) == len({e["arch_id"] for e in epochs})
    assert set(rows["arch_id"]) == {e["arch_id"] for e in epochs}
    assert (rows["fpga_dsp"] <= 600).all() and (rows["fpga_feasible"] == 1).all()
    for e in epochs:
        assert e["simulated_fpga_dsp"] <= 600
    assert rows["edd_val_accuracy"].between(0, 1).all()
    assert rows["edd_tau"].iloc[0] == pytest.approx(5.0)
    assert not np.isnan(epochs[-1]["retrained_test_accuracy"])

    # killed after two epochs (the budget stops it), then resumed: the same records
    cfg = _edd_config(tmp_path / "b", 3, 2)
    part = run(parse_config(cfg), progress=False)
    assert len(json.loads((part.path / "driver" / "edd_epochs.json").read_text())) == 2
    resumed = run(parse_config(cfg), resume=str(part.path), max_evaluations=3, progress=False)
    again = load(resumed.path).sort_values("eval_id")
    keep = ["arch_hash", "fpga_latency_ms", "fpga_dsp", "edd_val_accuracy", "edd_derived_dsp"]
    assert again[keep].reset_index(drop=True).equals(rows[keep].reset_index(drop=True))


def test_edd_refuses_a_space_or_simulator_it_cannot_search(tmp_path):
    from dse.config import parse_config
    from dse.params import ConfigError
    from dse.runner import run

    cfg = _edd_config(tmp_path, 1, 1)
    cfg["search"]["alpha"] = -1
    with pytest.raises(ConfigError, match="search.alpha: must be >= 0"):
        run(parse_config(cfg), progress=False)
    cfg = _edd_config(tmp_path, 1, 1)
    cfg["search"]["epoch"] = 2
    with pytest.raises(ConfigError, match="search.epoch: unknown parameter"):
        run(parse_config(cfg), progress=False)
    cfg = _edd_config(tmp_path, 1, 1)
    cfg["simulators"] = {"gpu": {"device": "Titan-RTX"}}
    cfg["objectives"] = [{"metric": "gpu_latency_ms", "direction": "min"}]
    with pytest.raises(
        ConfigError, match=r"search.driver: edd on a target = .fpga. space.*\[simulators.fpga\]"
    ):
        run(parse_config(cfg), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["gpu", "fpga-pipelined"])
def test_edd_searches_the_other_targets(tmp_path, target):
    from dse.config import parse_config
    from dse.results import load
    from dse.runner import run

    cfg = _edd_config(tmp_path, 2, 2, architecture="pipelined")
    cfg["search"]["retrain_final"] = False
    if target == "gpu":
        cfg["space"]["target"] = "gpu"
        cfg["simulators"] = {"gpu": {"device": "Titan-RTX"}}
        cfg["objectives"] = [{"metric": "gpu_latency_ms", "direction": "min"}]
    rows = load(run(parse_config(cfg), progress=False).path)
    assert len(rows) >= 1 and (rows["status"] == "ok").all()
    assert (rows["edd_expected_perf_ms"] > 0).all()
    if target == "gpu":
        assert (rows["edd_expected_dsp"] == 0).all()
    else:
        assert (rows["fpga_dsp"] <= 600).all()
        # the derived design at the search's parallel factors is priced like the simulator's
        assert (rows["edd_derived_dsp"] > 0).all()
