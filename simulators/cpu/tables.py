"""Measured operator tables: a CPU's seconds per distinct operator, read off its measured networks.

nn-Meter prices a network as the sum of its kernels' measured latencies; HELP calibrates a new
device from ten measurements by what it learned on other devices. A table here is the first of
these for one shipped device: for each distinct operator of its measured networks (keyed by
the numbers the CPU model reads, :func:`dse.simulators.cpu.model.cpu_row`: class, FLOPs,
activation and weight bytes, output elements, per sample), the seconds that best explain the
measurements: non-negative least squares of ``counts @ t = measured`` in relative error (the
per-operator lookup table ``benchmarks/device_families.py`` scores as what the measurements
themselves allow).

A new CPU can then be priced as a mix of its family's tables (:class:`CpuCalibration.tables`:
``t(op) = sum_s w_s t_s(op)``, ``w_s >= 0`` fitted to its ten measurements), the second prior
of ``dse calibrate``: devices that share a runtime and its kernels share its cliffs (oneDNN's
choice of kernel by shape, a phone's whole-millisecond timer), which no roofline of FLOPs and
bytes has. An operator or batch size a table lacks is priced by that device's own calibrated
model (:class:`~dse.simulators.cpu.model.CpuCostModel`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from dse.catalog import load_named_file, shipped_files
from dse.simulators.cpu.calibration import CPU_CLASSES

#: what a table's rows hold, in order (the first five are the operator's key)
COLUMNS = ("op_class", "flops", "activation_bytes", "weight_bytes", "output_elements", "seconds")


@dataclass(frozen=True, eq=False)
class OperatorTable:
    """``seconds[i]``: the measured cost of one operator with key ``keys[i]`` (a row of
    :func:`~dse.simulators.cpu.model.cpu_row`: class index, FLOPs, activation bytes, weight
    bytes, output elements, per sample) at ``batch_size`` on ``device``."""

    device: str
    batch_size: int
    keys: np.ndarray
    seconds: np.ndarray
    source: str = ""

    def __post_init__(self):
        if self.keys.ndim != 2 or self.keys.shape[1] != 5 or len(self.seconds) != len(self.keys):
            raise ValueError(f"table {self.device!r}: need (n, 5) keys and n seconds")
        if not np.all(np.isfinite(self.seconds)) or np.any(self.seconds < 0):
            raise ValueError(f"table {self.device!r}: seconds must be finite and >= 0")

    def lookup(self, keys: np.ndarray, batch_size: int) -> np.ndarray:
        """Seconds of each row of ``keys``; NaN where the table has no such operator, and
        everywhere at another batch size."""
        out = np.full(len(keys), np.nan)
        if batch_size != self.batch_size:
            return out
        for j, k in enumerate(np.asarray(keys).tolist()):
            i = self._index.get(tuple(k))
            if i is not None:
                out[j] = self.seconds[i]
        return out

    @functools.cached_property
    def _index(self) -> dict[tuple, int]:
        """Row of each key (built once: a table is read at every population's pricing)."""
        return {tuple(k): i for i, k in enumerate(self.keys.tolist())}

    def to_toml(self) -> str:
        lines = [f'device = "{self.device}"', f"batch_size = {self.batch_size}"]
        if self.source:
            lines.append('source = """\n' + self.source.strip() + '\n"""')
        lines.append(f"columns = {list(COLUMNS)!r}".replace("'", '"'))
        lines.append("rows = [")
        for k, s in zip(self.keys.tolist(), self.seconds.tolist(), strict=True):
            name = CPU_CLASSES[int(k[0])] if k[0] >= 0 else "view"
            numbers = ", ".join(f"{int(v)}" for v in k[1:])
            lines.append(f'  ["{name}", {numbers}, {s!r}],')
        lines.append("]")
        return "\n".join(lines) + "\n"


def parse_operator_table(data: Mapping[str, Any], where: str) -> OperatorTable:
    """An :class:`OperatorTable` from its TOML form (:meth:`OperatorTable.to_toml`)."""
    if list(data.get("columns", [])) != list(COLUMNS):
        raise ValueError(f"{where}.columns: expected {list(COLUMNS)}")
    classes = {c: i for i, c in enumerate(CPU_CLASSES)} | {"view": -1}
    keys, seconds = [], []
    for n, row in enumerate(data.get("rows", [])):
        if len(row) != len(COLUMNS) or row[0] not in classes:
            raise ValueError(
                f"{where}.rows[{n}]: expected [class, 4 numbers, seconds]; classes: "
                f"{sorted(classes)}"
            )
        keys.append([classes[row[0]], *map(float, row[1:5])])
        seconds.append(float(row[5]))
    return OperatorTable(
        str(data.get("device", where)),
        int(data.get("batch_size", 1)),
        np.array(keys, dtype=float).reshape(-1, 5),
        np.array(seconds, dtype=float),
        str(data.get("source", "")),
    )


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


#: how strongly a table's operators are held to the device's own model (relative error, per
#: operator, against one network's): enough to split the cost of operators that always occur
#: together (a space's ReLU-conv-BN triplets) as the model does, not to move a fit the
#: measurements determine
PRIOR_WEIGHT = 0.1


def fit_operator_table(
    keys: np.ndarray,
    counts: np.ndarray,
    seconds: np.ndarray,
    model_seconds: np.ndarray,
    device: str,
    batch_size: int = 1,
    source: str = "",
) -> OperatorTable:
    """The table that best explains measured ``seconds`` of networks whose operator counts are
    ``counts`` (networks x rows of ``keys``): non-negative least squares in relative error,
    ``min sum_n (counts[n] @ t / seconds[n] - 1)^2 + PRIOR_WEIGHT^2 sum_i (t_i / m_i - 1)^2``,
    ``t >= 0``, where ``m`` is the device's own model's seconds per row (``model_seconds``):
    without it, operators that always occur together take their cost in arbitrary shares
    (often all of it on one, zero on the rest), and a network that has one without the others
    would be priced wrong. Rows with the same key are one operator; views (which the model runs
    for free) and operators no network runs are left out."""
    keys = np.asarray(keys, dtype=float)
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    merged = np.zeros((len(counts), len(unique)))
    np.add.at(merged.T, inverse.ravel(), np.asarray(counts, dtype=float).T)
    model = np.asarray(model_seconds, dtype=float)[first]
    used = (merged.sum(0) > 0) & (unique[:, 0] >= 0) & (model > 0)
    y = np.asarray(seconds, dtype=float)
    a = np.vstack([merged[:, used] / y[:, None], np.diag(PRIOR_WEIGHT / model[used])])
    b = np.concatenate([np.ones(len(y)), np.full(int(used.sum()), PRIOR_WEIGHT)])
    t, _ = nnls(a, b, maxiter=20 * int(used.sum()))
    return OperatorTable(device, batch_size, unique[used], t, source)
