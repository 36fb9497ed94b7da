"""EDD differentiable co-search (dissertation chapter 2): what the issue's "done when" asks.

1. ``alpha``: an alpha sweep (0, 0.1, 1, 10) x seeds on the recursive ZCU102 target: the derived
   networks' simulated latency (the FPGA simulator's own allocator at 224x224), MACs and mean
   weight bits, and each search's wall time (the target: one search under 15 minutes here).
2. ``compare``: EDD against NSGA-II (the pymoo driver with the ``trained_accuracy`` provider) and
   30 random architectures, at EDD's wall-clock, same space, data and simulator; every method's
   networks are retrained the same way (``train_and_test``: 3 epochs on the digits at 32x32) and
   the hypervolume of (test accuracy, simulated latency) is printed per method and seed.
3. ``table``: table 2.1's measured latencies of the zoo networks against the calibrated Titan-RTX
   roofline and a recursive ZCU102 model: Spearman and median |predicted / measured - 1|.

    python benchmarks/edd.py [--part alpha|compare|table|all] [--seeds 3] [--epochs 8] [--quick]

Data: data/edd_table2_1.csv (table 2.1); images: scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from timing import DATA

from dse.drivers.edd.search import EddConfig, EddSearch
from dse.fidelity import fit_scale_and_overhead
from dse.graph import totals
from dse.proxies.trained import train_and_test
from dse.registry import SIMULATORS
from dse.results.pareto import hypervolume_minimised, nondominated_mask
from dse.simulators.gpu.fewshot import MeasurementDesign, fit_few_shot
from dse.spaces.mbconv import MBConvChainSpace
from dse.spaces.zoo import build

ALPHAS = (0.0, 0.1, 1.0, 10.0)


def fpga_sim():
    return SIMULATORS.create("fpga", board="ZCU102", architecture="recursive")


def describe(space: MBConvChainSpace, arch: dict, sim) -> dict:
    g = space.to_graph(arch)
    blocks = [i for i in range(space.num_blocks) if arch[f"b{i:02d}.op"] != "skip"]
    metrics = sim.evaluate_population([g])
    return {
        "latency_ms": float(metrics["fpga_latency_ms"][0]),
        "dsp": float(metrics["fpga_dsp"][0]),
        "macs_m": totals(g).macs / 1e6,
        "mean_bits": float(np.mean([arch[f"b{i:02d}.bits"] for i in blocks])) if blocks else 0,
        "blocks": len(blocks),
    }


def search(space, sim, config: EddConfig):
    """(every epoch's derived architecture, wall seconds) of one EDD search."""
    t0 = time.perf_counter()
    s = EddSearch(space, sim, config)
    archs = [s.run_epoch().arch for _ in range(config.epochs)]
    return archs, time.perf_counter() - t0


def alpha_sweep(seeds: int, epochs: int, width: float) -> None:
    space, sim = MBConvChainSpace(), fpga_sim()
    rows = []
    for alpha in ALPHAS:
        for seed in range(seeds):
            archs, seconds = search(
                space, sim, EddConfig(epochs, alpha=alpha, seed=seed, width=width)
            )
            rows.append(
                {"alpha": alpha, "seed": seed, "search_s": seconds}
                | describe(space, archs[-1], sim)
            )
            print(f"  alpha {alpha:5.1f} seed {seed}: {rows[-1]}", flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby("alpha")[["latency_ms", "dsp", "macs_m", "mean_bits", "blocks", "search_s"]]
    print("\nderived network per alpha (mean over seeds; simulated at 224x224, ZCU102 recursive):")
    print(table.mean().round(3).to_string())
    lat = table.mean()["latency_ms"].to_numpy()
    print(f"latency never increases with alpha: {bool(np.all(np.diff(lat) <= 1e-9))}")
    lo, hi = df[df.alpha == 0].mean(numeric_only=True), df[df.alpha == 10].mean(numeric_only=True)
    print(
        f"alpha 0 vs 10: MACs {lo.macs_m:.0f}M vs {hi.macs_m:.0f}M, mean bits {lo.mean_bits:.2f} "
        f"vs {hi.mean_bits:.2f}; longest search {df.search_s.max():.0f} s (target < 900 s)"
    )


def _front_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of (accuracy max, latency min) points against ``ref`` (minimised form)."""
    f = np.column_stack([-points[:, 0], points[:, 1]])
    return hypervolume_minimised(f[nondominated_mask(f)], ref)


def compare(seeds: int, epochs: int, width: float, random_archs: int) -> None:
    from dse.config import parse_config
    from dse.results import load
    from dse.runner import run

    space, sim = MBConvChainSpace(), fpga_sim()
    scored: dict[str, dict] = {}  # arch_id -> (accuracy, latency), each network trained once

    def score(arch) -> tuple[float, float]:
        key = space.arch_id(arch)
        if key not in scored:
            g = space.to_graph(arch)
            scored[key] = (train_and_test(g), describe(space, arch, sim)["latency_ms"])
        return scored[key]

    results = []
    rng = np.random.default_rng(0)
    random_points = np.array([score(space.sample(rng)) for _ in range(random_archs)])
    for seed in range(seeds):
        archs, seconds = search(space, sim, EddConfig(epochs, seed=seed, width=width))
        edd = np.array([score(a) for a in archs])
        cfg = {
            "run": {"name": f"nsga-{seed}", "seed": seed, "output": "results/edd-benchmark"},
            "space": {"name": "mbconv"},
            "proxies": {"trained_accuracy": {"epochs": 1, "resolution": 16}},
            "simulators": {"fpga": {"board": "ZCU102"}},
            "search": {
                "driver": "pymoo",
                "pop_size": 8,
                "max_evaluations": 10_000,
                "max_seconds": seconds,
            },
            "objectives": [
                {"metric": "trained_accuracy", "direction": "max"},
                {"metric": "fpga_latency_ms", "direction": "min"},
            ],
        }
        df = load(run(parse_config(cfg), progress=False).path)
        df = df[df.status == "ok"]
        f = np.column_stack([-df.trained_accuracy, df.fpga_latency_ms])
        front = df[nondominated_mask(f)]
        nsga = np.array([score(space.decode(np.array(e))) for e in front.encoding])
        results.append((seed, seconds, len(df), edd, nsga))
        print(f"  seed {seed}: EDD {seconds:.0f} s; NSGA-II evaluated {len(df)} in the same time")
    everything = np.vstack([random_points] + [np.vstack([e, n]) for _, _, _, e, n in results])
    ref = np.array([0.0, everything[:, 1].max() * 1.1])
    print(
        "\nhypervolume of (test accuracy, simulated ZCU102 latency ms), networks retrained alike:"
    )
    print(f"{'seed':>4s} {'EDD':>8s} {'NSGA-II':>8s} {'random-' + str(random_archs):>10s}")
    for seed, _, _, edd, nsga in results:
        print(
            f"{seed:4d} {_front_hv(edd, ref):8.3f} {_front_hv(nsga, ref):8.3f} "
            f"{_front_hv(random_points, ref):10.3f}"
        )


def table_2_1() -> None:
    ref = pd.read_csv(DATA / "edd_table2_1.csv")
    gpu = SIMULATORS.create("gpu", device="Titan-RTX")
    fpga = SIMULATORS.create("fpga", board="ZCU102", architecture="recursive")
    rows = []
    for name in ref.network:
        g32, g16 = build(name), build(name, weight_bits=16, act_bits=16)
        rows.append(
            {
                "network": name,
                "gpu_ms": float(gpu.evaluate_population([g32])["gpu_latency_ms"][0]),
                "fpga_ms": float(fpga.evaluate_population([g16])["fpga_latency_ms"][0]),
            }
        )
    df = ref.merge(pd.DataFrame(rows), on="network")
    # leave-one-network-out recalibration to the table's own hosts: the GPU few-shot fit (Titan
    # RTX prior) and the FPGA scale + per-layer cost, each fitted on the other networks
    graphs32 = [build(n) for n in df.network]
    design = MeasurementDesign(gpu.model.device, graphs32, [1])
    y = df.titan_rtx_ms.to_numpy() * 1e-3
    loo_gpu = np.empty(len(df))
    for i in range(len(df)):
        rest = np.setdiff1d(np.arange(len(df)), [i])
        fit = fit_few_shot(
            design, rest, np.ones(len(rest), int), y[rest], gpu.model.calibration, "t21", "t21"
        )
        loo_gpu[i] = design.predict(fit.calibration, np.array([i]), np.array([1]))[0] * 1e3
    df["gpu_loo_ms"] = loo_gpu
    layers = np.bincount(
        fpga.layers([build(n, weight_bits=16, act_bits=16) for n in df.network]).owner
    )
    known = df.zcu102_ms.notna().to_numpy()
    loo_fpga = np.full(len(df), np.nan)
    for i in np.flatnonzero(known):
        rest = np.flatnonzero(known & (np.arange(len(df)) != i))
        sc, per = fit_scale_and_overhead(
            df.fpga_ms.to_numpy()[rest], layers[rest], df.zcu102_ms.to_numpy()[rest]
        )
        loo_fpga[i] = sc * df.fpga_ms.iloc[i] + per * layers[i]
    df["fpga_loo_ms"] = loo_fpga
    cols = [
        "network",
        "titan_rtx_ms",
        "gpu_ms",
        "gpu_loo_ms",
        "zcu102_ms",
        "fpga_ms",
        "fpga_loo_ms",
    ]
    print(df[cols].round(2).to_string())
    for measured, predicted, label in (
        ("titan_rtx_ms", "gpu_ms", "Titan RTX (calibrated roofline, batch 1, fp32)"),
        ("titan_rtx_ms", "gpu_loo_ms", "Titan RTX, few-shot recalibrated, leave-one-out"),
        ("zcu102_ms", "fpga_ms", "ZCU102 (recursive model, 16 bits, uncalibrated)"),
        ("zcu102_ms", "fpga_loo_ms", "ZCU102, scale + per-layer cost, leave-one-out"),
    ):
        d = df.dropna(subset=[measured])
        ratio = d[predicted] / d[measured]
        print(
            f"{label}: Spearman {spearmanr(d[predicted], d[measured])[0]:.3f}, median "
            f"|pred/meas - 1| {np.median(np.abs(ratio - 1)):.1%}, median ratio "
            f"{ratio.median():.2f} ({len(d)} networks)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=("alpha", "compare", "table", "all"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--random", type=int, default=30, help="random architectures (compare)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, 4 random archs")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.quick:
        args.epochs, args.seeds, args.random = 2, 1, 4
    if args.part in ("table", "all"):
        print("== table 2.1 against the simulators")
        table_2_1()
    if args.part in ("alpha", "all"):
        print(f"\n== alpha sweep ({args.seeds} seeds, {args.epochs} epochs)")
        alpha_sweep(args.seeds, args.epochs, args.width)
    if args.part in ("compare", "all"):
        print(f"\n== EDD vs NSGA-II vs random ({args.seeds} seeds)")
        compare(args.seeds, args.epochs, args.width, args.random)


if __name__ == "__main__":
    main()
