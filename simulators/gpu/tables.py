"""A GPU's measured kernel tables (:mod:`dse.measured_tables`) and the mix that prices with them.

A table holds, for each distinct kernel row the GPU coster reads
(:func:`dse.simulators.gpu.kernels.kernel_row`: class, kernel launches, FLOPs, activation and
weight elements, activation and weight bits, per sample), the seconds that best explain one
device's measured networks at each batch size it was measured at (a ``[[batch]]`` section
each); one TOML file per shipped device in ``tables/``, written by
``benchmarks/device_families.py --write-tables`` from HELP's measurements (eager PyTorch, batch
1, 32 and 256 on NAS-Bench-201, 1, 32 and 64 on FBNet).

A calibration with ``[tables]`` (:class:`~dse.simulators.gpu.roofline.Calibration`) prices a
kernel row as ``roofline_weight x roofline(row) + sum_s w_s t_s(row)``: what a new GPU shares
with measured ones (cuDNN's choice of algorithm by shape, its depthwise and grouped kernels
far below the roofline) comes from their measurements; a row or batch size a table lacks is
priced by that device's own calibrated model, so a mix prices any graph. A source may read
its table at another batch size than the one priced (:class:`~dse.measured_tables.MixSource`,
``"Titan-X-Pascal@0.5x"``): a GPU with more streaming multiprocessors at batch 64 runs FBNet's
kernels much as a narrower one does at 32. Tables are of CNN kernels: the LLM and serving
paths cost with the roofline alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dse.catalog import load_named_file, shipped_files
from dse.catalogs.devices import BYTES, get_device
from dse.measured_tables import MixSource, OperatorTable, TableFormat
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.roofline import OP_CLASSES, resolve_calibration

COLUMNS = (
    "op_class",
    "kernels",
    "flops",
    "activation_elements",
    "weight_elements",
    "activation_bits",
    "weight_bits",
    "seconds",
)
GPU_TABLE = TableFormat(COLUMNS, OP_CLASSES)


def shipped_gpu_tables() -> list[str]:
    """Names of the shipped GPU tables: each is its device's catalog name."""
    return shipped_files("dse.simulators.gpu", "tables")


def load_gpu_table(name_or_path: str | Path) -> OperatorTable:
    """A shipped GPU table by device name, or a TOML file by path."""
    return load_named_file(
        "dse.simulators.gpu", "tables", name_or_path, GPU_TABLE.parse, "GPU kernel table", ()
    )


def lookup_keys(keys: np.ndarray, precision: str) -> np.ndarray:
    """Kernel rows (:func:`~dse.simulators.gpu.kernels.kernel_row`) as a table of networks run
    at ``precision`` keys them: under ``"auto"`` by the graph's own bit-widths, otherwise every
    row at that precision's width (an fp16 run is not an fp32 table's measurement)."""
    if precision == "auto":
        return keys
    out = np.array(keys, dtype=float)
    out[:, 5:7] = 8 * BYTES[precision]
    return out


class TableSources:
    """Measured GPU tables by name, each with its device's own calibrated model (loaded once)."""

    def __init__(self):
        self._loaded: dict[str, tuple[OperatorTable, GpuCostModel]] = {}

    def load(self, name: str) -> tuple[OperatorTable, GpuCostModel]:
        """Table ``name`` and its device's model (its shipped calibration, else data sheet)."""
        if name not in self._loaded:
            table = load_gpu_table(name)
            device = get_device(table.device)
            own = GpuCostModel(device, resolve_calibration("auto", device))
            self._loaded[name] = (table, own)
        return self._loaded[name]

    def seconds(self, source: MixSource, keys, batch_size: int, kernels_at) -> np.ndarray:
        """Seconds of each kernel row priced at ``batch_size`` on ``source``'s device: its
        table's at ``source.ratio x batch_size`` where it has the row there, else its own model
        (:meth:`MixSource.seconds`). ``keys``: the rows' lookup keys (:func:`lookup_keys`);
        ``kernels_at(batch)``: (class, precision index, FLOPs, bytes, launches) of each row at
        that batch size, what :meth:`GpuCostModel.seconds` reads."""
        table, own = self.load(source.table)
        return source.seconds(table, keys, batch_size, lambda b: own.seconds(*kernels_at(b)))
