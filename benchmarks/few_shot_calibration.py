"""Few-shot device calibration: how many measured networks a new device needs.

Protocol (issue "fidelity travels with the numbers"): calibrate the GTX 1080 Ti from 5, 10, 20
and 50 measured NAS-Bench-201 cells (random, 10 seeds; each cell measured at batch 1, 32 and
256), with the shipped Titan RTX calibration as the prior, and score every other cell of the
15,263 measured ones: Spearman rho and median relative error per batch size, mean over seeds
(and the worst seed). Beside it: the prior alone (the Titan RTX calibration on the 1080 Ti's
data sheet), the fit on 1,000 cells (the shipped method, ``fit_graphs``), and 10 cells measured
at batch 1 only. The same for the Titan RTX from a 1080 Ti prior, and for the ZC706 FPGA
(HW-NAS-Bench's ``fpga_ms``; scale and per-layer cost, against the uncalibrated model and the
1,000-cell fit).

    python benchmarks/few_shot_calibration.py [--seeds 10] [--cells 0]

Data: data/nasbench201_latency_measured.csv (HW-NAS-Bench / HELP measurements).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from timing import DATA

from dse.catalogs.devices import get_device
from dse.fidelity import fit_scale_and_overhead
from dse.registry import SIMULATORS
from dse.simulators.fpga.calibration import fit_fpga_calibration
from dse.simulators.gpu.calibration import fit_graphs
from dse.simulators.gpu.fewshot import MeasurementDesign, fit_few_shot
from dse.simulators.gpu.roofline import load_calibration
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

DEVICES = {"GTX-1080-Ti": ("1080ti", "Titan-RTX"), "Titan-RTX": ("titan_rtx", "GTX-1080-Ti")}
BATCHES = (1, 32, 256)
SIZES = (5, 10, 20, 50)


def score(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(spearmanr(pred, y)[0]), float(np.median(np.abs(pred / y - 1)))


def gpu_table(graphs, df, device_name: str, seeds: int) -> None:
    col, prior_name = DEVICES[device_name]
    device = get_device(device_name)
    prior = load_calibration(prior_name)
    n = len(df)
    design = MeasurementDesign(device, graphs, BATCHES)
    arch = np.repeat(np.arange(n), len(BATCHES))
    batch = np.tile(BATCHES, n)
    y = np.stack([df[f"{col}_{b}_ms"].to_numpy() for b in BATCHES], 1).ravel() * 1e-3

    def scored(cal, held: np.ndarray) -> list[tuple[float, float]]:
        at = np.isin(arch, held)
        p = design.predict(cal, arch[at], batch[at])
        return [score(p[batch[at] == b], y[at][batch[at] == b]) for b in BATCHES]

    print(f"\n== {device_name} from a {prior_name} prior ({n:,} measured cells)")
    head = "".join(f"{'batch ' + str(b) + ' rho / err':>24s}" for b in BATCHES)
    print(f"{'calibrated on':34s}{head}   worst-seed err (b1)  fit s")
    everything = np.arange(n)
    row = scored(prior, everything)
    print(f"{'prior only (0 cells)':34s}" + "".join(f"{r:12.3f} / {e:6.1%}  " for r, e in row))
    for k in SIZES:
        _few_shot_rows(k, seeds, n, arch, batch, y, design, prior, device_name, scored)
    idx = np.random.default_rng(0).permutation(n)
    cal_idx, held = idx[:1000], idx[1000:]
    t0 = time.perf_counter()
    full = fit_graphs(
        device,
        [graphs[i] for i in cal_idx],
        {b: df[f"{col}_{b}_ms"].to_numpy()[cal_idx] * 1e-3 for b in BATCHES},
    ).calibration
    row = scored(full, held)
    print(
        f"{'1,000 cells (shipped method)':34s}"
        + "".join(f"{r:12.3f} / {e:6.1%}  " for r, e in row)
        + f"{'':21s}{time.perf_counter() - t0:5.1f}"
    )
    # 10 cells measured at batch 1 only: what a user with one batch size gets
    errs = []
    for seed in range(seeds):
        cells = np.random.default_rng(seed).choice(n, 10, replace=False)
        at = np.isin(arch, cells) & (batch == 1)
        fit = fit_few_shot(
            design, arch[at], batch[at], y[at], prior, device_name, "bench", seed=seed
        )
        errs.append(scored(fit.calibration, np.setdiff1d(everything, cells))[0])
    r, e = np.mean(errs, axis=0)
    print(f"{'10 cells, batch 1 only':34s}{r:12.3f} / {e:6.1%}  (batch 1 scored)")


def _few_shot_rows(k, seeds, n, arch, batch, y, design, prior, name, scored) -> None:
    rows, kept, seconds = [], [], []
    for seed in range(seeds):
        cells = np.random.default_rng(seed).choice(n, k, replace=False)
        at = np.isin(arch, cells)
        t0 = time.perf_counter()
        fit = fit_few_shot(design, arch[at], batch[at], y[at], prior, name, "bench", seed=seed)
        seconds.append(time.perf_counter() - t0)
        kept.append(fit.candidate)
        rows.append(scored(fit.calibration, np.setdiff1d(np.arange(n), cells)))
    mean = np.mean(rows, axis=0)
    worst = max(r[0][1] for r in rows)
    counts = pd.Series(kept).value_counts().to_dict()
    print(
        f"{f'{k} cells ({seeds} seeds)':34s}"
        + "".join(f"{r:12.3f} / {e:6.1%}  " for r, e in mean)
        + f"{worst:12.1%}{'':9s}{np.mean(seconds):5.2f}   kept {counts}"
    )


def fpga_table(df, seeds: int) -> None:
    space = NasBench201Space("cifar10", weight_bits=16, act_bits=16)
    graphs = [space.to_graph(parse_arch_str(a)) for a in df["arch_str"]]
    sim = SIMULATORS.create("fpga", board="ZC706", architecture="recursive")
    simulated = sim.evaluate_population(graphs)["fpga_latency_ms"]
    layers = np.bincount(sim.layers(graphs).owner, minlength=len(graphs)).astype(float)
    y = df["fpga_ms"].to_numpy()
    n = len(y)
    print(f"\n== ZC706 FPGA, recursive, 16-bit ({n:,} measured cells); rho / median error")
    r, e = score(simulated, y)
    print(f"{'uncalibrated model':34s}{r:12.4f} / {e:6.1%}")
    for k in SIZES:
        rows = []
        for seed in range(seeds):
            cells = np.random.default_rng(seed).choice(n, k, replace=False)
            held = np.setdiff1d(np.arange(n), cells)
            cal = fit_fpga_calibration(
                simulated[cells],
                layers[cells],
                y[cells],
                sim.board.clock_hz,
                "bench",
                "ZC706",
                "bench",
                seed=seed,
            )
            per_layer_ms = cal.layer_overhead_cycles / sim.board.clock_hz * 1e3 * cal.scale
            pred = cal.scale * simulated[held] + per_layer_ms * layers[held]
            rows.append(score(pred, y[held]))
        (r, e), worst = np.mean(rows, axis=0), max(x[1] for x in rows)
        print(f"{f'{k} cells ({seeds} seeds)':34s}{r:12.4f} / {e:6.1%}   worst seed {worst:.1%}")
    idx = np.random.default_rng(0).permutation(n)
    cal_idx, held = idx[:1000], idx[1000:]
    s, c = fit_scale_and_overhead(simulated[cal_idx], layers[cal_idx], y[cal_idx])
    r, e = score(s * simulated[held] + c * layers[held], y[held])
    print(f"{'1,000 cells':34s}{r:12.4f} / {e:6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--cells", type=int, default=0, help="use only the first N cells (0: all)")
    args = ap.parse_args()
    df = pd.read_csv(DATA / "nasbench201_latency_measured.csv")
    if args.cells:
        df = df.head(args.cells)
    t0 = time.perf_counter()
    space = NasBench201Space()
    graphs = [space.to_graph(parse_arch_str(a)) for a in df["arch_str"]]
    print(f"{len(df):,} cells, graphs built in {time.perf_counter() - t0:.1f} s")
    for name in DEVICES:
        gpu_table(graphs, df, name, args.seeds)
    fpga_table(df, args.seeds)


if __name__ == "__main__":
    main()
