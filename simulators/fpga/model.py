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

Batch norm and activations are fused into their neighbouring convolution by default (``fuse``),
as real accelerators do, so a layer is a convolution, depthwise convolution, fully connected
layer, pooling or element-wise merge. Simulators may add a fixed cost per layer (control, DMA
set-up, pipeline fill): see ``layer_overhead_cycles`` in plugin.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from dse.graph import numel
from dse.graph.optable import OpTable, population_ops

#: Cycles per unit of work per parallel lane, by bit-width (eq. 2.13 with Phi(q) = q / 16).
PHI_DEFAULT: dict[int, float] = {q: q / 16 for q in (1, 2, 4, 8, 16, 32)}
#: DSP slices per parallel lane (eq. 2.15, section 2.4.1.2): <= 4 bits in LUTs, 5-8 bits two per
#: DSP48, 9-16 bits one per DSP48. 17-32 bits (outside the dissertation's range): four DSP48s.
PSI_DEFAULT: dict[int, float] = {4: 0.0, 8: 0.5, 16: 1.0, 32: 4.0}
#: LUTs per parallel lane for layers whose Psi is 0 (multipliers built from LUTs); assumption.
LUT_PER_LANE = 25.0

#: IP classes (one IP type per class and kernel size in the recursive architecture).
#: a transposed convolution runs on the k x k convolution IP with its own MACs (a scatter of
#: each input pixel, not a convolution over a zero-inserted map)
_CONV_KINDS = {"conv2d": "conv", "deconv2d": "conv", "linear": "fc", "matmul": "matmul"}
#: kinds that are no layer: views, constants, and a channel shuffle, which an accelerator that
#: streams feature maps through its buffers does by addressing (no IP, no pass over the data)
_SKIP_KINDS = frozenset(
    {"input", "constant", "reshape", "identity", "zero", "concat", "slice", "shuffle"}
)
#: Kinds an accelerator fuses into the neighbouring compute layer when ``fuse`` is on: batch norm
#: folds into the convolution's weights and bias, an activation is applied to the data as it
#: streams in or out (CHaiDNN, DNNBuilder and HW-NAS-Bench's FPGA accelerator all do this).
FUSED_KINDS = frozenset({"norm", "activation"})


def lookup(table: Mapping[int, float], bits: np.ndarray) -> np.ndarray:
    """Value of ``table`` for each width: the entry of the smallest listed width >= bits."""
    keys = np.array(sorted(table), dtype=float)
    values = np.array([table[k] for k in sorted(table)], dtype=float)
    idx = np.searchsorted(keys, np.asarray(bits, dtype=float), side="left")
    if np.any(idx >= len(keys)):
        widest = int(np.max(bits))
        raise ValueError(
            f"bit-width {widest} is wider than the widest entry {int(keys[-1])} of the table"
        )
    return values[idx]


def parse_table(
    table: Mapping[str, float] | None, default: dict[int, float], name: str
) -> dict[int, float]:
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
            raise ValueError(
                f"{name}.{key}: expected a non-negative number for a width >= 1, got {value!r}"
            )
        out[bits] = float(value)
    if not out:
        raise ValueError(f"{name}: the table is empty")
    return out


@dataclass(frozen=True)
class LayerTable:
    """The compute layers of one graph or a population of graphs as parallel arrays (one entry
    per layer, graph after graph, each graph's layers in insertion order)."""

    ip_code: np.ndarray  # IP type of each layer, an index into ip_names
    ip_names: tuple[str, ...]  # e.g. "conv3x3", "dwconv5x5", "fc", "pool", "eltwise"
    work: np.ndarray  # eq. 2.14 work units
    bits: (
        np.ndarray
    )  # precision the layer computes at (weight bits for conv/fc, activation bits otherwise)
    weight_bytes: np.ndarray
    io_bytes: np.ndarray  # input + output feature-map bytes
    line_buffer_bytes: np.ndarray  # k rows of the input, what a streaming stage keeps on chip
    owner: np.ndarray  # graph of each layer (non-decreasing)
    n_graphs: int = 1

    @classmethod
    def of(
        cls, ip: Sequence[str], work, bits, weight_bytes=None, io_bytes=None, line_buffer_bytes=None
    ) -> LayerTable:
        """One graph's layers from plain lists (zeros where a byte column is left out)."""
        names = tuple(sorted(set(ip)))
        n = len(ip)
        zeros = np.zeros(n)

        def col(v):
            return zeros if v is None else np.asarray(v, dtype=float)

        return cls(
            np.array([names.index(t) for t in ip], dtype=np.int64),
            names,
            np.asarray(work, dtype=float),
            np.asarray(bits, dtype=np.int64),
            col(weight_bytes),
            col(io_bytes),
            col(line_buffer_bytes),
            np.zeros(n, dtype=np.int64),
            1,
        )

    @property
    def ip(self) -> list[str]:
        return [self.ip_names[c] for c in self.ip_code]

    def __len__(self) -> int:
        return len(self.ip_code)

    def per_graph(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-layer array within each graph."""
        return np.bincount(self.owner, weights=values, minlength=self.n_graphs)

    def per_graph_max(self, values: np.ndarray) -> np.ndarray:
        """Maximum of a non-negative per-layer array within each graph (0 for a graph without
        layers)."""
        out = np.zeros(self.n_graphs)
        np.maximum.at(out, self.owner, values)
        return out


def layer_row(op, ip_code: Callable[[str], int], fuse: bool) -> tuple:
    """(IP code, work, bits, weight bytes, io bytes, line-buffer bytes) of one op; IP code -1 for
    an op that is not a layer of its own."""
    if op.kind in _SKIP_KINDS or (fuse and op.kind in FUSED_KINDS):
        return -1, 0, 0, 0, 0, 0
    cin_shape = op.in_shapes[0]
    if op.kind in _CONV_KINDS:
        kernel = f"{op.kernel}x{op.kernel}" if op.kind in ("conv2d", "deconv2d") else ""
        ip = _CONV_KINDS[op.kind] + kernel
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
    return ip_code(ip), work, bits, op.weight_bytes, io, line


class LayerRows(OpTable):
    """Every distinct op's layer row (:func:`layer_row`), computed once, indexed by op uid;
    graph builders share one :class:`OpNode` among identical layers, so most lookups hit."""

    def __init__(self, fuse: bool = True, max_rows: int = 200_000):
        self.ip_names: list[str] = []
        self._ip_index: dict[str, int] = {}
        super().__init__(lambda op: layer_row(op, self._code, fuse), 6, max_rows)

    def _code(self, name: str) -> int:
        if name not in self._ip_index:
            self._ip_index[name] = len(self.ip_names)
            self.ip_names.append(name)
        return self._ip_index[name]

    def table(self, graphs: Sequence[nx.DiGraph]) -> LayerTable:
        """The layers that do work in ``graphs``, graph after graph, in insertion order
        (topological for builder graphs)."""
        ops, lengths = population_ops(graphs)
        rows = self.rows(ops)
        values = self.matrix()[rows] if ops else np.zeros((0, 6))
        keep = values[:, 0] >= 0
        owner = np.repeat(np.arange(len(graphs)), lengths)[keep]
        v = values[keep]
        return LayerTable(
            v[:, 0].astype(np.int64),
            tuple(self.ip_names),
            v[:, 1],
            v[:, 2].astype(np.int64),
            v[:, 3],
            v[:, 4],
            v[:, 5],
            owner,
            len(graphs),
        )


def layer_table(g: nx.DiGraph, rows: LayerRows | None = None) -> LayerTable:
    """The layers of one graph (``rows`` caches op rows between calls; default: fused)."""
    return (rows if rows is not None else LayerRows()).table([g])


def offchip_bytes(layers: LayerTable, onchip_budget_bytes: float) -> np.ndarray:
    """Bytes each layer moves over DDR per inference: its weights when all of its graph's weights
    do not fit in the on-chip budget, and its feature maps when its input plus output do not."""
    weights_offchip = layers.per_graph(layers.weight_bytes)[layers.owner] > onchip_budget_bytes
    traffic = layers.weight_bytes * weights_offchip
    return traffic + np.where(layers.io_bytes > onchip_budget_bytes, layers.io_bytes, 0.0)
