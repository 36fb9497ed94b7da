"""Devices as data: the catalog in ``devices.toml`` plus users' own devices in TOML.

Every entry declares its ``family`` (``gpu``, the default; ``cpu``: server, desktop, phone and
single-board CPUs; ``asic``: a spatial dataflow accelerator), and each family has its own data-
sheet fields (:data:`FAMILIES`: family -> parser; :mod:`dse.catalogs.cpus`,
:mod:`dse.catalogs.asics`). A GPU gives throughput in TFLOP/s, bandwidth in GB/s, memory in GB. A
user device file has the same shape; pass its path as ``devices_file`` to a simulator, or call
:func:`load_devices`. A device overrides a catalog entry of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dse.catalog import check_fields, load_catalog, sheet_number
from dse.catalogs.asics import AsicDevice, parse_asic
from dse.catalogs.cpus import CpuDevice, parse_cpu
from dse.registry import LISTINGS

#: precision -> the TOML key of its dense peak
PRECISIONS = {
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "fp16": "fp16_tflops",
    "bf16": "bf16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
    "int4": "int4_tops",
}
#: what a precision falls back to on a device without it
FALLBACK = {
    "tf32": "fp32",
    "bf16": "fp16",
    "fp8": "fp16",
    "int4": "int8",
    "int8": "fp16",
    "fp16": "fp32",
}
#: bytes per element of each precision
BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}

_REQUIRED = ("fp32_tflops", "memory_bandwidth_gbs", "memory_gb", "sms")
_OPTIONAL_NUMBERS = tuple(k for k in PRECISIONS.values() if k != "fp32_tflops") + (
    "launch_overhead_us",
)


@dataclass(frozen=True)
class Device:
    """One GPU. ``peak_flops`` maps precision to dense FLOP/s (ops/s for int); bandwidth in
    bytes/s, memory in bytes, launch overhead in seconds per kernel."""

    name: str
    peak_flops: dict[str, float]
    memory_bandwidth: float
    memory_bytes: float
    sms: int
    launch_overhead_s: float = 5e-6
    source: str = ""
    family: str = "gpu"

    def describe(self) -> str:
        """One line for ``dse list devices``."""
        return (
            f"gpu: {self.peak('fp16') / 1e12:g} fp16 TFLOP/s, {self.memory_bandwidth / 1e9:g} "
            f"GB/s, {self.memory_bytes / 1e9:g} GB, {self.sms} SMs"
        )

    def precision(self, precision: str) -> str:
        """The precision this device actually runs ``precision`` at (after fallbacks)."""
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision: {precision!r} is not allowed; allowed values: {list(PRECISIONS)}"
            )
        p = precision
        while p not in self.peak_flops:
            p = FALLBACK[p]
        return p

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision`` (falling back as documented in devices.toml)."""
        return self.peak_flops[self.precision(precision)]

    def ridge_point(self, precision: str) -> float:
        """Operational intensity (FLOP/byte) where the roofline turns from memory- to
        compute-bound."""
        return self.peak(precision) / self.memory_bandwidth


def _parse(name: str, table: dict, where: str) -> Device:
    allowed = set(_REQUIRED) | set(_OPTIONAL_NUMBERS) | {"source", "family"}
    check_fields(name, table, where, allowed, _REQUIRED)
    at = f"{where}.{name}"
    peaks = {p: sheet_number(at, k, table[k]) * 1e12 for p, k in PRECISIONS.items() if k in table}
    return Device(
        name=name,
        peak_flops=peaks,
        memory_bandwidth=sheet_number(at, "memory_bandwidth_gbs", table["memory_bandwidth_gbs"])
        * 1e9,
        memory_bytes=sheet_number(at, "memory_gb", table["memory_gb"]) * 1e9,
        sms=int(sheet_number(at, "sms", table["sms"])),
        launch_overhead_s=sheet_number(
            at, "launch_overhead_us", table.get("launch_overhead_us", 5), zero_ok=True
        )
        * 1e-6,
        source=str(table.get("source", "")),
    )


AnyDevice = Device | CpuDevice | AsicDevice
#: family -> the parser of its catalog entries (a new family adds one line here)
FAMILIES = {"gpu": _parse, "cpu": parse_cpu, "asic": parse_asic}


def _parse_any(name: str, table: dict, where: str) -> AnyDevice:
    family = table.get("family", "gpu")
    if family not in FAMILIES:
        raise ValueError(
            f"{where}.{name}.family: {family!r} is not allowed; allowed values: {list(FAMILIES)}"
        )
    return FAMILIES[family](name, table, where)


def load_all_devices(path: str | Path | None = None) -> dict[str, AnyDevice]:
    """Every device of every family: the built-in catalog, extended (and overridden by name) with
    the devices in ``path``."""
    return load_catalog("dse.catalogs", "devices.toml", path, "devices_file", _parse_any)


def load_devices(path: str | Path | None = None) -> dict[str, Device]:
    """The GPUs of the catalog and ``path`` (what the GPU simulator and LLM paths read)."""
    return {n: d for n, d in load_all_devices(path).items() if isinstance(d, Device)}


def get_any_device(name: str, devices_file: str | Path | None, family: str) -> AnyDevice:
    """The device called ``name`` of ``family``; the error lists every allowed name of it."""
    devices = load_all_devices(devices_file)
    allowed = sorted(n for n, d in devices.items() if d.family == family)
    if name not in devices:
        raise ValueError(f"device: {name!r} is not allowed; allowed values: {allowed}")
    if devices[name].family != family:
        raise ValueError(
            f"device: {name!r} is of family {devices[name].family!r}, not {family!r}; allowed "
            f"values: {allowed}"
        )
    return devices[name]


def get_device(name: str, devices_file: str | Path | None = None) -> Device:
    """The GPU called ``name``; the error lists every allowed name."""
    device = get_any_device(name, devices_file, "gpu")
    assert isinstance(device, Device)
    return device


@LISTINGS.register("devices")
def device_listing() -> list[tuple[str, str]]:
    """The shipped devices of every family (``[simulators.gpu|cpu|asic] device``), one line
    each."""
    return [(d.name, d.describe()) for d in load_all_devices().values()]
