"""Per-layer FPGA cost model of EDD (dissertation section 2.4.1, eqs. 2.13-2.15), vectorised.

For a layer ``l`` on an IP with parallel factor ``pf`` at ``q`` bits:

* latency (eq. 2.13/2.14): ``Phi(q) * 2**-pf * work_l`` clock cycles, where ``work_l`` is
  ``k^2 h w c_in c_out`` for a convolution, ``k^2 h w c_in`` for a depthwise convolution and
  ``h w c_in`` for every other layer (batch norm, activation, pooling, addition);
* DSPs (eq. 2.15): ``Psi(q) * 2**pf`` with the piecewise ``Psi`` of section 2.4.1.2.

The dissertation sets ``Phi(q) = q`` as a relative calibration; here ``Phi`` is in cycles per unit
of work per parallel lane, normalised so a 16-bit layer takes one cycle (``Phi(q) = q / 16``), which
keeps the proportionality and lets the board clock turn cycles into seconds. Both are tables
``bits -> value`` (a layer uses the entry of the smallest listed width >= its bits) and can be
replaced. A memory term adds the off-chip traffic of data that does not fit on chip at the
board's DDR bandwidth: weights when the network's weights exceed the on-chip budget, and feature
maps of layers whose input plus output exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Mapping

import networkx as nx
import numpy as np

from dse.graph import numel

#: Cycles per unit of work per parallel lane, by bit-width (eq. 2.13 with Phi(q) = q / 16).
PHI_DEFAULT: dict[int, float] = {q: q / 16 for q in (1, 2, 4, 8, 16, 32)}
#: DSP slices per parallel lane (eq. 2.15, section 2.4.1.2): <= 4 bits in LUTs, 5-8 bits two per
#: DSP48, 9-16 bits one per DSP48. 17-32 bits (outside the dissertation's range): four DSP48s.
PSI_DEFAULT: dict[int, float] = {4: 0.0, 8: 0.5, 16: 1.0, 32: 4.0}
#: LUTs per parallel lane for layers whose Psi is 0 (multipliers built from LUTs); assumption.
LUT_PER_LANE = 25.0

#: IP classes (one IP type per class and kernel size in the recursive architecture).
_CONV_KINDS = {"conv2d": "conv", "linear": "fc", "matmul": "matmul"}
_SKIP_KINDS = {"input", "reshape", "identity", "zero", "concat"}


def lookup(table: Mapping[int, float], bits: np.ndarray) -> np.ndarray:
    """Value of ``table`` for each width: the entry of the smallest listed width >= bits."""
    keys = np.array(sorted(table), dtype=float)
    values = np.array([table[k] for k in sorted(table)], dtype=float)
    idx = np.searchsorted(keys, np.asarray(bits, dtype=float), side="left")
    if np.any(idx >= len(keys)):
        widest = int(np.max(bits))
        raise ValueError(f"bit-width {widest} is wider than the widest entry {int(keys[-1])} of the table")
    return values[idx]


def parse_table(table: Mapping[str, float] | None, default: dict[int, float], name: str) -> dict[int, float]:
    """A ``bits -> value`` table from config (TOML keys are strings) or the default."""
    if table is None:
        return dict(default)
    out = {}
    for key, value in table.items():
        try:
            bits = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: keys must be bit-widths, got {key!r}") from None
        if bits < 1 or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name}.{key}: expected a non-negative number for a width >= 1, got {value!r}")
        out[bits] = float(value)
    if not out:
        raise ValueError(f"{name}: the table is empty")
    return out


@dataclass(frozen=True)
class LayerTable:
    """The compute layers of a graph as parallel arrays (one entry per layer)."""

    ip: list[str]  # IP type, e.g. "conv3x3", "dwconv5x5", "fc", "eltwise"
    work: np.ndarray  # eq. 2.14 work units
    bits: np.ndarray  # precision the layer computes at (weight bits for conv/fc, activation bits otherwise)
    weight_bytes: np.ndarray
    io_bytes: np.ndarray  # input + output feature-map bytes
    line_buffer_bytes: np.ndarray  # k rows of the input, what a streaming stage keeps on chip

    def __len__(self) -> int:
        return len(self.ip)


def _layer_row(op) -> tuple | None:
    """(ip, work, bits, weight bytes, io bytes, line-buffer bytes) of one op, None if it does no work."""
    if op.kind in _SKIP_KINDS:
        return None
    cin_shape = op.in_shapes[0]
    if op.kind in _CONV_KINDS:
        ip = _CONV_KINDS[op.kind] + (f"{op.kernel}x{op.kernel}" if op.kind == "conv2d" else "")
        work, bits = op.macs, op.weight_bits  # k^2 h w c_in c_out (grouped: / groups), eq. 2.14
    elif op.kind == "dwconv2d":
        ip, work, bits = f"dwconv{op.kernel}x{op.kernel}", op.macs, op.weight_bits  # k^2 h w c_in
    else:
        ip = "pool" if op.kind == "pool" else "eltwise"
        work, bits = numel(cin_shape), op.act_bits  # h w c_in
    io = op.bytes_read - op.weight_bytes + op.bytes_written
    if len(cin_shape) == 3:
        line = op.kernel * cin_shape[0] * cin_shape[2] * op.act_bits // 8
    else:
        line = numel(cin_shape) * op.act_bits // 8
    return ip, work, bits, op.weight_bytes, io, line


class LayerRows:
    """Per-op rows for :func:`layer_table`, cached by op object: graph builders share one
    :class:`OpNode` among identical layers, so most lookups hit. Keeps each op alive beside its
    row, so a recycled ``id`` can never return a stale row; cleared when it grows past a bound."""

    def __init__(self, max_entries: int = 65536):
        self.max_entries = max_entries
        self._rows: dict[int, tuple] = {}

    def row(self, op) -> tuple | None:
        hit = self._rows.get(id(op))
        if hit is not None and hit[0] is op:
            return hit[1]
        if len(self._rows) >= self.max_entries:
            self._rows.clear()
        row = _layer_row(op)
        self._rows[id(op)] = (op, row)
        return row


def layer_table(g: nx.DiGraph, rows: LayerRows | None = None) -> LayerTable:
    """The layers that do work, in insertion order (topological for builder graphs)."""
    get = rows.row if rows is not None else _layer_row
    table = [r for r in map(get, (d["op"] for d in g._node.values())) if r is not None]
    if not table:
        empty = np.zeros(0)
        return LayerTable([], empty, np.zeros(0, dtype=np.int64), empty, empty, empty)
    ips = [r[0] for r in table]
    nums = np.fromiter(chain.from_iterable(r[1:] for r in table), dtype=float, count=5 * len(table))
    nums = nums.reshape(len(table), 5)
    return LayerTable(ips, nums[:, 0], nums[:, 1].astype(np.int64), nums[:, 2], nums[:, 3], nums[:, 4])


def offchip_bytes(layers: LayerTable, onchip_budget_bytes: float) -> np.ndarray:
    """Bytes each layer moves over DDR per inference: its weights when all weights do not fit in
    the on-chip budget, and its feature maps when its input plus output do not."""
    weights_offchip = layers.weight_bytes.sum() > onchip_budget_bytes
    traffic = layers.weight_bytes * weights_offchip
    return traffic + np.where(layers.io_bytes > onchip_budget_bytes, layers.io_bytes, 0.0)
