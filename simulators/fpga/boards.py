"""FPGA boards as data: the catalog in ``boards.toml`` plus users' own boards in TOML.

A user board file has the same shape as ``boards.toml`` (one table per board); pass its path as
``boards_file`` to the FPGA simulator, or call :func:`load_boards`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from dse.catalog import check_fields, load_catalog
from dse.registry import LISTINGS


@dataclass(frozen=True)
class Board:
    """Resources of one FPGA board. Bandwidth in GB/s (1e9 bytes/s), clock in MHz."""

    name: str
    part: str
    dsp: int
    bram_18k: int
    lut: int
    clock_mhz: float
    ddr_gbps: float
    uram: int = 0
    source: str = ""

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def ddr_bytes_per_s(self) -> float:
        return self.ddr_gbps * 1e9

    @property
    def onchip_bytes(self) -> int:
        """Block RAM plus UltraRAM capacity in bytes (18 Kb BRAM, 288 Kb URAM)."""
        return (self.bram_18k * 18 * 1024 + self.uram * 288 * 1024) // 8


_REQUIRED = ("part", "dsp", "bram_18k", "lut", "clock_mhz", "ddr_gbps")


def _parse(name: str, table: dict, where: str) -> Board:
    allowed = {f.name for f in fields(Board)} - {"name"}
    check_fields(name, table, where, allowed, _REQUIRED)
    for key in ("dsp", "bram_18k", "lut", "clock_mhz", "ddr_gbps"):
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{where}.{name}.{key}: expected a positive number, got {value!r}")
    return Board(name=name, **table)


def load_boards(path: str | Path | None = None) -> dict[str, Board]:
    """The built-in catalog, extended (and overridden by name) with the boards in ``path``."""
    return load_catalog("dse.simulators.fpga", "boards.toml", path, "boards_file", _parse)


@LISTINGS.register("boards")
def board_listing() -> list[tuple[str, str]]:
    """The shipped FPGA boards (``[simulators.fpga] board``), one line each."""
    return [
        (
            b.name,
            f"{b.part}: {b.dsp} DSPs, {b.bram_18k} BRAM18K, {b.lut} LUTs, {b.clock_mhz:g} MHz, "
            f"DDR {b.ddr_gbps:g} GB/s",
        )
        for b in load_boards().values()
    ]
