"""The CPU cost model as a metric provider: any graph of any space -> latency and throughput on
a server, laptop, phone or single-board CPU.

Config::

    [simulators.cpu]
    device = "Xeon-Gold-6240"   # a family = "cpu" entry of the catalog or devices_file
    batch_size = 1
    threads = 0                 # 0: every core the device lists
    calibration = "auto"        # auto (shipped one for the device, else the data sheet), none,
                                # a shipped name or a TOML path (dse calibrate --device ...)

Metrics: ``cpu_latency_ms`` (one batch), ``cpu_throughput`` (samples/s) and ``cpu_memory_gb``
(weights plus the largest operator's activations, GB = 1e9 bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import networkx as nx
import numpy as np

from dse.catalog import check_fitted_to
from dse.catalogs.cpus import CpuDevice
from dse.catalogs.devices import get_any_device
from dse.fidelity import Fidelity, shipped_fidelity
from dse.provider import PopulationProvider
from dse.registry import SIMULATORS
from dse.simulators.cpu.calibration import (
    load_cpu_calibration,
    resolve_cpu_calibration,
    shipped_cpu_calibrations,
)
from dse.simulators.cpu.model import CpuCostModel
from dse.simulators.cpu.tables import load_operator_table, shipped_tables


@SIMULATORS.register("cpu")
class CpuSimulator(PopulationProvider):
    """CPU latency on a catalog device: per-operator roofline at SIMD peak with per-class
    efficiency, caches, threads, the runtime's fusion and per-operator overhead."""

    name = "cpu"
    metrics = ("cpu_latency_ms", "cpu_throughput", "cpu_memory_gb")
    units = {"cpu_latency_ms": "ms", "cpu_throughput": "samples/s", "cpu_memory_gb": "GB"}
    cost = 1e-4

    def __init__(
        self,
        device: str = "Xeon-Gold-6240",
        batch_size: int = 1,
        threads: int = 0,
        calibration: str = "auto",
        devices_file: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if threads < 0:
            raise ValueError(f"threads: must be >= 0 (0: every core), got {threads}")
        dev = get_any_device(device, devices_file, "cpu")
        assert isinstance(dev, CpuDevice)
        self.batch_size = batch_size
        cal = resolve_cpu_calibration(calibration, dev)
        check_fitted_to(cal.name, cal.device, dev.name)
        self.model = CpuCostModel(dev, cal, threads or None)

    @staticmethod
    def calibrations() -> dict[str, Fidelity]:
        """Every shipped CPU calibration with its validated latency error."""
        return shipped_fidelity(shipped_cpu_calibrations(), load_cpu_calibration)

    @staticmethod
    def measured_tables() -> dict[str, str]:
        """Every shipped CPU operator table (``dse calibrate --tables``)."""
        return {t: load_operator_table(t).describe() for t in shipped_tables()}

    def fidelity(self) -> dict[str, Fidelity]:
        """Latency's expected error: the calibration's validation at this batch size; memory is
        an analytic count."""
        cal = self.model.calibration
        if cal.validation is None:
            timing = Fidelity(
                note=f"uncalibrated: data sheet only ({self.model.device.name}; dse calibrate "
                "fits one from 10 measured networks)"
            )
        else:
            timing = Fidelity.of_calibration(cal.name, cal.validation, f"batch {self.batch_size}")
        analytic = Fidelity(note="analytic count, not validated against measurement")
        return {
            "cpu_latency_ms": timing,
            "cpu_throughput": replace(timing, derived_from="cpu_latency_ms"),
            "cpu_memory_gb": analytic,
        }

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        """The metrics of every graph, as arrays (one vectorised pass)."""
        seconds, memory = self.model.evaluate(graphs, self.batch_size)
        return {
            "cpu_latency_ms": seconds * 1e3,
            "cpu_throughput": self.batch_size / seconds,
            "cpu_memory_gb": memory / 1e9,
        }
