"""The ASIC model as a metric provider: latency, energy and PE utilisation of any graph on a
spatial dataflow accelerator (Eyeriss-like), a whole population per numpy pass.

Config::

    [simulators.asic]
    device = "Eyeriss-v1"       # a family = "asic" entry of the catalog or devices_file
    batch_size = 1
    calibration = "auto"        # auto (shipped one for the device, if any), none, a name or a
                                # TOML path (dse calibrate --device ...)

Metrics: ``asic_latency_ms`` (one batch), ``asic_energy_mj`` (one batch, millijoules; searchable
like latency), ``asic_utilization`` (MAC-weighted fraction of PEs busy) and ``asic_dram_mb``
(off-chip traffic, MB = 1e6 bytes). The mapper is :mod:`dse.simulators.asic.mapper`.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from dse.catalog import check_fitted_to
from dse.catalogs.asics import AsicDevice
from dse.catalogs.devices import get_any_device
from dse.fidelity import Fidelity, shipped_fidelity
from dse.graph.optable import OpTable, population_ops
from dse.provider import PopulationProvider
from dse.registry import SIMULATORS
from dse.simulators.asic.calibration import (
    load_asic_calibration,
    resolve_asic_calibration,
    shipped_asic_calibrations,
)
from dse.simulators.asic.mapper import FIELDS, layer_row


@SIMULATORS.register("asic")
class AsicSimulator(PopulationProvider):
    """Latency and energy on a dataflow accelerator from an analytic loop-nest mapping."""

    name = "asic"
    metrics = ("asic_latency_ms", "asic_energy_mj", "asic_utilization", "asic_dram_mb")
    units = {
        "asic_latency_ms": "ms",
        "asic_energy_mj": "mJ",
        "asic_utilization": "fraction",
        "asic_dram_mb": "MB",
    }
    cost = 1e-4

    def __init__(
        self,
        device: str = "Eyeriss-v1",
        batch_size: int = 1,
        calibration: str = "auto",
        devices_file: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        dev = get_any_device(device, devices_file, "asic")
        assert isinstance(dev, AsicDevice)
        self.device, self.batch_size = dev, batch_size
        self.calibration = resolve_asic_calibration(calibration, dev.name)
        if self.calibration is not None:
            check_fitted_to(self.calibration.name, self.calibration.device, dev.name)
        self.table = OpTable(lambda op: layer_row(op, dev, batch_size), len(FIELDS))

    @staticmethod
    def calibrations() -> dict[str, Fidelity]:
        return shipped_fidelity(shipped_asic_calibrations(), load_asic_calibration)

    def fidelity(self) -> dict[str, Fidelity]:
        """Latency: the calibration's validation; energy, utilisation and traffic: analytic
        (no energy measurements are shipped; checked against Eyeriss v1's published figures)."""
        cal = self.calibration
        if cal is None or cal.validation is None:
            timing = Fidelity(
                note=f"uncalibrated: analytic mapping of {self.device.name} (dse calibrate fits "
                "one from 10 measured networks)"
            )
        else:
            timing = Fidelity.of_calibration(cal.name, cal.validation, f"batch {self.batch_size}")
        analytic = Fidelity(note="analytic count, not validated against measurement")
        return {
            "asic_latency_ms": timing,
            "asic_energy_mj": analytic,
            "asic_utilization": analytic,
            "asic_dram_mb": analytic,
        }

    def totals(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        """Per graph, the sum of each of :data:`FIELDS` and the total cycles (uncalibrated)."""
        ops, lengths = population_ops(graphs)
        rows = self.table.rows(ops)
        m = self.table.matrix()
        d = self.device
        dram_cycles = m[:, 4] * d.word_bytes / d.dram_bandwidth * d.frequency_hz
        cycles = m[:, 3] + dram_cycles
        owner = np.repeat(np.arange(len(graphs)), lengths)
        out = {
            f: np.bincount(owner, weights=m[rows, i], minlength=len(graphs))
            for i, f in enumerate(FIELDS)
        }
        out["cycles"] = np.bincount(owner, weights=cycles[rows], minlength=len(graphs))
        out["busy_pe_cycles"] = np.bincount(owner, weights=(m[:, 1])[rows], minlength=len(graphs))
        out["mac_cycles"] = np.bincount(
            owner, weights=np.where(m[:, 1] > 0, m[:, 3], 0.0)[rows], minlength=len(graphs)
        )
        return out

    def evaluate_population(self, graphs: Sequence[nx.DiGraph]) -> dict[str, np.ndarray]:
        t, d = self.totals(graphs), self.device
        seconds = t["cycles"] / d.frequency_hz
        if self.calibration is not None:
            per_layer = self.calibration.layer_overhead_cycles / d.frequency_hz
            seconds = self.calibration.scale * (seconds + t["layers"] * per_layer)
        accesses = (
            t["rf_words"] * d.energy_rf
            + t["noc_words"] * d.energy_noc
            + t["glb_words"] * d.energy_glb
            + t["dram_words"] * d.energy_dram
        )
        energy = d.energy_mac_j * (t["macs"] + accesses)
        util = np.divide(
            t["busy_pe_cycles"],
            t["mac_cycles"] * d.pes,
            out=np.zeros(len(graphs)),
            where=t["mac_cycles"] > 0,
        )
        return {
            "asic_latency_ms": seconds * 1e3,
            "asic_energy_mj": energy * 1e3,
            "asic_utilization": util,
            "asic_dram_mb": t["dram_words"] * d.word_bytes / 1e6,
        }
