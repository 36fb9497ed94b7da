"""The GPU roofline simulator as a metric provider: any graph of any space -> latency, throughput,
memory.

Config::

    [simulators.gpu]
    device = "A100-80GB-PCIe"     # from the catalog (devices.toml) or devices_file
    batch_size = 1
    precision = "auto" # auto (from the graph's bit-widths), fp32, tf32, fp16, bf16, fp8, int8, int4
    calibration = "auto" # auto (shipped one for the device, if any), none, a name, or a TOML path
    launch_overhead_us = 20       # optional: overrides the calibration's per-kernel overhead

Metrics: ``gpu_latency_ms`` (one batch), ``gpu_throughput`` (samples/s), ``gpu_memory_gb``
(weights plus the largest single operator's activations for the batch, GB = 1e9 bytes),
``gpu_kernels`` (launches per batch) and ``gpu_feasible`` (1 when the memory fits in
``memory_fraction`` of the device; use it as a constraint with ``min = 1``).

:meth:`GpuSimulator.evaluate_population` costs many graphs in one numpy pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import networkx as nx
import numpy as np

from dse.fidelity import Fidelity, shipped_fidelity
from dse.graph.sequence_ops import at_length
from dse.provider import PopulationProvider
from dse.registry import SIMULATORS
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import (
    BARE,
    Calibration,
    load_calibration,
    shipped_calibrations,
)
from dse.simulators.gpu.tables import load_gpu_table, shipped_gpu_tables

Precision = Literal["auto", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4"]


@SIMULATORS.register("gpu")
class GpuSimulator(PopulationProvider):
    """GPU roofline latency, throughput and memory on a catalog device (calibrated per device)."""

    name = "gpu"
    metrics = ("gpu_latency_ms", "gpu_throughput", "gpu_memory_gb", "gpu_kernels", "gpu_feasible")
    units = {
        "gpu_latency_ms": "ms",
        "gpu_throughput": "samples/s",
        "gpu_memory_gb": "GB",
        "gpu_kernels": "kernels",
        "gpu_feasible": "0/1",
    }
    cost = 1e-4

    def __init__(
        self,
        device: str = "A100-80GB-PCIe",
        batch_size: int = 1,
        precision: Precision = "auto",
        calibration: str = "auto",
        devices_file: str | None = None,
        launch_overhead_us: float | None = None,
        memory_fraction: float = 0.9,
        sequence_length: int | None = None,
    ):
        if not 0 < memory_fraction <= 1:
            raise ValueError(f"memory_fraction: must be in (0, 1], got {memory_fraction}")
        if sequence_length is not None and sequence_length < 1:
            raise ValueError(f"sequence_length: must be >= 1, got {sequence_length}")
        #: cost sequence networks at this many tokens instead of their own length (a space
        #: trained at a short length, deployed on long sequences); None: as built
        self.sequence_length = sequence_length
        self.model = GpuCostModel.create(device, calibration, devices_file, launch_overhead_us)
        self.coster = GraphCoster(self.model, batch_size, precision)
        self.memory_fraction = memory_fraction
        self.overridden = launch_overhead_us is not None

    def coster_at(self, batch_size: int, precision: str) -> GraphCoster:
        """A kernel coster of this device and calibration at another batch and precision."""
        return GraphCoster(self.model, batch_size, precision)

    @staticmethod
    def calibrations() -> dict[str, Fidelity]:
        """Every shipped calibration with its validated latency error (what ``dse list``
        prints)."""
        return shipped_fidelity(shipped_calibrations(), load_calibration)

    @staticmethod
    def measured_tables() -> dict[str, str]:
        """Every shipped GPU kernel table (``dse calibrate --tables``)."""
        return {t: load_gpu_table(t).describe() for t in shipped_gpu_tables()}

    def fidelity(self) -> dict[str, Fidelity]:
        """The expected error of each metric: the calibration's validation at this batch size
        for latency and throughput; memory, kernels and feasibility are analytic counts."""
        cal, dev = self.model.calibration, self.model.device.name
        if cal is BARE:
            timing = Fidelity(note='uncalibrated: the bare roofline (calibration = "none")')
        elif cal == Calibration():
            timing = Fidelity(
                note=f"uncalibrated: data sheet only ({dev} has no shipped calibration; "
                "dse calibrate fits one from 10 measured networks)"
            )
        elif self.overridden:
            timing = Fidelity(
                cal.name, note="not validated: launch_overhead_us overrides the calibration"
            )
        else:
            condition = f"batch {self.coster.batch_size}"
            timing = Fidelity.of_calibration(cal.name, cal.validation, condition)
        analytic = Fidelity(note="analytic count, not validated against measurement")
        return {
            "gpu_latency_ms": timing,
            "gpu_throughput": replace(timing, derived_from="gpu_latency_ms"),
            "gpu_memory_gb": analytic,
            "gpu_kernels": analytic,
            "gpu_feasible": replace(analytic, derived_from="gpu_memory_gb"),
        }

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        """The metrics of every graph, as arrays (one vectorised pass)."""
        if self.sequence_length is not None:
            graphs = [at_length(g, self.sequence_length) for g in graphs]
        c = self.coster.cost(graphs)
        memory = c.weight_bytes + c.peak_op_bytes
        return {
            "gpu_latency_ms": c.seconds * 1e3,
            "gpu_throughput": self.coster.batch_size / c.seconds,
            "gpu_memory_gb": memory / 1e9,
            "gpu_kernels": c.kernels,
            "gpu_feasible": (
                memory <= self.memory_fraction * self.model.device.memory_bytes
            ).astype(float),
        }
