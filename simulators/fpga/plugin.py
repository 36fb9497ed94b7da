"""The FPGA simulator as a metric provider: any graph of any space -> latency, throughput, DSPs, BRAM.

Config::

    [simulators.fpga]
    board = "ZCU102"             # from the catalog (boards.toml) or boards_file
    architecture = "recursive"   # or "pipelined"
    dsp_budget = 2520            # default: the board's DSPs
    double_buffering = true      # DDR transfers overlap compute
    phi = {"8" = 0.5, "16" = 1}  # optional Phi(q) table, cycles per work unit per lane
    psi = {"4" = 0, "8" = 0.5, "16" = 1}   # optional Psi(q) table, DSPs per lane

With ``des_frames = N`` (N >= 2; for a pipelined design N well above twice its layer count, so
the pipeline reaches steady state) the optimised design also runs in the discrete-event
simulator (des.py) and adds ``fpga_des_throughput_fps`` and ``fpga_des_latency_ms`` (median frame).

Metrics: ``fpga_latency_ms`` (one frame), ``fpga_throughput_fps``, ``fpga_dsp``, ``fpga_bram``
(18 Kb blocks), ``fpga_lut`` (LUT multipliers only) and ``fpga_feasible`` (1 when the design
fits the board's DSPs, BRAM and LUTs; use it as a constraint with ``min = 1``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping

import networkx as nx
import numpy as np

from dse.registry import SIMULATORS
from dse.simulators.fpga import des, pipelined, recursive
from dse.simulators.fpga.boards import load_boards
from dse.simulators.fpga.model import (
    PHI_DEFAULT, PSI_DEFAULT, LayerRows, layer_table, offchip_bytes, parse_table,
)
from dse.space import SearchSpace

BRAM_BYTES = 18 * 1024 // 8


@SIMULATORS.register("fpga")
class FpgaSimulator:
    """EDD FPGA accelerators (recursive or pipelined) with DSP allocation, on a catalog board."""

    name = "fpga"
    metrics = ("fpga_latency_ms", "fpga_throughput_fps", "fpga_dsp", "fpga_bram", "fpga_lut", "fpga_feasible")
    cost = 1e-3

    def __init__(self, board: str = "ZCU102", architecture: Literal["recursive", "pipelined"] = "recursive",
                 dsp_budget: int | None = None, double_buffering: bool = True,
                 onchip_fraction: float = 0.7, lut_fraction: float = 0.5,
                 phi: dict | None = None, psi: dict | None = None, boards_file: str | None = None,
                 tiles: int = 16, des_frames: int = 0, fifo_depth: int = 1):
        boards = load_boards(boards_file)
        if board not in boards:
            raise ValueError(f"board: {board!r} is not allowed; allowed values: {sorted(boards)}")
        if architecture not in ("recursive", "pipelined"):
            raise ValueError(f"architecture: {architecture!r} is not allowed; allowed values: ['pipelined', 'recursive']")
        if dsp_budget is not None and dsp_budget < 1:
            raise ValueError(f"dsp_budget: must be >= 1, got {dsp_budget}")
        for field, value in (("onchip_fraction", onchip_fraction), ("lut_fraction", lut_fraction)):
            if not 0 < value <= 1:
                raise ValueError(f"{field}: must be in (0, 1], got {value}")
        if tiles < 1:
            raise ValueError(f"tiles: must be >= 1, got {tiles}")
        if des_frames < 0 or des_frames == 1:
            raise ValueError(f"des_frames: must be 0 (off) or >= 2, got {des_frames}")
        if fifo_depth < 1:
            raise ValueError(f"fifo_depth: must be >= 1, got {fifo_depth}")
        self.tiles, self.des_frames, self.fifo_depth = tiles, des_frames, fifo_depth
        if des_frames:
            self.metrics = self.metrics + ("fpga_des_throughput_fps", "fpga_des_latency_ms")
        self.board = boards[board]
        self.architecture = architecture
        self.dsp_budget = float(dsp_budget if dsp_budget is not None else self.board.dsp)
        self.double_buffering = double_buffering
        self.onchip_budget = self.board.onchip_bytes * onchip_fraction
        self.lut_budget = self.board.lut * lut_fraction
        self.phi = parse_table(phi, PHI_DEFAULT, "phi")
        self.psi = parse_table(psi, PSI_DEFAULT, "psi")
        self._rows = LayerRows()

    def design(self, graph: nx.DiGraph):
        """The optimised accelerator for ``graph`` (a RecursiveDesign or PipelinedDesign)."""
        layers = layer_table(graph, self._rows)
        mem_s = offchip_bytes(layers, self.onchip_budget) / self.board.ddr_bytes_per_s
        kw = dict(clock_hz=self.board.clock_hz, dsp_budget=self.dsp_budget, lut_budget=self.lut_budget,
                  phi=self.phi, psi=self.psi, mem_s=mem_s, overlap=self.double_buffering)
        if self.architecture == "recursive":
            return layers, recursive.allocate(layers, tiles=self.tiles, **kw)
        return layers, pipelined.allocate(layers, **kw)

    def simulate(self, graph: nx.DiGraph, frames: int | None = None):
        """Discrete-event run of the optimised design: a RecursiveTrace (one inference) or a
        PipelineTrace (``frames`` frames streamed through the stages)."""
        return self._simulate(self.design(graph)[1], frames)

    def _simulate(self, design, frames: int | None = None):
        if self.architecture == "recursive":
            return des.run_recursive(design.ips, design.index, design.compute_s, design.mem_s,
                                     double_buffering=self.double_buffering, tiles=self.tiles)
        return des.run_pipelined(design.compute_s, design.mem_s, frames=frames or self.des_frames or 64,
                                 fifo_depth=self.fifo_depth)

    def _bram(self, layers) -> int:
        weights_on_chip = layers.weight_bytes.sum() <= self.onchip_budget
        if self.architecture == "recursive":
            # double-buffered feature maps of the largest layer plus its weights, tiled through
            # at most the on-chip budget (what does not fit streams from DDR, see model.py)
            buffers = (2 if self.double_buffering else 1) * layers.io_bytes.max(initial=0)
            need = min(buffers + layers.weight_bytes.max(initial=0), self.onchip_budget)
            return int(math.ceil(need / BRAM_BYTES))
        # each stage: line buffer of its input, plus its weights when they live on chip
        per_stage = layers.line_buffer_bytes + (layers.weight_bytes if weights_on_chip else 0.0)
        return int(np.ceil(per_stage / BRAM_BYTES).sum())

    def evaluate(self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace) -> dict[str, float]:
        layers, design = self.design(graph)
        bram = self._bram(layers)
        if self.architecture == "recursive":
            latency = design.latency_s
            throughput = 1.0 / latency if latency > 0 else math.inf
        else:
            latency, throughput = design.latency_s, design.throughput_fps
        fits = (design.feasible and design.dsp <= self.board.dsp and bram <= self.board.bram_18k
                and design.lut <= self.board.lut)
        out = {
            "fpga_latency_ms": latency * 1e3,
            "fpga_throughput_fps": throughput,
            "fpga_dsp": design.dsp,
            "fpga_bram": float(bram),
            "fpga_lut": design.lut,
            "fpga_feasible": 1.0 if fits else 0.0,
        }
        if self.des_frames:
            trace = self._simulate(design)  # the design optimised above, not a second one
            if self.architecture == "recursive":
                out["fpga_des_latency_ms"] = trace.latency_s * 1e3
                out["fpga_des_throughput_fps"] = 1.0 / trace.latency_s
            else:
                out["fpga_des_latency_ms"] = float(np.median(trace.latency_s)) * 1e3
                out["fpga_des_throughput_fps"] = trace.throughput_fps
        return out
