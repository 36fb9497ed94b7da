"""The roofline cost of GPU kernels, with calibrated efficiencies (dissertation 2.4.2, 6.4.3.1).

A kernel doing ``F`` FLOPs and moving ``B`` bytes has operational intensity ``OI = F / B``
(FLOP/byte) and, on a device with peak ``P`` (FLOP/s) and bandwidth ``W`` (bytes/s), an attainable
throughput ``min(P, OI * W)``: the roofline, an upper bound. Its predicted time is::

    t = max(F / (P * eta_compute), B / (W * eta_memory)) + t_overhead          (seconds)

where ``eta_compute`` and ``eta_memory`` are the fractions of peak and bandwidth this class of
kernel reaches and ``t_overhead`` the fixed cost per kernel (launch, framework dispatch, tail
effects of small grids). The efficiencies come from a :class:`Calibration` per device and op class
(``conv``, ``dwconv``, ``linear``, ``matmul``, ``pool``, ``elementwise``), fitted to measurements
by :mod:`dse.simulators.gpu.calibration`; an uncalibrated model has every efficiency at 1.

Everything is vectorised: callers pass numpy arrays of kernels and get arrays of seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dse.catalog import load_named_file, number_table, resolve_named_file, shipped_files
from dse.catalogs.devices import Device
from dse.fidelity import Validation
from dse.measured_tables import check_mix, mix_of, mix_toml

#: kernel classes that calibrations distinguish; every IR op kind maps to one (kernels.py)
OP_CLASSES = ("conv", "dwconv", "linear", "matmul", "pool", "elementwise")
#: a kernel's regime on the data sheet's roofline: ``memory`` where its bytes take longer at
#: full bandwidth than its FLOPs at peak, else ``compute``
REGIMES = ("compute", "memory")
#: the keys of a calibration's ``[regime_scales]``: ``class.regime``
REGIME_KEYS = tuple(f"{c}.{r}" for c in OP_CLASSES for r in REGIMES)


def regime_index(op_class, flops, bytes_, peak, bandwidth: float) -> np.ndarray:
    """Each kernel's position in :data:`REGIME_KEYS` (arrays of class indices, FLOPs, bytes
    and peak FLOP/s broadcast): its class and whether the data sheet's roofline has it
    memory-bound."""
    memory = np.asarray(bytes_, dtype=float) * peak > np.asarray(flops, dtype=float) * bandwidth
    return len(REGIMES) * np.asarray(op_class) + memory


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak FLOP/s and of memory bandwidth a kernel class reaches, and its fixed
    cost per kernel in seconds (``None``: the device's launch overhead)."""

    compute: float = 1.0
    memory: float = 1.0
    overhead_s: float | None = None

    def __post_init__(self):
        for name in ("compute", "memory"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"efficiency.{name}: must be in (0, 1], got {value}")
        if self.overhead_s is not None and self.overhead_s < 0:
            raise ValueError(f"efficiency.overhead_us: must be >= 0, got {self.overhead_s * 1e6}")


@dataclass(frozen=True)
class Calibration:
    """Per-class efficiencies of one device (and, implicitly, one software stack)."""

    name: str = "uncalibrated"
    default: Efficiency = Efficiency()
    classes: Mapping[str, Efficiency] = field(default_factory=dict)
    note: str = ""
    #: how the calibration was checked against measurements (None: never)
    validation: Validation | None = None
    #: measured kernel tables mixed in (table -> weight) and the roofline's weight: a graph's
    #: kernel row costs ``roofline_weight x roofline + sum_s w_s t_s`` (:mod:`..tables`)
    tables: Mapping[str, float] = field(default_factory=dict)
    roofline_weight: float = 1.0
    #: a factor on the (mixed) seconds of every kernel of a class in a roofline regime
    #: (:data:`REGIME_KEYS` -> factor; absent: 1): what ten measurements say this device's
    #: compute-bound convolutions, say, cost against what the model and the tables priced
    #: (:mod:`dse.simulators.gpu.fewshot`, candidate ``regimes``)
    regime_scales: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        check_mix(self.name, self.tables, self.roofline_weight)
        for key, factor in self.regime_scales.items():
            if key not in REGIME_KEYS:
                raise ValueError(
                    f"calibration {self.name!r}: regime_scales.{key}: unknown; allowed values: "
                    f"class.regime with class in {list(OP_CLASSES)}, regime in {list(REGIMES)}"
                )
            if not (np.isfinite(factor) and factor > 0):
                raise ValueError(
                    f"calibration {self.name!r}: regime_scales.{key}: must be a factor > 0, "
                    f"got {factor}"
                )
        for c in self.classes:
            if c not in OP_CLASSES:
                raise ValueError(
                    f"calibration {self.name!r}: classes.{c}: unknown op class; "
                    f"allowed values: {list(OP_CLASSES)}"
                )

    def efficiency(self, op_class: str) -> Efficiency:
        return self.classes.get(op_class, self.default)

    def arrays(self, device: Device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(eta_compute, eta_memory, overhead seconds), each indexed by OP_CLASSES position."""
        effs = [self.efficiency(c) for c in OP_CLASSES]
        over = [device.launch_overhead_s if e.overhead_s is None else e.overhead_s for e in effs]
        return (
            np.array([e.compute for e in effs]),
            np.array([e.memory for e in effs]),
            np.array(over),
        )

    def regime_factors(self) -> np.ndarray:
        """The ``[regime_scales]`` as one factor per :data:`REGIME_KEYS` position (1 where
        absent)."""
        return np.array([self.regime_scales.get(k, 1.0) for k in REGIME_KEYS])

    def to_toml(self) -> str:
        def table(e: Efficiency) -> str:
            lines = [f"compute = {e.compute:.6g}", f"memory = {e.memory:.6g}"]
            if e.overhead_s is not None:
                lines.append(f"overhead_us = {e.overhead_s * 1e6:.6g}")
            return "\n".join(lines) + "\n"

        out = [f"name = {self.name!r}".replace("'", '"')]
        if self.tables:
            out.append(f"roofline_weight = {self.roofline_weight:.6g}")
        if self.note:
            out.append('note = """\n' + self.note.strip() + '\n"""')
        out.append("\n[default]\n" + table(self.default))
        for c, e in self.classes.items():
            out.append(f"[classes.{c}]\n" + table(e))
        if self.tables:
            out.append("\n".join(mix_toml(self.tables)).lstrip("\n") + "\n")
        if self.regime_scales:
            factors = (f'"{k}" = {v:.6g}' for k, v in self.regime_scales.items())
            out.append("[regime_scales]\n" + "\n".join(factors) + "\n")
        if self.validation is not None:
            out.append(self.validation.to_toml())
        return "\n".join(out)


def _efficiency(table: Mapping, where: str) -> Efficiency:
    allowed = {"compute", "memory", "overhead_us"}
    for key in table:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; allowed: {sorted(allowed)}")
    over = table.get("overhead_us")
    return Efficiency(
        float(table.get("compute", 1.0)),
        float(table.get("memory", 1.0)),
        None if over is None else float(over) * 1e-6,
    )


def parse_calibration(data: Mapping, where: str = "calibration") -> Calibration:
    allowed = {
        "name", "note", "default", "classes", "validation", "tables", "roofline_weight",
        "regime_scales",
    }  # fmt: skip
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; allowed: {sorted(allowed)}")
    classes = {
        c: _efficiency(t, f"{where}.classes.{c}") for c, t in data.get("classes", {}).items()
    }
    return Calibration(
        str(data.get("name", where)),
        _efficiency(data.get("default", {}), f"{where}.default"),
        classes,
        str(data.get("note", "")),
        Validation.from_dict(data["validation"], f"{where}.validation")
        if "validation" in data
        else None,
        mix_of(data, where),
        float(data.get("roofline_weight", 1.0)),
        number_table(data, "regime_scales", where, "class.regime"),
    )


def shipped_calibrations() -> list[str]:
    """Names of the calibrations shipped in ``calibrations/`` (file stems)."""
    return shipped_files("dse.simulators.gpu", "calibrations")


def load_calibration(name_or_path: str | Path) -> Calibration:
    """A shipped calibration by name (see :func:`shipped_calibrations`) or a TOML file by path."""
    return load_named_file(
        "dse.simulators.gpu", "calibrations", name_or_path, parse_calibration, "calibration"
    )


#: ``calibration = "none"``: the bare roofline, every efficiency 1 and no per-kernel overhead
#: (an uncalibrated device otherwise pays its data sheet's launch overhead per kernel)
BARE = Calibration(
    "none", Efficiency(1.0, 1.0, 0.0), note="the bare roofline: no efficiency, no overhead"
)


def resolve_calibration(spec: str | Calibration | None, device: Device) -> Calibration:
    """``"none"``/None: the bare roofline (:data:`BARE`); ``"auto"``: the shipped calibration
    named like the device if there is one, else the data sheet with its launch overhead;
    otherwise a shipped name or a TOML path."""
    if isinstance(spec, Calibration):
        return spec
    if spec in (None, "none"):
        return BARE
    found = resolve_named_file(
        "dse.simulators.gpu", "calibrations", spec, device.name, parse_calibration, "calibration"
    )
    return found or Calibration()


def attainable_flops(oi, peak: float | np.ndarray, bandwidth: float) -> np.ndarray:
    """The roofline: attainable FLOP/s at operational intensity ``oi`` (FLOP/byte)."""
    return np.minimum(peak, np.asarray(oi, dtype=float) * bandwidth)


def kernel_seconds(
    flops, bytes_, peak, bandwidth: float, eta_compute=1.0, eta_memory=1.0, overhead_s=0.0
) -> np.ndarray:
    """Predicted seconds of kernels (all arguments broadcast): see the module docstring."""
    flops = np.asarray(flops, dtype=float)
    bytes_ = np.asarray(bytes_, dtype=float)
    return np.maximum(flops / (peak * eta_compute), bytes_ / (bandwidth * eta_memory)) + overhead_s
