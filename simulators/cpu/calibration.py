"""A CPU calibration: per operator class, the runtime's fixed cost and the fraction of SIMD peak
reached, plus one memory efficiency; stored as TOML with its validation record.

``calibration = "auto"`` is the shipped file named like the device, else the data sheet
(:meth:`CpuCalibration.data_sheet`: the device's ``op_overhead_us`` for every class and the
efficiencies of :data:`SHEET_EFFICIENCY`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dse.catalog import load_named_file, number_table, resolve_named_file, shipped_files
from dse.catalogs.cpus import CpuDevice
from dse.fidelity import Validation
from dse.measured_tables import check_mix, mix_of, mix_toml

#: operator classes a CPU calibration distinguishes (see :mod:`dse.simulators.cpu.model`)
CPU_CLASSES = (
    "conv",
    "pointwise",
    "grouped",
    "depthwise",
    "linear",
    "pool",
    "norm",
    "activation",
    "elementwise",
    "zero",
)
#: fraction of SIMD peak per class before any calibration: im2col + GEMM convolutions and
#: linear layers reach about half of peak in oneDNN/XNNPACK, depthwise loops a tenth; the
#: memory-bound classes are limited by bandwidth, not by this number
SHEET_EFFICIENCY = {
    "conv": 0.5,
    "pointwise": 0.4,
    "grouped": 0.2,
    "depthwise": 0.1,
    "linear": 0.5,
    "pool": 0.25,
    "norm": 0.25,
    "activation": 0.25,
    "elementwise": 0.25,
    "zero": 0.25,
}


@dataclass(frozen=True)
class CpuCalibration:
    """Per class (:data:`CPU_CLASSES`): ``overhead_us`` (microseconds per operator, ``None``:
    the device's ``op_overhead_us``) and ``efficiency`` (fraction of SIMD peak); one
    ``memory_efficiency`` (fraction of the cache or DRAM bandwidth reached).

    ``tables`` (shipped measured table -> weight, :mod:`dse.simulators.cpu.tables`) and
    ``roofline_weight``: an operator costs ``roofline_weight x roofline(op) + sum_s w_s
    t_s(op)`` over those devices' measured tables (``dse calibrate`` keeps such a mix whenever
    a table earns a weight: :func:`dse.measured_tables.cross_validate_mix`; without tables the
    roofline is the cost)."""

    name: str = "data sheet"
    overhead_us: Mapping[str, float] = field(default_factory=dict)
    efficiency: Mapping[str, float] = field(default_factory=dict)
    memory_efficiency: float = 0.5
    device: str = ""
    note: str = ""
    validation: Validation | None = None
    tables: Mapping[str, float] = field(default_factory=dict)
    roofline_weight: float = 1.0

    def __post_init__(self):
        check_mix(self.name, self.tables, self.roofline_weight)
        for table in ("overhead_us", "efficiency"):
            for c, v in getattr(self, table).items():
                if c not in CPU_CLASSES:
                    raise ValueError(
                        f"calibration {self.name!r}: {table}.{c}: unknown class; allowed "
                        f"values: {list(CPU_CLASSES)}"
                    )
                low_ok = table == "overhead_us"
                if not np.isfinite(v) or v < 0 or (not low_ok and not 0 < v <= 1):
                    raise ValueError(
                        f"calibration {self.name!r}: {table}.{c}: "
                        + ("must be >= 0" if low_ok else "must be in (0, 1]")
                        + f", got {v}"
                    )
        if not 0 < self.memory_efficiency <= 1:
            raise ValueError(
                f"calibration {self.name!r}: memory_efficiency: must be in (0, 1], got "
                f"{self.memory_efficiency}"
            )

    def arrays(self, device: CpuDevice) -> tuple[np.ndarray, np.ndarray, float]:
        """(overhead seconds, efficiency), each indexed by :data:`CPU_CLASSES` position, and the
        memory efficiency."""
        over = np.array(
            [self.overhead_us.get(c, device.op_overhead_s * 1e6) * 1e-6 for c in CPU_CLASSES]
        )
        eta = np.array([self.efficiency.get(c, SHEET_EFFICIENCY[c]) for c in CPU_CLASSES])
        return over, eta, self.memory_efficiency

    def to_toml(self) -> str:
        out = [f'name = "{self.name}"', f'device = "{self.device}"']
        out.append(f"memory_efficiency = {self.memory_efficiency:.6g}")
        if self.note:
            out.append('note = """\n' + self.note.strip() + '\n"""')
        for table in ("overhead_us", "efficiency"):
            values = getattr(self, table)
            if values:
                out.append(f"\n[{table}]")
                out += [f"{c} = {values[c]:.6g}" for c in CPU_CLASSES if c in values]
        if self.tables:
            out.insert(3, f"roofline_weight = {self.roofline_weight:.6g}")
        out += mix_toml(self.tables)
        if self.validation is not None:
            out.append("\n" + self.validation.to_toml())
        return "\n".join(out) + "\n"


def parse_cpu_calibration(data: Mapping[str, Any], where: str) -> CpuCalibration:
    allowed = {"name", "device", "note", "memory_efficiency", "overhead_us", "efficiency"}
    allowed |= {"validation", "tables", "roofline_weight"}
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; allowed: {sorted(allowed)}")

    return CpuCalibration(
        str(data.get("name", where)),
        number_table(data, "overhead_us", where, "class"),
        number_table(data, "efficiency", where, "class"),
        float(data.get("memory_efficiency", 0.5)),
        str(data.get("device", "")),
        str(data.get("note", "")),
        Validation.from_dict(data["validation"], f"{where}.validation")
        if "validation" in data
        else None,
        mix_of(data, where),
        float(data.get("roofline_weight", 1.0)),
    )


def shipped_cpu_calibrations() -> list[str]:
    return shipped_files("dse.simulators.cpu", "calibrations")


def load_cpu_calibration(name_or_path: str | Path) -> CpuCalibration:
    """A shipped CPU calibration by name or a TOML file by path."""
    return load_named_file(
        "dse.simulators.cpu",
        "calibrations",
        name_or_path,
        parse_cpu_calibration,
        "CPU calibration",
    )


def resolve_cpu_calibration(spec: str | CpuCalibration, device: CpuDevice) -> CpuCalibration:
    """``"auto"``: the shipped calibration named like the device, else the data sheet;
    ``"none"``: the data sheet; otherwise a shipped name or a TOML path."""
    if isinstance(spec, CpuCalibration):
        return spec
    found = resolve_named_file(
        "dse.simulators.cpu",
        "calibrations",
        spec,
        device.name,
        parse_cpu_calibration,
        "CPU calibration",
    )
    return found or CpuCalibration(device=device.name)
