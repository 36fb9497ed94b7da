"""GPUs as data: the catalog in ``devices.toml`` plus users' own devices in TOML.

A user device file has the same shape as ``devices.toml`` (one table per device, throughput in
TFLOP/s, bandwidth in GB/s, memory in GB); pass its path as ``devices_file`` to the GPU simulator,
or call :func:`load_devices`. A device overrides a catalog entry of the same name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dse.catalog import check_fields, load_catalog
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


def _number(where: str, key: str, value, zero_ok: bool = False) -> float:
    """A data-sheet number: positive (a launch overhead may be 0: an idealised device)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        what = "a number >= 0" if zero_ok else "a positive number"
        raise ValueError(f"{where}.{key}: expected {what}, got {value!r}")
    return float(value)


def _parse(name: str, table: dict, where: str) -> Device:
    allowed = set(_REQUIRED) | set(_OPTIONAL_NUMBERS) | {"source"}
    check_fields(name, table, where, allowed, _REQUIRED)
    at = f"{where}.{name}"
    peaks = {p: _number(at, k, table[k]) * 1e12 for p, k in PRECISIONS.items() if k in table}
    return Device(
        name=name,
        peak_flops=peaks,
        memory_bandwidth=_number(at, "memory_bandwidth_gbs", table["memory_bandwidth_gbs"]) * 1e9,
        memory_bytes=_number(at, "memory_gb", table["memory_gb"]) * 1e9,
        sms=int(_number(at, "sms", table["sms"])),
        launch_overhead_s=_number(
            at, "launch_overhead_us", table.get("launch_overhead_us", 5), zero_ok=True
        )
        * 1e-6,
        source=str(table.get("source", "")),
    )


def load_devices(path: str | Path | None = None) -> dict[str, Device]:
    """The built-in catalog, extended (and overridden by name) with the devices in ``path``."""
    return load_catalog("dse.catalogs", "devices.toml", path, "devices_file", _parse)


def get_device(name: str, devices_file: str | Path | None = None) -> Device:
    """The device called ``name``; the error lists every allowed name."""
    devices = load_devices(devices_file)
    if name not in devices:
        raise ValueError(f"device: {name!r} is not allowed; allowed values: {sorted(devices)}")
    return devices[name]


@LISTINGS.register("devices")
def device_listing() -> list[tuple[str, str]]:
    """The shipped GPUs (``[simulators.gpu] device``), one line each."""
    return [
        (
            d.name,
            f"{d.peak('fp16') / 1e12:g} fp16 TFLOP/s, {d.memory_bandwidth / 1e9:g} GB/s, "
            f"{d.memory_bytes / 1e9:g} GB, {d.sms} SMs",
        )
        for d in load_devices().values()
    ]
