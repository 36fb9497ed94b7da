"""The FPGA simulator as a metric provider: any graph of any space -> latency, throughput, DSPs,
BRAM.

Config::

    [simulators.fpga]
    board = "ZCU102"             # from the catalog (boards.toml) or boards_file
    architecture = "recursive"   # or "pipelined"
    dsp_budget = 2520            # default: the board's DSPs; at most the board's
    # dsp_fraction = 0.5         # ... or a share of the board's DSPs (sweeps across boards)
    double_buffering = true      # DDR transfers overlap compute
    phi = {"8" = 0.5, "16" = 1}  # optional Phi(q) table, cycles per work unit per lane
    psi = {"4" = 0, "8" = 0.5, "16" = 1}   # optional Psi(q) table, DSPs per lane
    fuse = true                  # batch norm and activations fused into their convolution
    layer_overhead_cycles = 0    # fixed cycles per layer (control, DMA set-up), e.g. fitted
    integer_lanes = false        # pipelined: any integer lanes per stage, not only powers of two
    calibration = "none"         # none (the analytic model), auto, a shipped name, a TOML path

With ``des_frames = N`` (N >= 2; for a pipelined design N well above twice its layer count, so
the pipeline reaches steady state) the optimised design also runs in the discrete-event
simulator (des.py) and adds ``fpga_des_throughput_fps`` and ``fpga_des_latency_ms`` (median frame).

Metrics: ``fpga_latency_ms`` (one frame), ``fpga_throughput_fps``, ``fpga_dsp``, ``fpga_bram``
(18 Kb blocks), ``fpga_lut`` (LUT multipliers only) and ``fpga_feasible`` (1 when the design
fits the board's DSPs, BRAM and LUTs; use it as a constraint with ``min = 1``).
A calibration (``simulators/fpga/calibrations``, or one ``dse calibrate --board`` wrote) scales
latency and sets the per-layer cost of the recursive accelerator (see calibration.py). The
default is the analytic model: its published-accelerator checks (table 2.3) assume no host.
:meth:`FpgaSimulator.evaluate_population` costs many graphs in one numpy pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import networkx as nx
import numpy as np

from dse.fidelity import Fidelity, shipped_fidelity
from dse.provider import PopulationProvider
from dse.registry import SIMULATORS
from dse.simulators.fpga.accelerators import ACCELERATORS, Settings
from dse.simulators.fpga.boards import load_boards
from dse.simulators.fpga.calibration import (
    CONDITION,
    load_fpga_calibration,
    resolve_fpga_calibration,
    shipped_fpga_calibrations,
)
from dse.simulators.fpga.model import (
    PHI_DEFAULT,
    PSI_DEFAULT,
    LayerRows,
    LayerTable,
    lookup,
    offchip_bytes,
    parse_table,
)


@SIMULATORS.register("fpga")
class FpgaSimulator(PopulationProvider):
    """EDD FPGA accelerators (recursive or pipelined) with DSP allocation, on a catalog board."""

    name = "fpga"
    metrics = (
        "fpga_latency_ms",
        "fpga_throughput_fps",
        "fpga_dsp",
        "fpga_bram",
        "fpga_lut",
        "fpga_feasible",
    )
    units = {
        "fpga_latency_ms": "ms",
        "fpga_throughput_fps": "frames/s",
        "fpga_dsp": "DSPs",
        "fpga_bram": "BRAM18K blocks",
        "fpga_lut": "LUTs",
        "fpga_feasible": "0/1",
        "fpga_des_throughput_fps": "frames/s",
        "fpga_des_latency_ms": "ms",
    }
    cost = 1e-3

    def __init__(
        self,
        board: str = "ZCU102",
        architecture: Literal["recursive", "pipelined"] = "recursive",
        dsp_budget: int | None = None,
        dsp_fraction: float | None = None,
        double_buffering: bool = True,
        onchip_fraction: float = 0.7,
        lut_fraction: float = 0.5,
        phi: dict | None = None,
        psi: dict | None = None,
        boards_file: str | None = None,
        tiles: int = 16,
        des_frames: int = 0,
        fifo_depth: int = 1,
        fuse: bool = True,
        layer_overhead_cycles: float = 0.0,
        integer_lanes: bool = False,
        calibration: str = "none",
    ):
        boards = load_boards(boards_file)
        if board not in boards:
            raise ValueError(f"board: {board!r} is not allowed; allowed values: {sorted(boards)}")
        if architecture not in ACCELERATORS:
            raise ValueError(
                f"architecture: {architecture!r} is not allowed; allowed values: "
                f"{sorted(ACCELERATORS)}"
            )
        chip = boards[board]
        if dsp_budget is not None and dsp_fraction is not None:
            raise ValueError(
                "dsp_budget: give dsp_budget (DSPs) or dsp_fraction (of the board's), not both"
            )
        if dsp_budget is not None and not 1 <= dsp_budget <= chip.dsp:
            # refused, not clipped: a clipped budget would label every result with a budget
            # the design never had
            raise ValueError(
                f"dsp_budget: {dsp_budget} is outside board {board!r}'s DSPs; allowed values: "
                f"1..{chip.dsp} (or dsp_fraction, a share of any board's)"
            )
        if dsp_fraction is not None and not 0 < dsp_fraction <= 1:
            raise ValueError(f"dsp_fraction: must be in (0, 1], got {dsp_fraction}")
        for field, value in (("onchip_fraction", onchip_fraction), ("lut_fraction", lut_fraction)):
            if not 0 < value <= 1:
                raise ValueError(f"{field}: must be in (0, 1], got {value}")
        if tiles < 1:
            raise ValueError(f"tiles: must be >= 1, got {tiles}")
        if des_frames < 0 or des_frames == 1:
            raise ValueError(f"des_frames: must be 0 (off) or >= 2, got {des_frames}")
        if fifo_depth < 1:
            raise ValueError(f"fifo_depth: must be >= 1, got {fifo_depth}")
        if layer_overhead_cycles < 0:
            raise ValueError(f"layer_overhead_cycles: must be >= 0, got {layer_overhead_cycles}")
        if integer_lanes and architecture != "pipelined":
            raise ValueError(
                "integer_lanes: applies to architecture 'pipelined' only (recursive IPs "
                "double their lanes, eqs. 2.13-2.15)"
            )
        self.calibration = resolve_fpga_calibration(calibration, board)
        self.scale = 1.0
        if self.calibration is not None:
            cal = self.calibration
            if cal.board != board or cal.architecture != architecture:
                raise ValueError(
                    f"calibration: {cal.name!r} is for board {cal.board!r}, architecture "
                    f"{cal.architecture!r}, not {board!r}, {architecture!r}"
                )
            if layer_overhead_cycles:
                raise ValueError(
                    "layer_overhead_cycles: the calibration sets it; give one or the other"
                )
            self.scale, layer_overhead_cycles = cal.scale, cal.layer_overhead_cycles
        self.integer_lanes = integer_lanes
        self.tiles, self.des_frames, self.fifo_depth = tiles, des_frames, fifo_depth
        if des_frames:
            self.metrics = self.metrics + ("fpga_des_throughput_fps", "fpga_des_latency_ms")
        self.board = boards[board]
        self.architecture = architecture
        #: the template's strategy (recursive or pipelined)
        self.accelerator = ACCELERATORS[architecture]
        self.settings = Settings(double_buffering, tiles, integer_lanes, fifo_depth, des_frames)
        self.dsp_budget = float(
            dsp_budget
            if dsp_budget is not None
            else max(1, math.floor(self.board.dsp * (dsp_fraction or 1.0)))
        )
        self.double_buffering = double_buffering
        self.onchip_budget = self.board.onchip_bytes * onchip_fraction
        self.lut_budget = self.board.lut * lut_fraction
        self.phi = parse_table(phi, PHI_DEFAULT, "phi")
        self.psi = parse_table(psi, PSI_DEFAULT, "psi")
        self.overhead_s = layer_overhead_cycles / self.board.clock_hz
        self._rows = LayerRows(fuse=fuse)

    def layers(self, graphs: Sequence[nx.DiGraph]) -> LayerTable:
        """The compute layers of ``graphs`` as the accelerators see them (fused or not)."""
        return self._rows.table(graphs)

    def phi_at(self, bits: np.ndarray) -> np.ndarray:
        """Phi (cycles per work unit per lane) of each layer bit-width (eq. 2.14)."""
        return lookup(self.phi, bits)

    def psi_at(self, bits: np.ndarray) -> np.ndarray:
        """Psi (DSPs per lane) of each layer bit-width (eq. 2.15)."""
        return lookup(self.psi, bits)

    def designs(self, layers: LayerTable):
        """Optimised accelerators for every graph of ``layers`` (a RecursivePopulation or a
        PipelinedPopulation)."""
        mem_s = offchip_bytes(layers, self.onchip_budget) / self.board.ddr_bytes_per_s
        return self.accelerator.allocate(
            layers,
            self.settings,
            clock_hz=self.board.clock_hz,
            dsp_budget=self.dsp_budget,
            lut_budget=self.lut_budget,
            phi=self.phi,
            psi=self.psi,
            mem_s=mem_s,
            overlap=self.double_buffering,
            overhead_s=self.overhead_s,
        )

    def design(self, graph: nx.DiGraph):
        """(layers, the optimised accelerator) for ``graph``: a RecursiveDesign or a
        PipelinedDesign."""
        layers = self.layers([graph])
        return layers, self.designs(layers).design(0)

    def simulate(self, graph: nx.DiGraph, frames: int | None = None):
        """Discrete-event run of the optimised design: a RecursiveTrace (one inference) or a
        PipelineTrace (``frames`` frames streamed through the stages)."""
        return self.accelerator.simulate(self.design(graph)[1], self.settings, frames)

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        """The metrics of every graph, as arrays (one vectorised pass, DSP allocation included)."""
        layers = self.layers(graphs)
        pop = self.designs(layers)
        bram = self.accelerator.bram(layers, self.settings, self.onchip_budget)
        latency = pop.latency_s * self.scale
        throughput = self.accelerator.throughput(pop, latency, self.scale)
        fits = (
            pop.feasible
            & (pop.dsp <= self.board.dsp)
            & (bram <= self.board.bram_18k)
            & (pop.lut <= self.board.lut)
        )
        out = {
            "fpga_latency_ms": latency * 1e3,
            "fpga_throughput_fps": throughput,
            "fpga_dsp": pop.dsp,
            "fpga_bram": bram,
            "fpga_lut": pop.lut,
            "fpga_feasible": fits.astype(float),
        }
        if self.des_frames:
            des_latency, des_throughput = np.zeros(len(graphs)), np.zeros(len(graphs))
            for i in range(len(graphs)):  # the designs optimised above, not second ones
                trace = self.accelerator.simulate(pop.design(i), self.settings, None)
                des_latency[i], des_throughput[i] = self.accelerator.des_point(trace)
            out["fpga_des_latency_ms"] = des_latency * 1e3 * self.scale
            out["fpga_des_throughput_fps"] = des_throughput / self.scale
        return out

    @staticmethod
    def calibrations() -> dict[str, Fidelity]:
        """Every shipped calibration with its validated latency error (``dse list``)."""
        return shipped_fidelity(shipped_fpga_calibrations(), load_fpga_calibration, CONDITION)

    def fidelity(self) -> dict[str, Fidelity]:
        """The expected error of each metric: the calibration's validation for latency and
        throughput; resources are the analytic allocation's."""
        cal = self.calibration
        if cal is None:
            timing = Fidelity(note="uncalibrated: data sheet only (board DSPs, clock, DDR)")
        else:
            timing = Fidelity.of_calibration(cal.name, cal.validation, CONDITION)
        resources = Fidelity(note="analytic allocation, not validated against synthesis")
        out = {
            "fpga_latency_ms": timing,
            "fpga_throughput_fps": replace(timing, derived_from="fpga_latency_ms"),
            "fpga_des_latency_ms": replace(timing, derived_from="fpga_latency_ms"),
            "fpga_des_throughput_fps": replace(timing, derived_from="fpga_latency_ms"),
        }
        for m in ("fpga_dsp", "fpga_bram", "fpga_lut", "fpga_feasible"):
            out[m] = resources
        return out
