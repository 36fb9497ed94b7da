"""Calibrating the ASIC model to measured latencies: a scale and a fixed cost per layer.

The analytic mapper leaves out what is uniform across layers (controller set-up, the host's
timing harness) and a per-layer configuration cost (Eyeriss reconfigures its array and
scan chain per layer), so, as for the FPGA (:mod:`dse.simulators.fpga.calibration`)::

    measured_ms = scale * (simulated_ms + layers * layer_overhead_cycles / clock * 1e3)

per batch (``simulated_ms`` at the measured batch size; the array is configured once per layer
and batch), fitted by the same weighted least squares on relative error and validated by the
same grouped k-fold cross-validation (:func:`dse.fidelity.validated_scale_and_overhead`: an
architecture's batch sizes held out together, an error record per batch size), from as few as
ten measured architectures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dse.catalog import load_named_file, resolve_named_file, shipped_files
from dse.fidelity import Validation, validated_scale_and_overhead


@dataclass(frozen=True)
class AsicCalibration:
    """Latency scale and per-layer cycles of one accelerator."""

    name: str
    device: str
    scale: float = 1.0
    layer_overhead_cycles: float = 0.0
    note: str = ""
    validation: Validation | None = None

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"calibration {self.name!r}: scale must be > 0, got {self.scale}")
        if self.layer_overhead_cycles < 0:
            raise ValueError(
                f"calibration {self.name!r}: layer_overhead_cycles must be >= 0, got "
                f"{self.layer_overhead_cycles}"
            )

    def to_toml(self) -> str:
        out = [
            f'name = "{self.name}"',
            f'device = "{self.device}"',
            f"scale = {self.scale:.8g}",
            f"layer_overhead_cycles = {self.layer_overhead_cycles:.8g}",
        ]
        if self.note:
            out.append('note = """\n' + self.note.strip() + '\n"""')
        if self.validation is not None:
            out.append("\n" + self.validation.to_toml())
        return "\n".join(out) + "\n"


def parse_asic_calibration(data: Mapping[str, Any], where: str) -> AsicCalibration:
    allowed = {"name", "device", "scale", "layer_overhead_cycles", "note", "validation"}
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; allowed: {sorted(allowed)}")
    try:
        scale = float(data.get("scale", 1.0))
        per_layer = float(data.get("layer_overhead_cycles", 0.0))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: scale and layer_overhead_cycles must be numbers") from None
    return AsicCalibration(
        str(data.get("name", where)),
        str(data.get("device", "")),
        scale,
        per_layer,
        str(data.get("note", "")),
        Validation.from_dict(data["validation"], f"{where}.validation")
        if "validation" in data
        else None,
    )


def shipped_asic_calibrations() -> list[str]:
    return shipped_files("dse.simulators.asic", "calibrations")


def load_asic_calibration(name_or_path: str | Path) -> AsicCalibration:
    return load_named_file(
        "dse.simulators.asic",
        "calibrations",
        name_or_path,
        parse_asic_calibration,
        "ASIC calibration",
    )


def resolve_asic_calibration(spec: str, device: str) -> AsicCalibration | None:
    """``"none"``: the analytic model; ``"auto"``: the shipped calibration named like the
    device, if any; otherwise a shipped name or a TOML path."""
    return resolve_named_file(
        "dse.simulators.asic",
        "calibrations",
        spec,
        device,
        parse_asic_calibration,
        "ASIC calibration",
    )


def fit_asic_calibration(
    simulated_ms,
    n_layers,
    measured_ms,
    clock_hz: float,
    name: str,
    device: str,
    data: str,
    folds: int = 5,
    seed: int = 0,
    covers: Sequence[str] = (),
    batches=None,
    groups=None,
) -> AsicCalibration:
    """(scale, layer_overhead_cycles) from measured latencies (ms per batch) of architectures
    whose uncalibrated simulated latency at the same batch size and MAC-layer count are given,
    with grouped k-fold cross-validation. ``batches``: each point's batch size (default 1; the
    per-layer cost is paid once per batch, as the array is configured once per layer and
    batch); ``groups``: each point's architecture (default: one point each), held out together;
    the validation has one error record per batch size."""
    batch = np.ones(len(measured_ms), int) if batches is None else np.asarray(batches)
    conditions = [f"batch {int(b)}" for b in batch]
    scale, per_layer_ms, validation = validated_scale_and_overhead(
        simulated_ms, n_layers, measured_ms, conditions, data, folds, seed, covers, groups
    )
    note = (
        f"Fitted from {validation.fitted_on} measured architectures on {device} ({data}): "
        "latency = scale x (simulated + layers x layer_overhead_cycles / clock), per batch."
    )
    cycles = per_layer_ms / scale * 1e-3 * clock_hz
    return AsicCalibration(name, device, scale, cycles, note, validation)
