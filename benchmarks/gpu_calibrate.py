"""Fit the shipped GPU calibrations and report how well the roofline model predicts measurements.

1. A100-80GB-PCIe from the Llama-33B operator tables 6.4-6.6 (168 cells): operational-intensity
   agreement, roofline upper bound, per-class fit, median relative error of TFLOP/s.
2. Titan RTX and GTX 1080 Ti from NAS-Bench-201 latencies (HW-NAS-Bench / HELP measurements,
   batch 1, 32, 256): fit on 1,000 random cells (seed 0), report Spearman rho and median relative
   error on the other 14,263, per device and batch size, against FLOPs alone, and across devices
   (calibrate on one, predict the other from its data sheet).

    python benchmarks/gpu_calibrate.py            # print figures
    python benchmarks/gpu_calibrate.py --write    # also rewrite simulators/gpu/calibrations/*.toml

Data: the repository's data/ folder.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from timing import DATA

from dse.catalogs.devices import get_device
from dse.catalogs.llms import get_llm
from dse.fidelity import ErrorStats, Validation, grouped_folds
from dse.simulators.gpu.calibration import fit_graphs, fit_kernels
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.llm import LlmWorkload
from dse.simulators.gpu.measured import predicted_tflops, table_points
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, GpuCostModel
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "simulators" / "gpu" / "calibrations"
NB201_DEVICES = {"Titan-RTX": "titan_rtx", "GTX-1080-Ti": "1080ti"}
BATCHES = (1, 32, 256)


def fit_a100():
    """The A100-80GB-PCIe calibration fitted to tables 6.4-6.6, and the table points."""
    device = get_device("A100-80GB-PCIe")
    workload = LlmWorkload(get_llm("llama-33b"), GpuCostModel(device))
    pts = table_points(DATA, workload)
    note = (
        "Fitted by benchmarks/gpu_calibrate.py to the Llama-33B operator measurements on "
        "A100-80GB-PCIe of dissertation tables 6.4-6.6 (llama33b_a100pcie_*.csv, 168 cells): "
        "linear = MLP up/gate/down, matmul = attention QK^T and PV (fp16)."
    )
    rep = fit_kernels(
        device,
        pts["op_class"],
        pts["flops"],
        pts["bytes"],
        pts["measured_seconds"],
        pts["kernels"],
        "fp16",
        name="A100-80GB-PCIe",
        note=note,
    )
    return rep, pts, workload


def a100_validation(pts: pd.DataFrame, folds: int = 5) -> Validation:
    """5-fold cross-validation of the A100 fit over the 168 table cells (all are used by the
    shipped fit, so its error is the out-of-fold error of the same procedure)."""
    device = get_device("A100-80GB-PCIe")
    pred = np.empty(len(pts))
    for test in grouped_folds(len(pts), folds, seed=0):
        train = np.setdiff1d(np.arange(len(pts)), test)
        tr = pts.iloc[train]
        cal = fit_kernels(
            device,
            tr["op_class"],
            tr["flops"],
            tr["bytes"],
            tr["measured_seconds"],
            tr["kernels"],
            "fp16",
        ).calibration
        te = pts.iloc[test]
        pred[test] = GpuCostModel(device, cal).seconds(
            te["op_class"].map(CLASS_INDEX).to_numpy(),
            PRECISION_INDEX["fp16"],
            te["flops"].to_numpy(),
            te["bytes"].to_numpy(),
            te["kernels"].to_numpy(),
        )
    y = pts["measured_seconds"].to_numpy()
    return Validation(
        data="Llama-33B operators of dissertation tables 6.4-6.6 (fp16)",
        method="k-fold",
        held_out=f"{folds}-fold cross-validation over the 168 table cells",
        errors=tuple(
            ErrorStats.of(TABLE_CONDITION[t], pred[pts["table"] == t], y[pts["table"] == t])
            for t in sorted(pts["table"].unique())
        ),
        fitted_on=len(pts),
    )


TABLE_CONDITION = {
    "attention_batch16": "table 6.4 attention",
    "attention_seq1024": "table 6.5 attention",
    "mlp_linear": "table 6.6 MLP",
}


def nb201_split(n: int, calibration_cells: int = 1000, seed: int = 0):
    idx = np.random.default_rng(seed).permutation(n)
    return idx[:calibration_cells], idx[calibration_cells:]


def fit_nb201(graphs, df, device_name: str, cal_idx) -> object:
    col = NB201_DEVICES[device_name]
    note = (
        "Fitted by benchmarks/gpu_calibrate.py to measured NAS-Bench-201 latencies on "
        f"{device_name} "
        "(nasbench201_latency_measured.csv, HW-NAS-Bench/HELP, PyTorch eager, fp32), batch 1, 32 "
        "and "
        f"256, on {len(cal_idx)} random cells (seed 0); overhead_us is the per-kernel launch and "
        "dispatch cost of eager PyTorch on the measuring host."
    )
    return fit_graphs(
        get_device(device_name),
        [graphs[i] for i in cal_idx],
        {b: df[f"{col}_{b}_ms"].to_numpy()[cal_idx] * 1e-3 for b in BATCHES},
        name=device_name,
        note=note,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the shipped calibration files")
    ap.add_argument(
        "--cells",
        type=int,
        default=0,
        help="use only the first N cells of the latency CSV (0: all)",
    )
    args = ap.parse_args()
    if args.write and args.cells:
        ap.error("--write fits the shipped calibrations on all cells; drop --cells")

    rep, pts, workload = fit_a100()
    oi_err = (pts["model_oi"] / pts["operational_intensity"] - 1).abs()
    roof = predicted_tflops(pts, workload, calibrated=False)
    cal_model = LlmWorkload(workload.config, GpuCostModel(workload.model.device, rep.calibration))
    pred = predicted_tflops(pts, cal_model)
    err = np.abs(pred / pts["tflops"] - 1)
    print("== Llama-33B on A100-80GB-PCIe, tables 6.4-6.6 (168 cells)")
    print(f"operational intensity: max relative difference {oi_err.max():.4%} (target < 1%)")
    print(
        f"uncalibrated roofline / measured TFLOP/s: min {np.min(roof / pts['tflops']):.3f} "
        f"(>= 1 everywhere: {bool(np.all(roof >= pts['tflops']))})"
    )
    for c, e in rep.calibration.classes.items():
        print(
            f"  fitted {c:7s}: eta_compute {e.compute:.3f}  eta_memory {e.memory:.3f}  overhead "
            f"{e.overhead_s * 1e6:.1f} us (shared)"
        )
    print(
        f"calibrated TFLOP/s median relative error: {np.median(err):.2%} (target < 20%); "
        + ", ".join(
            f"{t} {np.median(err[pts['table'] == t]):.2%}" for t in sorted(pts["table"].unique())
        )
    )
    a100 = replace(rep.calibration, validation=a100_validation(pts))
    for e in a100.validation.errors:
        print(f"  5-fold cross-validated: {e.describe()}")
    if args.write:
        (OUT / "A100-80GB-PCIe.toml").write_text(a100.to_toml())

    df = pd.read_csv(DATA / "nasbench201_latency_measured.csv")
    if args.cells:
        df = df.head(args.cells)
    space = NasBench201Space()
    t0 = time.perf_counter()
    graphs = [space.to_graph(parse_arch_str(a)) for a in df["arch_str"]]
    print(
        f"\n== NAS-Bench-201 measured latency ({len(df)} cells, graphs built in "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    cal_idx, held = nb201_split(len(df))
    fits = {}
    for name in NB201_DEVICES:
        t0 = time.perf_counter()
        fits[name] = fit_nb201(graphs, df, name, cal_idx).calibration
        d, p = fits[name].default, fits[name].classes["pool"]
        print(
            f"fit {name:11s} on {len(cal_idx)} cells in {time.perf_counter() - t0:.1f} s: "
            f"eta_compute {d.compute:.3f} "
            f"eta_memory {d.memory:.3f} overhead {d.overhead_s * 1e6:.1f} us, pool eta_memory "
            f"{p.memory:.3f}"
        )
    held_graphs = [graphs[i] for i in held]
    for name, col in NB201_DEVICES.items():
        errors = []
        for b in BATCHES:
            p = GraphCoster(GpuCostModel(get_device(name), fits[name]), b).cost(held_graphs)
            y = df[f"{col}_{b}_ms"].to_numpy()[held] * 1e-3
            errors.append(ErrorStats.of(f"batch {b}", p.seconds, y))
        fits[name] = replace(
            fits[name],
            validation=Validation(
                data="NAS-Bench-201 cells measured by HW-NAS-Bench/HELP (PyTorch eager, fp32)",
                method="held-out",
                held_out=f"{len(held):,} cells not in the fit (random split, seed 0)",
                errors=tuple(errors),
                fitted_on=len(cal_idx),
            ),
        )
        if args.write:
            (OUT / f"{name}.toml").write_text(fits[name].to_toml())
    flops = GraphCoster(GpuCostModel(get_device("Titan-RTX")), 1).cost(held_graphs).flops
    print(f"\nheld-out cells: {len(held)}; columns: Spearman rho / median relative error")
    print(
        f"{'calibrated on':13s} {'predicting':12s} "
        + " ".join(f"{'batch ' + str(b):>16s}" for b in BATCHES)
        + "   FLOPs-only rho"
    )
    for cal in NB201_DEVICES:
        for dev, col in NB201_DEVICES.items():
            cells, frho = [], []
            for b in BATCHES:
                coster = GraphCoster(GpuCostModel(get_device(dev), fits[cal]), b)
                p = coster.cost(held_graphs).seconds
                y = df[f"{col}_{b}_ms"].to_numpy()[held] * 1e-3
                cells.append(f"{spearmanr(p, y)[0]:.3f} / {np.median(np.abs(p / y - 1)):5.1%}")
                frho.append(f"{spearmanr(flops, y)[0]:.3f}")
            print(
                f"{cal:13s} {dev:12s} "
                + " ".join(f"{c:>16s}" for c in cells)
                + "   "
                + " ".join(frho)
            )


if __name__ == "__main__":
    main()
