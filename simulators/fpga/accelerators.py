"""The two accelerator templates as strategy objects (dissertation 2.4.1): what differs between a
recursive accelerator (one IP per layer type, reused layer after layer, eq. 2.10-2.12) and a
pipelined one (one stage per layer, frames streaming through, eq. 2.13) is written here once,
and :class:`~dse.simulators.fpga.plugin.FpgaSimulator` picks one at construction from
:data:`ACCELERATORS` instead of switching on the architecture's name in every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dse.simulators.fpga import des, pipelined, recursive
from dse.simulators.fpga.model import LayerTable

#: bytes in one 18 Kb BRAM block
BRAM_BYTES = 18 * 1024 // 8


@dataclass(frozen=True)
class Settings:
    """The simulator's settings a template reads (one value each, set in the config)."""

    double_buffering: bool
    tiles: int
    integer_lanes: bool
    fifo_depth: int
    des_frames: int


class Accelerator(Protocol):
    """One accelerator template: DSP allocation over a population, BRAM, throughput and its
    discrete-event run."""

    name: str

    def allocate(self, layers: LayerTable, settings: Settings, **kw: Any) -> Any: ...

    def bram(self, layers: LayerTable, settings: Settings, onchip_budget: float) -> np.ndarray: ...

    def throughput(self, population: Any, latency_s: np.ndarray, scale: float) -> np.ndarray: ...

    def simulate(self, design: Any, settings: Settings, frames: int | None) -> Any: ...

    def des_point(self, trace: Any) -> tuple[float, float]: ...


class RecursiveAccelerator:
    """One IP per layer type, reused by every layer of that type (latency = throughput^-1)."""

    name = "recursive"

    def allocate(self, layers: LayerTable, settings: Settings, **kw: Any) -> Any:
        return recursive.allocate_population(layers, tiles=settings.tiles, **kw)

    def bram(self, layers: LayerTable, settings: Settings, onchip_budget: float) -> np.ndarray:
        """18 Kb blocks: double-buffered feature maps of the largest layer plus its weights,
        tiled through at most the on-chip budget (what does not fit streams from DDR)."""
        buffers = (2 if settings.double_buffering else 1) * layers.per_graph_max(layers.io_bytes)
        need = np.minimum(buffers + layers.per_graph_max(layers.weight_bytes), onchip_budget)
        return np.ceil(need / BRAM_BYTES)

    def throughput(self, population: Any, latency_s: np.ndarray, scale: float) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(latency_s > 0, 1.0 / latency_s, np.inf)

    def simulate(self, design: Any, settings: Settings, frames: int | None) -> Any:
        return des.run_recursive(
            design.ips,
            design.index,
            design.compute_s,
            design.mem_s,
            double_buffering=settings.double_buffering,
            tiles=settings.tiles,
            overhead_s=design.overhead_s,
        )

    def des_point(self, trace: Any) -> tuple[float, float]:
        return trace.latency_s, 1.0 / trace.latency_s


class PipelinedAccelerator:
    """One stage per layer, frames streaming through (throughput = 1 / the slowest stage)."""

    name = "pipelined"

    def allocate(self, layers: LayerTable, settings: Settings, **kw: Any) -> Any:
        return pipelined.allocate_population(layers, integer_lanes=settings.integer_lanes, **kw)

    def bram(self, layers: LayerTable, settings: Settings, onchip_budget: float) -> np.ndarray:
        """18 Kb blocks: each stage's line buffer of its input, plus its weights when the
        network's weights live on chip."""
        weights_on_chip = layers.per_graph(layers.weight_bytes) <= onchip_budget
        per_stage = layers.line_buffer_bytes + layers.weight_bytes * weights_on_chip[layers.owner]
        return layers.per_graph(np.ceil(per_stage / BRAM_BYTES))

    def throughput(self, population: Any, latency_s: np.ndarray, scale: float) -> np.ndarray:
        return 1.0 / (population.period_s * scale)

    def simulate(self, design: Any, settings: Settings, frames: int | None) -> Any:
        return des.run_pipelined(
            design.busy_s,
            design.mem_s,
            frames=frames or settings.des_frames or 64,
            fifo_depth=settings.fifo_depth,
        )

    def des_point(self, trace: Any) -> tuple[float, float]:
        return float(np.median(trace.latency_s)), trace.throughput_fps


#: architecture name (``[simulators.fpga] architecture``) -> its template
ACCELERATORS: dict[str, Accelerator] = {
    a.name: a for a in (RecursiveAccelerator(), PipelinedAccelerator())
}
