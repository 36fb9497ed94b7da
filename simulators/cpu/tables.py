"""A CPU's measured operator tables (:mod:`dse.measured_tables`): each distinct operator keyed by
the numbers the CPU model reads (:func:`dse.simulators.cpu.model.cpu_row`: class, FLOPs,
activation and weight bytes, output elements, per sample), one TOML file per shipped device in
``tables/``, written by ``benchmarks/device_families.py --write-tables``.

A new CPU can be priced as a mix of its family's tables (:class:`CpuCalibration.tables`:
``t(op) = sum_s w_s t_s(op)``, ``w_s >= 0`` fitted to its ten measurements), the second prior
of ``dse calibrate``. An operator or batch size a table lacks is priced by that device's own
calibrated model (:class:`~dse.simulators.cpu.model.CpuCostModel`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dse.catalog import load_named_file, shipped_files
from dse.measured_tables import OperatorTable, TableFormat
from dse.simulators.cpu.calibration import CPU_CLASSES

#: what a CPU table's rows hold, in order (the first five are the operator's key)
COLUMNS = ("op_class", "flops", "activation_bytes", "weight_bytes", "output_elements", "seconds")
CPU_TABLE = TableFormat(COLUMNS, CPU_CLASSES)
parse_operator_table = CPU_TABLE.parse


def shipped_tables() -> list[str]:
    """Names of the shipped measured tables: each is its device's catalog name."""
    return shipped_files("dse.simulators.cpu", "tables")


def runtime_tables(device: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """The shipped tables of CPUs that run ``device``'s runtime (the same kernels, fused or
    not, dead code run or not), else, where none does, every shipped CPU table; never those
    named in ``exclude``. (On HELP's devices the same runtime's tables transfer across spaces
    better than all of them; a runtime without another shipped device still gains from all.)"""
    from dse.catalogs.devices import get_any_device

    tables = [t for t in shipped_tables() if t not in exclude]  # each named by its device
    same = [t for t in tables if get_any_device(t, None, "cpu").runtime == device.runtime]
    return same or tables


def load_operator_table(name_or_path: str | Path) -> OperatorTable:
    """A shipped table by device name, or a TOML file by path."""
    return load_named_file(
        "dse.simulators.cpu", "tables", name_or_path, parse_operator_table, "operator table", ()
    )
