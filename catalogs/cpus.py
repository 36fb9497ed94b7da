"""CPUs as data: server, desktop, laptop, phone and single-board CPUs (``family = "cpu"``).

Data-sheet fields a user can look up (``devices.toml`` has the shipped ones with sources):

* ``cores``: the cores an inference runs on (a phone's big cluster; threads default to these);
* ``frequency_ghz``: their sustained clock;
* ``flops_per_cycle``: fp32 FLOPs per cycle per core (SIMD lanes x FMA units x 2: 32 for two
  AVX-512 FMA units, 16 for one, 16 for Cortex-A76/A78's two 128-bit NEON pipes, 8 for one);
* ``l1_kb``, ``l2_kb`` (per core), ``l3_mb`` (shared, 0: none): the cache levels an operator's
  working set is compared with;
* ``cache_bytes_per_cycle``: L2 bandwidth per core (bytes/cycle; 32 unless the sheet says);
* ``memory_bandwidth_gbs``: DRAM bandwidth (GB/s = 1e9 bytes/s);
* ``op_overhead_us``: the runtime's fixed cost per operator (dispatch, allocation), microseconds;
* ``runtime``: ``eager`` (PyTorch eager: every IR op runs on its own) or ``fused`` (TFLite,
  ONNX Runtime, oneDNN graphs: batch norm folded into the convolution before it, activations
  run as the previous op's epilogue), or ``graph`` (a graph compiler such as TFLite's
  converter: fused, and dead code removed: an op whose result reaches the output only through
  NAS-Bench-201's ``zero`` is never run).
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.catalog import check_fields, sheet_choice, sheet_number

RUNTIMES = ("eager", "fused", "graph")
_REQUIRED = ("cores", "frequency_ghz", "flops_per_cycle", "memory_bandwidth_gbs")
_OPTIONAL = {
    "l1_kb": 32,
    "l2_kb": 512,
    "l3_mb": 0,
    "cache_bytes_per_cycle": 32,
    "op_overhead_us": 10,
    "memory_gb": 8,
}


@dataclass(frozen=True)
class CpuDevice:
    """One CPU. Frequency in Hz, caches and memory in bytes, bandwidths in bytes/s, the
    per-operator overhead in seconds."""

    name: str
    cores: int
    frequency_hz: float
    flops_per_cycle: float
    memory_bandwidth: float
    l1_bytes: float = 32 * 1024
    l2_bytes: float = 512 * 1024
    l3_bytes: float = 0.0
    cache_bytes_per_cycle: float = 32.0
    op_overhead_s: float = 10e-6
    memory_bytes: float = 8e9
    runtime: str = "eager"
    source: str = ""
    family: str = "cpu"

    @property
    def peak_flops(self) -> float:
        """fp32 FLOP/s of all cores at SIMD peak."""
        return self.cores * self.frequency_hz * self.flops_per_cycle

    def cache_bandwidth(self, threads: int) -> float:
        """L2 bytes/s of ``threads`` cores."""
        return threads * self.frequency_hz * self.cache_bytes_per_cycle

    def describe(self) -> str:
        """One line for ``dse list devices``."""
        return (
            f"cpu: {self.cores} cores x {self.frequency_hz / 1e9:g} GHz x "
            f"{self.flops_per_cycle:g} FLOP/cycle = {self.peak_flops / 1e9:.0f} GFLOP/s fp32, "
            f"{self.memory_bandwidth / 1e9:g} GB/s, {self.runtime} runtime"
        )


def parse_cpu(name: str, table: dict, where: str) -> CpuDevice:
    """A ``family = "cpu"`` catalog entry (see the module docstring for its fields)."""
    allowed = {*_REQUIRED, *_OPTIONAL, "runtime", "source", "family"}
    check_fields(name, table, where, allowed, _REQUIRED)
    at = f"{where}.{name}"

    def num(key: str, zero_ok: bool = False, whole: bool = False) -> float:
        return sheet_number(at, key, table.get(key, _OPTIONAL.get(key)), zero_ok, whole)

    return CpuDevice(
        name=name,
        cores=int(num("cores", whole=True)),
        frequency_hz=num("frequency_ghz") * 1e9,
        flops_per_cycle=num("flops_per_cycle"),
        memory_bandwidth=num("memory_bandwidth_gbs") * 1e9,
        l1_bytes=num("l1_kb") * 1024,
        l2_bytes=num("l2_kb") * 1024,
        l3_bytes=num("l3_mb", zero_ok=True) * 1024**2,
        cache_bytes_per_cycle=num("cache_bytes_per_cycle"),
        op_overhead_s=num("op_overhead_us", zero_ok=True) * 1e-6,
        memory_bytes=num("memory_gb") * 1e9,
        runtime=sheet_choice(at, "runtime", table.get("runtime", "eager"), RUNTIMES),
        source=str(table.get("source", "")),
    )
