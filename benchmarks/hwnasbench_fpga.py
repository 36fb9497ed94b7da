"""Our FPGA model against HW-NAS-Bench's measured FPGA latency of NAS-Bench-201 cells.

``fpga_ms`` in ``nasbench201_latency_measured.csv`` is HW-NAS-Bench's FPGA latency for 15,263
cells, measured on HW-NAS-Bench's Edge FPGA, a Xilinx ZC706. For each simulator configuration, at
most two parameters are calibrated by least squares on a random calibration split (a scale on
the simulated latency, optionally plus a fixed cost per layer), then Spearman rho and the median
relative error are reported on the held-out cells, next to FLOPs alone as the baseline. The
fitted per-layer cost is then set as the simulator's ``layer_overhead_cycles`` and checked again
with the scale alone.

    python benchmarks/hwnasbench_fpga.py [--data data] [--calibrate 1000] [--cells 0] [--write]

``--write`` rewrites the shipped calibration ``simulators/fpga/calibrations/ZC706.toml`` (recursive,
scale and per-layer cycles fitted on the calibration cells, validated on the held-out ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from timing import DATA

from dse.fidelity import ErrorStats, Validation, fit_scale_and_overhead
from dse.graph import totals
from dse.registry import SIMULATORS
from dse.simulators.fpga.calibration import CONDITION, FpgaCalibration
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

OUT = Path(__file__).resolve().parents[1] / "simulators" / "fpga" / "calibrations"

CONFIGS = [
    dict(board="ZC706", architecture="recursive"),
    dict(board="ZC706", architecture="recursive", fuse=False),
    dict(board="ZC706", architecture="recursive", double_buffering=False),
    dict(board="ZC706", architecture="pipelined"),
    dict(board="ZCU102", architecture="recursive"),
]


def spearman(a, b) -> float:
    return float(pd.Series(a).corr(pd.Series(b), method="spearman"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--calibrate", type=int, default=1000, help="cells used to fit the parameters")
    ap.add_argument("--cells", type=int, default=0, help="evaluate only this many cells (0: all)")
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--write", action="store_true", help="rewrite calibrations/ZC706.toml")
    args = ap.parse_args()
    if args.write and (args.cells or args.calibrate != 1000 or args.bits != 16):
        ap.error("--write fits the shipped calibration on the defaults; drop the other options")
    df = pd.read_csv(Path(args.data) / "nasbench201_latency_measured.csv")
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    if args.cells:
        df = df.iloc[: args.cells]
    cal, hold = np.arange(args.calibrate), np.arange(args.calibrate, len(df))
    y = df.fpga_ms.to_numpy()
    space = NasBench201Space("cifar10", weight_bits=args.bits, act_bits=args.bits)
    graphs = [space.to_graph(parse_arch_str(a)) for a in df.arch_str]
    flops = np.array([totals(g).hook_flops for g in graphs], dtype=float)
    print(f"{len(df)} cells; calibrated on {len(cal)}, reported on {len(hold)} held out")
    print(f"{'model':80s} {'rho':>7s} {'median err':>11s}")

    def report(label: str, features: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(features[cal], y[cal], rcond=None)
        pred = features[hold] @ coef
        err = np.median(np.abs(pred / y[hold] - 1))
        params = ", ".join(f"{c:.4g}" for c in coef)
        print(f"{label:80s} {spearman(pred, y[hold]):7.4f} {err:11.1%}   params [{params}]")
        return coef

    report("FLOPs x scale (baseline)", flops[:, None])
    for cfg in CONFIGS:
        sim = SIMULATORS.create("fpga", **cfg)
        lat = sim.evaluate_population(graphs)["fpga_latency_ms"]
        n_layers = np.bincount(sim.layers(graphs).owner, minlength=len(graphs)).astype(float)
        name = ", ".join(f"{k}={v}" for k, v in cfg.items())
        report(f"{name}: scale", lat[:, None])
        scale, per_layer_ms = report(
            f"{name}: scale + per-layer cost", np.stack([lat, n_layers], 1)
        )
        if cfg == CONFIGS[0]:
            # the same two parameters as simulator settings: the per-layer cost in cycles at the
            # board clock (before scaling), then the scale alone on the simulator's latency
            cycles = per_layer_ms / scale * 1e-3 * sim.board.clock_hz
            tuned = SIMULATORS.create("fpga", **cfg, layer_overhead_cycles=cycles)
            lat = tuned.evaluate_population(graphs)["fpga_latency_ms"]
            report(f"{name}, layer_overhead_cycles={cycles:,.0f}: scale", lat[:, None])
            write_calibration(sim, lat, n_layers, y, cal, hold, graphs, args.write)


def write_calibration(sim, lat, n_layers, y, cal, hold, graphs, write: bool) -> None:
    """The shipped ZC706 calibration: scale and per-layer cost fitted on relative error on the
    calibration cells (what dse calibrate fits), checked by the simulator on the held-out ones."""
    base = SIMULATORS.create("fpga", **CONFIGS[0])
    base_ms = base.evaluate_population(graphs)["fpga_latency_ms"]
    scale, per_layer_ms = fit_scale_and_overhead(base_ms[cal], n_layers[cal], y[cal])
    cycles = per_layer_ms / scale * 1e-3 * base.board.clock_hz
    note = (
        "Fitted by benchmarks/hwnasbench_fpga.py to HW-NAS-Bench's measured ZC706 latency of "
        f"NAS-Bench-201 cells (nasbench201_latency_measured.csv, fpga_ms) on {len(cal)} random "
        "cells (seed 0), 16-bit weights and activations, recursive accelerator, relative error."
    )
    draft = FpgaCalibration("ZC706", "ZC706", "recursive", scale, cycles, note)
    check = SIMULATORS.create("fpga", **CONFIGS[0], calibration=str(_write(draft, OUT, False)))
    pred = check.evaluate_population([graphs[i] for i in hold])["fpga_latency_ms"]
    stats = ErrorStats.of(CONDITION, pred, y[hold])
    print(
        f"shipped calibration (scale {scale:.4f}, {cycles:,.0f} cycles per layer), held out: "
        f"{stats.describe()} ({stats.detail()})"
    )
    validation = Validation(
        data="NAS-Bench-201 cells measured by HW-NAS-Bench on ZC706 (16-bit)",
        method="held-out",
        held_out=f"{len(hold):,} cells not in the fit (random split, seed 0)",
        errors=(stats,),
        fitted_on=len(cal),
    )
    final = FpgaCalibration("ZC706", "ZC706", "recursive", scale, cycles, note, validation)
    _write(final, OUT, write)


def _write(calibration: FpgaCalibration, folder: Path, keep: bool) -> Path:
    """The calibration as TOML: in ``folder`` when ``keep``, else in a scratch file."""
    import tempfile

    path = folder / "ZC706.toml" if keep else Path(tempfile.mkdtemp()) / "ZC706.toml"
    path.write_text(calibration.to_toml())
    return path


if __name__ == "__main__":
    main()
