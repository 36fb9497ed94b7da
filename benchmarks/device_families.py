"""Device families under HELP's protocol: a device never seen, calibrated from 10 measured cells.

For each device of ``data/nasbench201_latency_devices.csv`` and ``data/fbnet_latency_devices.csv``
(HELP's meta-training devices: Xeon CPUs and phones at batch 1, GPUs at each batch size HELP
measured, fitted and scored at that one): pretend it is unseen (its
own shipped calibration is never the prior: the prior is the nearest *other* shipped calibration
of its family, and for a CPU also the data sheet, as ``dse calibrate --prior auto`` tries),
calibrate from 10 random measured cells (5 seeds) with ``dse calibrate``'s fit,
and score Spearman rho and median relative error on every other cell. Beside it: FLOPs alone
(Spearman of FLOPs; median error of a two-parameter fit ``a FLOPs + b`` to the same 10 cells),
a per-op lookup table fitted on 12,000 of the device's NAS-Bench-201 cells (2,000 FBNet ones;
non-negative least squares over the counts of each distinct operator: what the measurements
themselves allow) and HELP's published figure for the family (NeurIPS 2021, README table 3).
The cross-space line calibrates on 10 NAS-Bench-201 cells and scores every FBNet network.

    python benchmarks/device_families.py [--seeds 5] [--write-calibrations | --write-tables]
                                          [--blocks] [--no-tables]

``--no-tables``: every fit without other devices' measured tables (the roofline alone, as for a
device no shipped table's runtime covers).

``--write-calibrations`` first fits each CPU's shipped calibration (simulators/cpu/calibrations:
the whole table on 12,000 NAS-Bench-201 and 2,000 FBNet cells, seed 0) and the Titan X's GPU
calibration, and validates each on the held-out rest, then (as ``--write-tables`` alone does)
each device's measured operator table (simulators/cpu/tables, simulators/gpu/tables: the same
cells, held to the shipped calibration); the protocol then reads those files (never the
device's own calibration as its prior, nor its own table). Last, the population costing
speed: all 15,625
NAS-Bench-201 cells on each family's model, the GPU simulator measured in the same run as the
baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.stats import spearmanr
from timing import DATA

from dse.catalogs.devices import get_any_device, get_device
from dse.commands.calibrate import auto_cpu_priors
from dse.fidelity import ErrorStats, Validation
from dse.graph import totals
from dse.measured_tables import fit_operator_table, joined_tables
from dse.simulators.cpu.calibration import (
    CpuCalibration,
    load_cpu_calibration,
)
from dse.simulators.cpu.fit import (
    CpuDesign,
    fit_few_shot,
    fit_few_shot_from,
    fit_table,
    to_vector,
)
from dse.simulators.cpu.model import CpuCostModel
from dse.simulators.cpu.tables import CPU_TABLE, runtime_tables
from dse.simulators.gpu.fewshot import MeasurementDesign
from dse.simulators.gpu.fewshot import fit_few_shot as gpu_few_shot
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import Calibration, load_calibration
from dse.simulators.gpu.tables import GPU_TABLE, shipped_gpu_tables
from dse.spaces.fbnet import FBNetSpace
from dse.spaces.nasbench201 import NasBench201Space

#: catalog device -> HELP's column stem
CPUS = {
    "Xeon-Gold-6240": "gold_6240",
    "Xeon-Silver-4114": "silver_4114",
    "Xeon-Silver-4210R": "silver_4210r",
    "Pixel-3": "pixel3",
    "Essential-Phone": "essential_ph_1",
    "Samsung-A50": "samsung_a50",
    "Samsung-S7": "samsung_s7",
}
GPUS = {"Titan-RTX": "titan_rtx", "GTX-1080-Ti": "1080ti", "Titan-X-Pascal": "titanx"}
#: the batch sizes HELP measured its GPUs at, per space (each scored on its own: a user who
#: deploys at one batch size measures at that one)
GPU_BATCHES = {"nasbench201": (1, 32, 256), "fbnet": (1, 32, 64)}
#: HELP's published NAS-Bench-201 Spearman with 10 cells of an unseen device of the family
#: (Xeon Gold 6226, Pixel 2, Titan RTX at batch 256; HELP publishes FBNet only for devices
#: not in these files)
HELP = {"cpu": 0.989, "phone": 0.802, "gpu": 0.987}
PHONES = {"Pixel-3", "Essential-Phone", "Samsung-A50", "Samsung-S7"}
CAL_DIR = Path(__file__).resolve().parents[1] / "simulators" / "cpu" / "calibrations"
TABLE_DIR = CAL_DIR.parent / "tables"
GPU_TABLE_DIR = CAL_DIR.parent.parent / "gpu" / "tables"
SHOTS = 10


def score(pred, y) -> tuple[float, float]:
    return float(spearmanr(pred, y)[0]), float(np.median(np.abs(pred / y - 1)))


def lut(counts: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray):
    """Per-op lookup table: non-negative least squares on relative error."""
    a = counts[train] / y[train, None]
    coef, _ = nnls(a, np.ones(len(train)), maxiter=5000)
    return score(counts[test] @ coef, y[test])


def flops_fit(flops, y, shots, rest):
    a = np.stack([flops[shots], np.ones(len(shots))], 1) / y[shots, None]
    coef, *_ = np.linalg.lstsq(a, np.ones(len(shots)), rcond=None)
    pred = coef[0] * flops[rest] + coef[1]
    return float(spearmanr(flops[rest], y[rest])[0]), float(np.median(np.abs(pred / y[rest] - 1)))


def load(space, path, column):
    df = pd.read_csv(DATA / path)
    graphs = [space.to_graph(space.parse(a)) for a in df[column]]
    return df, graphs, np.array([totals(g).flops for g in graphs], dtype=float)


def write_calibrations(nb, fb) -> None:
    (ndf, ng, _), (fdf, fg, _) = nb, fb
    n_idx = np.random.default_rng(0).permutation(len(ndf))
    f_idx = np.random.default_rng(0).permutation(len(fdf))
    for name, col in CPUS.items():
        device = get_any_device(name, None, "cpu")
        model = CpuCostModel(device, CpuCalibration(device=name))
        graphs = ng + fg
        y = np.concatenate([ndf[f"{col}_ms"], fdf[f"{col}_ms"]]) * 1e-3
        train = np.concatenate([n_idx[:12000], len(ng) + f_idx[:2000]])
        design = CpuDesign(model, graphs, [1])
        note = (
            f"Fitted by benchmarks/device_families.py --write-calibrations to HELP's measured "
            f"latencies of {name} ('{col}_ms'; Lee et al., NeurIPS 2021): 12,000 NAS-Bench-201 "
            "cells and 2,000 FBNet networks (seed 0), every class's overhead and efficiency."
        )
        cal = fit_table(design, train, np.ones(len(train), int), y[train], name, note)
        arch = np.arange(len(graphs))
        pred = design.predict(to_vector(cal, device), arch, np.ones(len(arch), int))
        held_n, held_f = n_idx[12000:], len(ng) + f_idx[2000:]
        validation = Validation(
            data=f"HELP's measurements of {name} (NAS-Bench-201 and FBNet, CIFAR)",
            method="held-out",
            held_out=f"{len(held_n):,} NAS-Bench-201 cells and {len(held_f):,} FBNet networks "
            "not in the fit (random split, seed 0)",
            errors=(
                ErrorStats.of("nasbench201, batch 1", pred[held_n], y[held_n]),
                ErrorStats.of("fbnet, batch 1", pred[held_f], y[held_f]),
            ),
            fitted_on=len(train),
            covers=("nasbench201", "fbnet"),
        )
        cal = replace(cal, validation=validation)
        (CAL_DIR / f"{name}.toml").write_text(cal.to_toml())
        e = validation.errors
        print(
            f"wrote {name}: NB201 held-out rho {e[0].spearman:.3f} median {e[0].median:.1%}; "
            f"FBNet rho {e[1].spearman:.3f} median {e[1].median:.1%}"
        )


def write_titan_x(nb) -> None:
    """The Titan X (Pascal)'s GPU calibration (the only GPU of HELP's data without one): the GPU
    simulator's shipped method (``fit_graphs``, 1,000 cells at batch 1, 32 and 256, seed 0),
    validated on the held-out rest."""
    from dse.simulators.gpu.calibration import fit_graphs
    from dse.simulators.gpu.kernels import GraphCoster

    df, graphs, _ = nb
    idx = np.random.default_rng(0).permutation(len(df))
    fit_idx, held = idx[:1000], idx[1000:]
    device = get_device("Titan-X-Pascal")
    note = (
        "Fitted by benchmarks/device_families.py --write-calibrations to HELP's measured "
        "NAS-Bench-201 latencies of the Titan X (Pascal) ('titanx_<batch>_ms', PyTorch eager, "
        "fp32), batch 1, 32 and 256, on 1000 random cells (seed 0)."
    )
    measured = {b: df[f"titanx_{b}_ms"].to_numpy() * 1e-3 for b in (1, 32, 256)}
    rep = fit_graphs(
        device,
        [graphs[i] for i in fit_idx],
        {b: y[fit_idx] for b, y in measured.items()},
        name="Titan-X-Pascal",
        note=note,
    )
    held_graphs = [graphs[i] for i in held]
    errors = []
    for b, y in measured.items():
        pred = GraphCoster(GpuCostModel(device, rep.calibration), b).cost(held_graphs).seconds
        errors.append(ErrorStats.of(f"batch {b}", pred, y[held]))
    validation = Validation(
        data="NAS-Bench-201 cells measured by HELP (PyTorch eager, fp32)",
        method="held-out",
        held_out=f"{len(held):,} cells not in the fit (random split, seed 0)",
        errors=tuple(errors),
        fitted_on=len(fit_idx),
        covers=("nasbench201",),
    )
    out = CAL_DIR.parent.parent / "gpu" / "calibrations" / "Titan-X-Pascal.toml"
    out.write_text(replace(rep.calibration, validation=validation).to_toml())
    print("wrote Titan-X-Pascal: " + ", ".join(f"{e.condition} {e.describe()}" for e in errors))


def write_cpu_tables(nb, fb) -> None:
    """Each CPU's measured operator table at batch 1 (simulators/cpu/tables), fitted to the same
    cells as its shipped calibration and held to it."""
    (ndf, ng, _), (fdf, fg, _) = nb, fb
    n_idx = np.random.default_rng(0).permutation(len(ndf))
    f_idx = np.random.default_rng(0).permutation(len(fdf))
    train = np.concatenate([n_idx[:12000], len(ng) + f_idx[:2000]])
    for name, col in CPUS.items():
        device = get_any_device(name, None, "cpu")
        cal = load_cpu_calibration(name)
        design = CpuDesign(CpuCostModel(device, cal), ng + fg, [1])
        y = np.concatenate([ndf[f"{col}_ms"], fdf[f"{col}_ms"]]) * 1e-3
        source = (
            f"Fitted by benchmarks/device_families.py --write-tables to HELP's measured "
            f"latencies of {name} ('{col}_ms'; Lee et al., NeurIPS 2021; MIT licence): the same "
            "12,000 NAS-Bench-201 cells and 2,000 FBNet networks as its calibration, batch 1."
        )
        keys, own = design.model.table.matrix(), design.model.row_seconds(design.rows[1], cal)
        table = fit_operator_table(
            keys, design.counts[train], y[train], own, name, CPU_TABLE, 1, source
        )
        TABLE_DIR.mkdir(exist_ok=True)
        (TABLE_DIR / f"{name}.toml").write_text(table.to_toml())
        print(f"wrote {name}'s table ({len(table.keys)} operators)")


def write_gpu_tables(nb, fb) -> None:
    """Each GPU's measured kernel table (simulators/gpu/tables), one section per batch size HELP
    measured (:data:`GPU_BATCHES`), each fitted to the same 12,000 NAS-Bench-201 cells and 2,000
    FBNet networks (seed 0) where that space was measured at that batch size, and held to the
    GPU's shipped calibration; printed: its error on the held-out rest, per space and batch,
    priced by the written table alone as the simulator prices it."""
    (ndf, ng, _), (fdf, fg, _) = nb, fb
    n_idx = np.random.default_rng(0).permutation(len(ndf))
    f_idx = np.random.default_rng(0).permutation(len(fdf))
    # space -> (its measurements, its networks' offset in the design, training rows, held out)
    parts = {"nasbench201": (ndf, 0, n_idx[:12000], n_idx[12000:]),
             "fbnet": (fdf, len(ng), f_idx[:2000], f_idx[2000:])}  # fmt: skip
    batches = sorted({b for sizes in GPU_BATCHES.values() for b in sizes})
    measured = [(s, b) for s, sizes in GPU_BATCHES.items() for b in sizes]
    for name, stem in GPUS.items():
        design = MeasurementDesign(get_device(name), ng + fg, batches)
        keys = np.column_stack(design.coster.table.arrays()).astype(float)
        cal = load_calibration(name)
        sections = []
        for b in batches:
            spaces = [s for s, at in measured if at == b]
            train = np.concatenate([parts[s][1] + parts[s][2] for s in spaces])
            y = np.concatenate(
                [parts[s][0][f"{stem}_{b}_ms"].to_numpy()[parts[s][2]] for s in spaces]
            )
            own = GpuCostModel(design.device, cal).seconds(*design.coster.kernels_at(b))
            sections.append(
                fit_operator_table(keys, design.counts[train], y * 1e-3, own, name, GPU_TABLE, b)
            )
        source = (
            f"Fitted by benchmarks/device_families.py --write-tables to HELP's measured "
            f"latencies of {name} ('{stem}_<batch>_ms'; Lee et al., NeurIPS 2021; MIT licence; "
            "PyTorch eager, fp32): 12,000 NAS-Bench-201 cells (batch 1, 32, 256) and 2,000 FBNet "
            "networks (batch 1, 32, 64), seed 0, held to its shipped calibration."
        )
        table = joined_tables(sections, source)
        GPU_TABLE_DIR.mkdir(exist_ok=True)
        (GPU_TABLE_DIR / f"{name}.toml").write_text(table.to_toml())
        alone = Calibration(name, tables={name: 1.0}, roofline_weight=0.0)
        errors = []
        for s, b in measured:
            df, offset, _, held = parts[s]
            pred = design.predict(alone, offset + held, np.full(len(held), b))
            rho, med = score(pred, df[f"{stem}_{b}_ms"].to_numpy()[held] * 1e-3)
            errors.append(f"{s} b{b} rho {rho:.3f} median {med:.1%}")
        rows = f"{len(table.keys)} kernel rows"
        print(f"wrote {name}'s table ({rows}): held-out " + ", ".join(errors))


def priors_other(name: str) -> list[CpuCalibration]:
    """``dse calibrate --prior auto``'s priors with the device's own calibration left out: the
    nearest other shipped CPU calibration, then the data sheet."""
    return auto_cpu_priors(get_any_device(name, None, "cpu"), exclude=(name,))


def one_space(label, who, design, fit, predict, y, flops, split, seeds, prior, published):
    """One device on one space: the 10-cell fit over ``seeds`` against FLOPs, the LUT and
    HELP's figure; ``fit(shots) -> calibration``, ``predict(calibration, cells) -> seconds``."""
    perm = np.random.default_rng(0).permutation(len(y))
    lut_rho, lut_med = lut(design.counts, y, perm[:split], perm[split:])
    rows = []
    for seed in range(seeds):
        order = np.random.default_rng(100 + seed).permutation(len(y))
        shots, rest = order[:SHOTS], order[SHOTS:]
        pred = predict(fit(shots), rest)
        rows.append((*score(pred, y[rest]), *flops_fit(flops, y, shots, rest)))
    r = np.mean(rows, 0)
    print(
        f"{who[0]:18s} {label:16s} dse rho {r[0]:.3f} (worst {min(x[0] for x in rows):.3f}) "
        f"med {r[1]:5.1%} | FLOPs rho {r[2]:.3f} med {r[3]:5.1%} | LUT rho {lut_rho:.3f} "
        f"med {lut_med:5.1%} | HELP ({who[1]}) "
        + (f"{published:.3f}" if published else "n/a")
        + f" | prior {prior}"
    )


def ten_cells(priors, design, shots, seconds, tables):
    """``dse calibrate``'s CPU fit of the measured ``shots`` from each of ``priors``."""
    one = np.ones(len(shots), int)
    return fit_few_shot_from(
        priors, lambda p: fit_few_shot(design, shots, one, seconds, p, "x", "x", tables=tables)
    )


def cpu_protocol(name, col, nb, fb, seeds, use_tables=True) -> None:
    device = get_any_device(name, None, "cpu")
    priors = priors_other(name)
    prior = priors[0]
    tried = " or ".join(p.name for p in priors)
    # never the device's own; ``use_tables`` False: the roofline alone
    tables = runtime_tables(device, exclude=(name,)) if use_tables else []
    family = "phone" if name in PHONES else "cpu"
    for label, (df, graphs, flops), split in (("nasbench201", nb, 12000), ("fbnet", fb, 2000)):
        y = df[f"{col}_ms"].to_numpy() * 1e-3
        design = CpuDesign(CpuCostModel(device, prior), graphs, [1])

        def fit(shots, design=design, y=y):
            return ten_cells(priors, design, shots, y[shots], tables).calibration

        def predict(cal, cells, design=design):
            return design.priced(cal, cells, np.ones(len(cells), int))

        who = (name, family)
        help_ = HELP[family] if label == "nasbench201" else None
        one_space(label, who, design, fit, predict, y, flops, split, seeds, tried, help_)
    # cross-space: 10 NAS-Bench-201 cells, every FBNet network
    (ndf, ng, _), (fdf, fg, _) = nb, fb
    yn, yf = ndf[f"{col}_ms"].to_numpy() * 1e-3, fdf[f"{col}_ms"].to_numpy() * 1e-3
    design = CpuDesign(CpuCostModel(device, prior), ng + fg, [1])
    rows = []
    for seed in range(seeds):
        shots = np.random.default_rng(100 + seed).permutation(len(yn))[:SHOTS]
        fit = ten_cells(priors, design, shots, yn[shots], tables)
        arch = len(ng) + np.arange(len(yf))
        pred = design.priced(fit.calibration, arch, np.ones(len(arch), int))
        rows.append(score(pred, yf))
    r = np.mean(rows, 0)
    print(f"{name:18s} NB201->FBNet       dse rho {r[0]:.3f} med {r[1]:5.1%} (10 NB201 cells)")


def gpu_protocol(name, stem, nb, fb, seeds, use_tables=True) -> None:
    """One GPU at each batch size HELP measured (:data:`GPU_BATCHES`), fitted and scored at that
    batch size alone; HELP's GPU figure is of batch 256 on NAS-Bench-201."""
    device = get_device(name)
    # the other measured GPU's calibration (the Titan X's own shipped one is never its prior)
    prior = load_calibration("Titan-RTX" if name == "GTX-1080-Ti" else "GTX-1080-Ti")
    tables = [t for t in shipped_gpu_tables() if t != name and use_tables]  # never its own
    for space, (df, graphs, flops), split in (("nasbench201", nb, 12000), ("fbnet", fb, 2000)):
        for b in GPU_BATCHES[space]:
            y = df[f"{stem}_{b}_ms"].to_numpy() * 1e-3
            design = MeasurementDesign(device, graphs, [b])

            def fit(shots, design=design, y=y, b=b):
                at = np.full(len(shots), b)
                fit = gpu_few_shot(design, shots, at, y[shots], prior, "x", "x", tables=tables)
                return fit.calibration

            def predict(cal, cells, design=design, b=b):
                return design.predict(cal, cells, np.full(len(cells), b))

            help_ = HELP["gpu"] if (space, b) == ("nasbench201", 256) else None
            who = (name, "gpu, b256")
            label = f"{space} b{b}"
            one_space(label, who, design, fit, predict, y, flops, split, seeds, prior.name, help_)


def speed() -> None:
    from dse.registry import SIMULATORS
    from dse.spaces.nasbench201 import EDGE_NAMES, OPS

    space = NasBench201Space()
    codes = np.stack(np.unravel_index(np.arange(len(OPS) ** 6), (len(OPS),) * 6), 1)
    graphs = [space.to_graph(dict(zip(EDGE_NAMES, (OPS[i] for i in c)))) for c in codes]
    print(f"\npopulation costing of all {len(graphs):,} NAS-Bench-201 cells (best of 3)")
    baseline = None
    mixed = CpuCalibration(
        "mixed", device="Xeon-Gold-6226", roofline_weight=0.5,
        tables={"Xeon-Silver-4114": 0.3, "Xeon-Silver-4210R": 0.3},
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mixed.toml").write_text(mixed.to_toml())
        for name, params in (
            ("gpu", {"device": "Titan-RTX"}),
            ("cpu", {"device": "Xeon-Gold-6240"}),
            ("cpu", {"device": "Pixel-3"}),
            ("cpu", {"device": "Xeon-Gold-6226", "calibration": str(Path(tmp) / "mixed.toml")}),
            ("asic", {"device": "Eyeriss-v1"}),
        ):
            times = []
            for _ in range(3):
                sim = SIMULATORS.create(name, **params)  # a fresh op table: nothing cached
                t = time.perf_counter()
                sim.evaluate_population(graphs)
                times.append(time.perf_counter() - t)
            rate = len(graphs) / min(times)
            baseline = baseline or rate
            label = params["device"] + (" (two tables)" if "calibration" in params else "")
            print(
                f"  {name:4s} {label:28s} {rate:9,.0f} graphs/s ({rate / baseline:.2f} x the GPU "
                "simulator)"
            )


def blocks(fb, name: str = "Xeon-Gold-6240") -> None:
    """FBNet's per-block cost on one device: a linear fit over (layer, candidate) one-hots of
    the measurements and of the shipped calibration's predictions, each relative to ``skip``."""
    from dse.spaces.fbnet import LAYERS, OPS, VARIABLES

    df, graphs, _ = fb
    space = FBNetSpace()
    x = np.zeros((len(df), len(VARIABLES) * len(OPS) + 1))
    x[:, -1] = 1
    for r, text in enumerate(df["arch"]):
        arch = space.parse(text)
        for i, v in enumerate(VARIABLES):
            x[r, i * len(OPS) + OPS.index(arch[v])] = 1
    device = get_any_device(name, None, "cpu")
    model = CpuCostModel(device, load_cpu_calibration(name)).seconds(graphs) * 1e3
    print(f"\nFBNet per-block ms on {name} relative to skip (measured / model):")
    print("layer (ch, stride) " + " ".join(f"{o:>13s}" for o in OPS[:-1]))
    fits = [
        np.linalg.lstsq(x, y, rcond=None)[0][:-1].reshape(-1, len(OPS))
        for y in (df[f"{CPUS[name]}_ms"].to_numpy(), model)
    ]
    meas, pred = (f - f[:, [-1]] for f in fits)
    for i in range(len(VARIABLES)):
        cells = " ".join(f"{a:6.2f}/{b:<6.2f}" for a, b in zip(meas[i, :-1], pred[i, :-1]))
        print(f"{i:5d} {str(LAYERS[i]):12s} {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--write-calibrations", action="store_true")
    ap.add_argument("--write-tables", action="store_true", help="only the measured tables")
    ap.add_argument("--blocks", action="store_true", help="only FBNet's per-block table")
    ap.add_argument(
        "--no-tables", action="store_true", help="fit without measured tables (roofline alone)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    nb = load(NasBench201Space(), "nasbench201_latency_devices.csv", "arch_str")
    fb = load(FBNetSpace(), "fbnet_latency_devices.csv", "arch")
    if args.blocks:
        blocks(fb)
        return
    if args.write_calibrations:
        write_calibrations(nb, fb)
        write_titan_x(nb)
    if args.write_calibrations or args.write_tables:
        write_cpu_tables(nb, fb)
        write_gpu_tables(nb, fb)
    print(f"HELP's protocol: {SHOTS} measured cells, {args.seeds} seeds, mean (worst) over seeds")
    for name, col in CPUS.items():
        cpu_protocol(name, col, nb, fb, args.seeds, not args.no_tables)
    for name, col in GPUS.items():
        gpu_protocol(name, col, nb, fb, args.seeds, not args.no_tables)
    speed()
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
