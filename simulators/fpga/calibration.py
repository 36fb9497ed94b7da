"""Calibrating the FPGA model to a measured board: a latency scale and a fixed cost per layer.

HW-NAS-Bench's measured FPGA latencies are additive in per-layer costs, so a layer-sequential
(recursive) accelerator fits them with two parameters (``benchmarks/hwnasbench_fpga.py``)::

    measured_ms = scale * (simulated_ms + n_layers * layer_overhead_cycles / clock_hz * 1e3)

``scale`` absorbs what the model leaves out uniformly (DDR efficiency, the host's timing
harness); ``layer_overhead_cycles`` the control and DMA set-up each layer pays. Both enter the
recursive simulator as settings (``[simulators.fpga] calibration = "ZC706"`` or a TOML path).
The fit is linear in (``scale``, ``scale * overhead``): weighted least squares on relative
error, as few as ten measured architectures, validated by grouped k-fold cross-validation
(:func:`dse.fidelity.grouped_folds`), like the GPU's few-shot fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.catalog import load_named_file, resolve_named_file, shipped_files
from dse.fidelity import Validation, validated_scale_and_overhead

#: the one condition FPGA latencies are validated at (one frame, batch 1)
CONDITION = "one frame"


@dataclass(frozen=True)
class FpgaCalibration:
    """Latency scale and per-layer cycles of one board and accelerator architecture."""

    name: str
    board: str
    architecture: str = "recursive"
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
        if self.architecture != "recursive":
            raise ValueError(
                f"calibration {self.name!r}: architecture {self.architecture!r} is not allowed; "
                "allowed values: 'recursive' (the layer-sequential accelerator measured "
                "latencies fit)"
            )

    def to_toml(self) -> str:
        out = [
            f'name = "{self.name}"',
            f'board = "{self.board}"',
            f'architecture = "{self.architecture}"',
            f"scale = {self.scale:.8g}",
            f"layer_overhead_cycles = {self.layer_overhead_cycles:.8g}",
        ]
        if self.note:
            out.append('note = """\n' + self.note.strip() + '\n"""')
        if self.validation is not None:
            out.append("\n" + self.validation.to_toml())
        return "\n".join(out) + "\n"


def parse_fpga_calibration(data: dict[str, Any], where: str) -> FpgaCalibration:
    allowed = {"name", "board", "architecture", "scale", "layer_overhead_cycles", "note"}
    allowed.add("validation")
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; allowed: {sorted(allowed)}")
    if "board" not in data:
        raise ValueError(f"{where}.board: missing; an FPGA calibration names its board")
    return FpgaCalibration(
        str(data.get("name", where)),
        str(data["board"]),
        str(data.get("architecture", "recursive")),
        float(data.get("scale", 1.0)),
        float(data.get("layer_overhead_cycles", 0.0)),
        str(data.get("note", "")),
        Validation.from_dict(data["validation"], f"{where}.validation")
        if "validation" in data
        else None,
    )


def shipped_fpga_calibrations() -> list[str]:
    return shipped_files("dse.simulators.fpga", "calibrations")


def load_fpga_calibration(name_or_path: str | Path) -> FpgaCalibration:
    """A shipped FPGA calibration by name or a TOML file by path."""
    return load_named_file(
        "dse.simulators.fpga",
        "calibrations",
        name_or_path,
        parse_fpga_calibration,
        "FPGA calibration",
    )


def resolve_fpga_calibration(spec: str, board: str) -> FpgaCalibration | None:
    """``"none"``: no calibration (the analytic model); ``"auto"``: the shipped one named like the
    board, if any; otherwise a shipped name or a TOML path."""
    return resolve_named_file(
        "dse.simulators.fpga",
        "calibrations",
        spec,
        board,
        parse_fpga_calibration,
        "FPGA calibration",
    )


def fit_fpga_calibration(
    simulated_ms,
    n_layers,
    measured_ms,
    clock_hz: float,
    name: str,
    board: str,
    data: str,
    folds: int = 5,
    seed: int = 0,
    covers: Sequence[str] = (),
) -> FpgaCalibration:
    """Fit (scale, layer_overhead_cycles) to measured latencies of architectures whose
    uncalibrated simulated latency and layer count are given (of the spaces ``covers``), and
    validate by grouped k-fold
    cross-validation (one measurement per architecture)."""
    scale, per_layer_ms, validation = validated_scale_and_overhead(
        simulated_ms, n_layers, measured_ms, CONDITION, data, folds, seed, covers
    )
    n = validation.fitted_on
    note = (
        f"Fitted from {n} measured architectures on {board} ({data}): latency = scale x "
        "(simulated + layers x layer_overhead_cycles / clock)."
    )
    cycles = per_layer_ms / scale * 1e-3 * clock_hz
    return FpgaCalibration(name, board, "recursive", scale, cycles, note, validation)
