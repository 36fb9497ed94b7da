"""``dse calibrate``: fit a device's calibration from a few measured networks of any space.

    dse calibrate --device GTX-1080-Ti --measured m.csv --out my-1080ti.toml [--prior Titan-RTX]
    dse calibrate --board ZC706 --measured m.csv --out my-zc706.toml

    dse calibrate --device Raspberry-Pi-4 --measured m.csv --out my-pi4.toml
    dse calibrate --device Eyeriss-v1 --measured m.csv --out my-eyeriss.toml

``--device`` may be a GPU, a CPU (phones and single-board computers too) or an ASIC; its family
(``dse list devices``) picks the fit. ``m.csv`` has one row per measurement: the architecture
(``--arch-column``; default ``arch``, else ``arch_str``, whichever the CSV has, as ``dse
cost`` reads it: the space's own string form, or a JSON object of the space's variables),
``latency_ms`` and, for a GPU, ``batch_size`` (default 1). The GPU fit starts from a prior
calibration (``--prior``; ``auto``: the shipped calibration of the device nearest in peak
FLOP/s and bandwidth) and frees only the parameters cross-validation supports
(:mod:`dse.simulators.gpu.fewshot`); a CPU's fit frees scales of the nearest shipped CPU
calibration (:mod:`dse.simulators.cpu.fit`; and of the data sheet, whose fit is kept where it
cross-validates better by one standard error: :func:`auto_cpu_priors`). Both then try mixing the
kept fit with measured operator tables of shipped devices (``--tables``; ``auto``: a CPU, the
shipped CPUs of its runtime; a GPU, every shipped GPU; ``none``; or names:
:mod:`dse.measured_tables`), keeping the mix wherever a table earns a weight (cross-validated on
the same folds); an ASIC's, like the FPGA's, is a latency scale and a per-layer cost
(:mod:`dse.simulators.asic.calibration`, the FPGA's :mod:`dse.simulators.fpga.calibration`).
The file written carries its cross-validated error and is what ``[simulators.gpu]
calibration = "my-1080ti.toml"`` (or ``[simulators.cpu]``, ``[simulators.asic]``,
``[simulators.fpga]``) names. Everything is checked before the file is written; an existing
file is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from dse import outputs
from dse.commands.cost import device_family
from dse.inputs import add_space_arguments, arch_from_text, read_arch_table, space_from
from dse.params import ConfigError
from dse.registry import COMMANDS


def read_measurements(path: str, column: str | None, space) -> tuple[list, pd.DataFrame]:
    """(unique architectures, the table with an ``arch_index`` column) of a measurement CSV
    whose architectures are in ``column`` (None: :data:`dse.inputs.ARCH_COLUMNS`' first)."""
    df, column = read_arch_table(path, "--measured", column)
    if "latency_ms" not in df.columns:
        raise ConfigError(
            f"--measured: {path} has no column 'latency_ms'; columns: {list(df.columns)}"
        )
    if "batch_size" not in df.columns:
        df["batch_size"] = 1
    latency = pd.to_numeric(df["latency_ms"], errors="coerce")
    if latency.isna().any() or (latency <= 0).any():
        raise ConfigError("latency_ms: every value must be a positive number of milliseconds")
    batch = pd.to_numeric(df["batch_size"], errors="coerce")
    if batch.isna().any() or (batch < 1).any() or (batch % 1 != 0).any():
        raise ConfigError("batch_size: every value must be a whole number >= 1")
    texts = df[column].astype(str)
    keys = sorted(set(texts))
    archs = []
    for text in keys:
        try:
            archs.append(arch_from_text(space, text))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{column}: cannot read {text!r}: {exc}") from None
    out = pd.DataFrame(
        {
            "arch_index": texts.map({t: i for i, t in enumerate(keys)}).to_numpy(),
            "batch_size": batch.astype(np.int64).to_numpy(),
            "latency_ms": latency.to_numpy(dtype=float),
        }
    )
    if out["arch_index"].nunique() < 3:
        raise ConfigError("--measured: need at least 3 different architectures")
    return archs, out


def nearest(device, others: dict, peak, apart=lambda other: False) -> str:
    """The name in ``others`` (name -> device of the same family) nearest to ``device``: first
    those not ``apart`` from it, then by distance in log peak FLOP/s (``peak(d)``) and log
    memory bandwidth; ties by name."""

    def distance(name: str) -> tuple[bool, float]:
        other = others[name]
        return apart(other), float(
            np.hypot(
                np.log(peak(other) / peak(device)),
                np.log(other.memory_bandwidth / device.memory_bandwidth),
            )
        )

    return min(others, key=lambda n: (distance(n), n))


def nearest_calibration(device, devices_file: str | None = None) -> str:
    """The shipped GPU calibration whose device is nearest in log peak fp32 FLOP/s and memory
    bandwidth (the device's own, when one is shipped)."""
    from dse.catalogs.devices import load_devices
    from dse.simulators.gpu.roofline import shipped_calibrations

    catalog = load_devices(devices_file)
    others = {n: catalog[n] for n in shipped_calibrations() if n in catalog}
    return nearest(device, others, lambda d: d.peak("fp32"))


def nearest_cpu_calibration(device, devices_file: str | None = None, exclude=()) -> str:
    """The shipped CPU calibration nearest in runtime, then log peak FLOP/s and DRAM bandwidth
    (the device's own, when one is shipped and not in ``exclude``)."""
    from dse.catalogs.devices import load_all_devices
    from dse.simulators.cpu.calibration import shipped_cpu_calibrations

    catalog = load_all_devices(devices_file)
    others = {
        n: catalog[n]
        for n in shipped_cpu_calibrations()
        if n not in exclude and n in catalog and catalog[n].family == "cpu"
    }
    if not others:
        raise ConfigError("--prior: no shipped CPU calibration to start from; give --prior FILE")
    return nearest(
        device, others, lambda d: d.peak_flops, lambda other: other.runtime != device.runtime
    )


def auto_cpu_priors(device, devices_file: str | None = None, exclude=()) -> list:
    """``--prior auto`` for a CPU: the nearest shipped calibration
    (:func:`nearest_cpu_calibration`), then the data sheet, which the few-shot fit keeps
    instead only where it cross-validates better by more than the folds' noise
    (:func:`dse.simulators.cpu.fit.fit_few_shot_from`). Why: the per-class structure a
    calibration carries (which classes pay a large per-call cost, which run near peak) is its
    device's runtime's, and on a device whose runtime or kernels differ it can be further off
    than the sheet (HELP's Pixel 3, TFLite, from the Essential Phone's: FBNet ranked 0.919 from
    ten networks; from the sheet, 0.994)."""
    from dse.simulators.cpu.calibration import CpuCalibration, load_cpu_calibration

    nearest_cal = load_cpu_calibration(nearest_cpu_calibration(device, devices_file, exclude))
    return [nearest_cal, CpuCalibration(device=device.name)]


def _few_shot(fit, design, table, prior, args, name: str, data: str, **extra):
    """A family's few-shot ``fit`` of the measurements from ``prior`` (a CPU: a list of priors,
    :func:`dse.simulators.cpu.fit.fit_few_shot_from`)."""
    return fit(
        design,
        table["arch_index"].to_numpy(),
        table["batch_size"].to_numpy(),
        table["latency_ms"].to_numpy() * 1e-3,
        prior,
        args.name or name,
        data,
        args.folds,
        args.seed,
        covers=(args.space,),
        **extra,
    )


def _print_choice(result, prior: str, freed: str) -> None:
    """What a few-shot fit kept, and every candidate's cross-validated error."""
    print(f"prior: {prior}; {freed} kept: {result.candidate}")
    for cand, loss in result.cv_loss.items():
        print(f"  {cand:10s} cross-validated mean squared log error {loss:.4f}")


def _fit_cpu(args, graphs, table, data: str):
    from dse.catalogs.devices import get_any_device
    from dse.simulators.cpu.calibration import CpuCalibration, load_cpu_calibration
    from dse.simulators.cpu.fit import CpuDesign, fit_few_shot, fit_few_shot_from
    from dse.simulators.cpu.model import CpuCostModel

    device = get_any_device(args.device, args.devices_file, "cpu")
    if args.prior == "none":
        priors = [CpuCalibration(device=device.name)]
    elif args.prior == "auto":
        priors = auto_cpu_priors(device, args.devices_file)
    else:
        priors = [load_cpu_calibration(args.prior)]
    design = CpuDesign(CpuCostModel(device, priors[0]), graphs, table["batch_size"].unique())
    tables = tables_tried(args.tables, device, "cpu")
    print(f"measured tables tried: {', '.join(tables) or '(none)'}")

    def fit(design, arch, batch, seconds, priors, *rest, **kw):
        return fit_few_shot_from(
            priors, lambda p: fit_few_shot(design, arch, batch, seconds, p, *rest, **kw)
        )

    result = _few_shot(fit, design, table, priors, args, device.name, data, tables=tables)
    for tried, loss in result.prior_loss.items():
        print(f"prior {tried!r}: cross-validated mean squared log error {loss:.4f}")
    _print_choice(result, result.prior, "candidate")
    return result.calibration, "cpu"


def tables_tried(spec: str, device, family: str) -> list[str]:
    """``--tables``: ``auto`` (a CPU: the shipped tables of CPUs with the device's runtime; a
    GPU: every shipped GPU table), ``none``, or shipped table names separated by commas."""
    from dse.simulators.cpu.tables import runtime_tables, shipped_tables
    from dse.simulators.gpu.tables import shipped_gpu_tables

    allowed = shipped_tables() if family == "cpu" else shipped_gpu_tables()
    if spec == "auto":
        return runtime_tables(device) if family == "cpu" else allowed
    if spec == "none":
        return []
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ConfigError(
            f"--tables: {', '.join(bad) or repr(spec)} is not a shipped {family.upper()} table; "
            f"allowed values: auto, none, or names from {allowed} separated by commas"
        )
    return names


def _one_frame(table, what: str):
    """Per measured architecture, the median latency (ms) of a one-frame target."""
    if (table["batch_size"] != 1).any():
        raise ConfigError(f"batch_size: {what} latencies are of one frame; every value must be 1")
    return table.groupby("arch_index")["latency_ms"].median()


def _fit_scaled(fit, args, measured, simulated, layers, clock_hz, target: str, data: str, **points):
    """A scale-and-per-layer calibration (FPGA, ASIC) of ``target`` from its simulator's
    uncalibrated latencies and layer counts of the measured points (``points``: what else
    ``fit`` reads of them, an ASIC's batch sizes and architectures)."""
    cal = fit(
        simulated,
        layers,
        np.asarray(measured, dtype=float),
        clock_hz,
        args.name or target,
        target,
        data,
        args.folds,
        args.seed,
        covers=(args.space,),
        **points,
    )
    print(f"scale {cal.scale:.4f}, {cal.layer_overhead_cycles:,.0f} cycles per layer")
    return cal


def _fit_asic(args, graphs, table, data: str):
    """An ASIC's scale and per-layer cost from its measured (architecture, batch size) points
    (the median of repeats), each against the uncalibrated model at its own batch size."""
    from dse.simulators.asic.calibration import fit_asic_calibration
    from dse.simulators.asic.plugin import AsicSimulator

    points = table.groupby(["arch_index", "batch_size"])["latency_ms"].median().reset_index()
    simulated = np.empty(len(points))
    layers = np.empty(len(points))
    clock = 0.0
    for b in sorted(points["batch_size"].unique()):
        at = (points["batch_size"] == b).to_numpy()
        sim = AsicSimulator(args.device, int(b), "none", args.devices_file)
        chosen = [graphs[i] for i in points["arch_index"][at]]
        simulated[at] = sim.evaluate_population(chosen)["asic_latency_ms"]
        layers[at] = sim.totals(chosen)["layers"]
        clock = sim.device.frequency_hz
    fit = _fit_scaled(
        fit_asic_calibration,
        args,
        points["latency_ms"],
        simulated,
        layers,
        clock,
        args.device,
        data,
        batches=points["batch_size"].to_numpy(),
        groups=points["arch_index"].to_numpy(),
    )
    return fit, "asic"


def _fit_gpu(args, graphs, table, data: str):
    from dse.catalogs.devices import get_device
    from dse.simulators.gpu.fewshot import MeasurementDesign, fit_few_shot
    from dse.simulators.gpu.regimes import describe
    from dse.simulators.gpu.roofline import resolve_calibration

    device = get_device(args.device, args.devices_file)
    prior_name = nearest_calibration(device, args.devices_file) if args.prior == "auto" else None
    prior = resolve_calibration(prior_name or args.prior, device)
    design = MeasurementDesign(device, graphs, table["batch_size"].unique())
    tables = tables_tried(args.tables, device, "gpu")
    print(f"measured tables tried: {', '.join(tables) or '(none)'}")
    result = _few_shot(fit_few_shot, design, table, prior, args, device.name, data, tables=tables)
    _print_choice(result, prior.name, "free parameters")
    if result.calibration.regime_scales:
        factors = describe(dict(result.calibration.regime_scales))
        print(f"  factors per class and roofline regime: {factors}")
    return result.calibration, "gpu"


def _fit_fpga(args, graphs, table, data: str):
    from dse.registry import SIMULATORS
    from dse.simulators.fpga.calibration import fit_fpga_calibration

    per_arch = _one_frame(table, "FPGA")
    sim = SIMULATORS.create(
        "fpga", board=args.board, architecture="recursive", boards_file=args.boards_file
    )
    chosen = [graphs[i] for i in per_arch.index]
    simulated = sim.evaluate_population(chosen)["fpga_latency_ms"]
    layers = np.bincount(sim.layers(chosen).owner, minlength=len(chosen))
    clock = sim.board.clock_hz
    fit = _fit_scaled(
        fit_fpga_calibration, args, per_arch, simulated, layers, clock, args.board, data
    )
    return fit, "fpga"


#: device family (FPGA boards: "fpga") -> its few-shot fit (a new family adds one line)
FAMILY_FITS = {"gpu": _fit_gpu, "cpu": _fit_cpu, "asic": _fit_asic, "fpga": _fit_fpga}


@COMMANDS.register("calibrate")
class CalibrateCommand:
    """Fit a GPU, CPU, ASIC or FPGA calibration from a few measured networks, with its
    cross-validated error."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--device", help="a GPU, CPU or ASIC from the catalog (or --devices-file)"
        )
        target.add_argument("--board", help="FPGA board (recursive accelerator)")
        p.add_argument("--measured", required=True, help="CSV: arch, latency_ms[, batch_size]")
        p.add_argument("--out", required=True, help="calibration TOML to write")
        add_space_arguments(p)
        p.add_argument(
            "--arch-column",
            help="architecture column (default: arch, else arch_str, whichever the CSV has)",
        )
        p.add_argument(
            "--prior",
            default="auto",
            help="GPU/CPU prior: auto (nearest shipped of the family; a CPU's fit also tries "
            "the data sheet, kept where it cross-validates better by one standard error), none "
            "(the data sheet), a shipped name or a TOML path",
        )
        p.add_argument(
            "--tables",
            default="auto",
            help="CPU/GPU: measured operator tables to try mixing in: auto (a CPU: shipped "
            "CPUs of the device's runtime; a GPU: every shipped GPU), none, or names separated "
            "by commas",
        )
        p.add_argument("--name", default=None, help="calibration name (default: the device)")
        p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
        p.add_argument("--seed", type=int, default=0, help="fold assignment seed")
        p.add_argument("--devices-file", default=None)
        p.add_argument("--boards-file", default=None)
        p.add_argument("--force", action="store_true", help="replace an existing --out file")

    def run(self, args: argparse.Namespace) -> int:
        out = Path(args.out)
        if out.suffix != ".toml":
            raise ConfigError(f"--out: {args.out!r} must end in .toml (what configs name)")
        outputs.claim(out, "--out", args.force)
        if args.folds < 2:
            raise ConfigError(f"--folds: must be >= 2, got {args.folds}")
        family = device_family(args.device, args.devices_file) if args.device else "fpga"
        for option, value, what in (
            ("--tables", args.tables, "mixes measured tables"),
            ("--prior", args.prior, "starts from a prior"),
        ):
            if family not in ("cpu", "gpu") and value != "auto":
                raise ConfigError(
                    f"{option}: only a CPU's or GPU's fit {what}; this one's family is {family!r}"
                )
        space = space_from(args)
        try:
            archs, table = read_measurements(args.measured, args.arch_column, space)
            graphs = [space.to_graph(a) for a in archs]
            data = f"{Path(args.measured).name}: {len(archs)} measured {args.space} architectures"
            cal, kind = FAMILY_FITS[family](args, graphs, table, data)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        assert cal.validation is not None
        for e in cal.validation.errors:
            print(f"  cross-validated {e.describe()} ({e.detail()})")
        outputs.write(out, cal.to_toml())
        print(f"wrote {out}; use it with [simulators.{kind}] calibration = {str(out)!r}")
        return 0
