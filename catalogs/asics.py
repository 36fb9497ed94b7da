"""Spatial dataflow accelerators as data (``family = "asic"``): Eyeriss-like PE arrays.

Data-sheet fields (``devices.toml`` has Eyeriss v1 with its sources):

* ``pe_rows``, ``pe_cols``: the PE array; ``frequency_mhz``: its clock; one MAC per PE per cycle;
* ``rf_bytes``: register file (scratchpads) per PE; ``glb_kb``: the global buffer (input rows
  and partial sums: with the register files it sets a layer's DRAM traffic);
* ``noc_bandwidth_gbs``: global buffer <-> PE array bandwidth; ``dram_bandwidth_gbs``: off-chip;
* ``dataflow``: ``row_stationary`` (Eyeriss), ``weight_stationary`` (TPU-like: input channels x
  kernel taps on rows, output channels on columns) or ``output_stationary`` (ShiDianNao-like:
  output pixels on the array);
* ``word_bits``: data width (16 on Eyeriss v1);
* ``energy_mac_pj``: one MAC's energy in picojoules, and the energy of one access of each level
  in MACs: ``energy_rf`` (1), ``energy_noc`` (2), ``energy_glb`` (6), ``energy_dram`` (200): the
  relative costs Eyeriss published (Chen et al., ISCA 2016, fig. 1; JSSC 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.catalog import check_fields, sheet_choice, sheet_number

DATAFLOWS = ("row_stationary", "weight_stationary", "output_stationary")
_REQUIRED = ("pe_rows", "pe_cols", "frequency_mhz", "glb_kb", "dram_bandwidth_gbs")
_OPTIONAL = {
    "rf_bytes": 512,
    "noc_bandwidth_gbs": 6.4,
    "word_bits": 16,
    "energy_mac_pj": 1.0,
    "energy_rf": 1.0,
    "energy_noc": 2.0,
    "energy_glb": 6.0,
    "energy_dram": 200.0,
}


@dataclass(frozen=True)
class AsicDevice:
    """One accelerator. Clock in Hz, buffers in bytes, bandwidths in bytes/s, energies: MAC in
    joules, accesses in MAC units."""

    name: str
    pe_rows: int
    pe_cols: int
    frequency_hz: float
    glb_bytes: float
    dram_bandwidth: float
    rf_bytes: float = 512.0
    noc_bandwidth: float = 6.4e9
    word_bits: int = 16
    energy_mac_j: float = 1e-12
    energy_rf: float = 1.0
    energy_noc: float = 2.0
    energy_glb: float = 6.0
    energy_dram: float = 200.0
    dataflow: str = "row_stationary"
    source: str = ""
    family: str = "asic"

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols

    @property
    def word_bytes(self) -> float:
        return self.word_bits / 8

    def describe(self) -> str:
        """One line for ``dse list devices``."""
        return (
            f"asic: {self.pe_rows}x{self.pe_cols} PEs at {self.frequency_hz / 1e6:g} MHz, "
            f"{self.dataflow}, {self.glb_bytes / 1024:g} KB buffer, "
            f"{self.dram_bandwidth / 1e9:g} GB/s DRAM"
        )


def parse_asic(name: str, table: dict, where: str) -> AsicDevice:
    """A ``family = "asic"`` catalog entry (see the module docstring for its fields)."""
    allowed = {*_REQUIRED, *_OPTIONAL, "dataflow", "source", "family"}
    check_fields(name, table, where, allowed, _REQUIRED)
    at = f"{where}.{name}"

    def num(key: str, whole: bool = False) -> float:
        return sheet_number(at, key, table.get(key, _OPTIONAL.get(key)), whole=whole)

    return AsicDevice(
        name=name,
        pe_rows=int(num("pe_rows", whole=True)),
        pe_cols=int(num("pe_cols", whole=True)),
        frequency_hz=num("frequency_mhz") * 1e6,
        glb_bytes=num("glb_kb") * 1024,
        dram_bandwidth=num("dram_bandwidth_gbs") * 1e9,
        rf_bytes=num("rf_bytes"),
        noc_bandwidth=num("noc_bandwidth_gbs") * 1e9,
        word_bits=int(num("word_bits", whole=True)),
        energy_mac_j=num("energy_mac_pj") * 1e-12,
        energy_rf=num("energy_rf"),
        energy_noc=num("energy_noc"),
        energy_glb=num("energy_glb"),
        energy_dram=num("energy_dram"),
        dataflow=sheet_choice(at, "dataflow", table.get("dataflow", "row_stationary"), DATAFLOWS),
        source=str(table.get("source", "")),
    )
