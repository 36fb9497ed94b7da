"""An analytic mapper for spatial dataflow accelerators, in the spirit of Timeloop and MAESTRO.

Per layer (one IR node with MACs: convolutions, linear, matmul) it places the loop nest on the
PE array for the device's dataflow and counts cycles and accesses per memory level; the
vectorised simulator (:mod:`dse.simulators.asic.plugin`) sums them per graph.

**Utilisation** (active PEs out of ``rows x cols``), for a layer with filter ``R x S``, ``C``
input and ``M`` output channels per group, output ``E x F``:

* ``row_stationary`` (Eyeriss; Chen et al., ISCA 2016): a logical PE set is ``R`` rows (filter
  rows) by ``E`` columns (output rows). ``E`` wider than the array is cut into
  ``ceil(E / cols)`` strips of equal width; ``floor(rows / R)`` sets stack vertically (other
  channels or filters fill them), so ``active = R x floor(rows / R) x E / ceil(E / cols)``.
  AlexNet's CONV1 gives 11 x 1 x 13.75 = 151 (Eyeriss reports 154 of 168), CONV2 5 x 2 x 13.5 =
  135 (135), CONV3-5 3 x 4 x 13 = 156 (156).
* ``weight_stationary`` (TPU-like): ``C x R x S`` on rows, ``M`` on columns:
  ``active = pes x fill(CRS, rows) x fill(M, cols)``, ``fill(n, k) = n / (k ceil(n / k))``.
* ``output_stationary`` (ShiDianNao-like): output pixels on the array:
  ``active = pes x fill(E, rows) x fill(F, cols)``.

**Cycles**: ``MACs / active`` (one MAC per PE per cycle), or the array's input traffic over the
NoC bandwidth when that is slower, plus the DRAM transfer time (``word bytes x DRAM words /
bandwidth``): the test chip does not overlap off-chip transfers with computation.

**Accesses** (words), Eyeriss' energy accounting (JSSC 2017): every MAC reads its weight, its
input and its partial sum from the PE's register file and writes the sum back (4 RF accesses);
the array (NoC) delivers each input row to the ``R`` PEs of its diagonal, each filter row to the
PEs of its set's row, and moves each output's partial sums up ``R`` rows; the global buffer is
read once per pass of filters held in the register files (``m_pass = (RF words / 2) // S``
filters) and written the outputs. Energy = MAC energy x (MACs + sum of accesses x the level's
relative cost).

**DRAM** (words): what the global buffer (``glb_kb``; input rows and partial sums) and the
array (half of each PE's register file holds weights, as for ``m_pass``) let a layer reuse,
per group, the fewer of two loop orders over output-row tiles of ``e`` rows (every ``e``
tried; a tile reads ``(e - 1) x stride + R`` input rows, the overlap re-read):

* filters outer: blocks of ``floor(buffer / (batch x F x e))`` filters (their partial sums
  fill the buffer), the input read once per block, the weights once (re-read per tile where
  the block's do not fit on the array; the block is also tried cut to what does);
* tiles outer: a tile's input rows, every channel and sample, stay in the buffer, read once;
  the weights are re-read per tile unless all of them fit on the array.

A layer whose tensors fit moves each once. The counts are raw words: Eyeriss compresses runs
of zeros in activations (RLC), so its published traffic is lower (AlexNet 0.0029 and VGG-16
0.0035 DRAM words per MAC at batch 4 and 3, against 0.0039 and 0.0050 here).

Non-MAC ops: pooling and elementwise adds stream through the array (one op per PE per cycle);
batch norm and activations are folded into the convolution's output stage (no cost), views,
NAS-Bench-201's ``zero`` and channel shuffles (the global buffer's addressing) cost nothing.
"""

from __future__ import annotations

import math

import numpy as np

from dse.catalogs.asics import AsicDevice
from dse.graph.ops import OpNode, numel

MAC_KINDS = frozenset({"conv2d", "dwconv2d", "deconv2d", "linear", "matmul"})
STREAMED = frozenset({"pool", "add", "mul"})
#: row fields of :func:`layer_row`
FIELDS = (
    "layers",
    "macs",
    "active_pes",
    "compute_cycles",
    "dram_words",
    "glb_words",
    "noc_words",
    "rf_words",
)


def _fill(n: float, k: int) -> float:
    """Fraction of ``k`` lanes busy when ``n`` items are dealt to them in rounds."""
    return n / (k * math.ceil(n / k)) if n > 0 else 0.0


def layer_shape(op: OpNode) -> tuple[int, int, int, int, int, int]:
    """(R, S, C per group, M per group, E, F) of a MAC layer (linear/matmul: 1 x 1 filters over
    one output row of the rows x features product)."""
    if op.kind in ("conv2d", "dwconv2d", "deconv2d"):
        cin = op.in_shapes[0][0]
        groups = cin if op.kind == "dwconv2d" else op.groups
        m, e, f = op.out_shape
        return op.kernel, op.kernel, cin // groups, m // groups, e, f
    rows = numel(op.out_shape) // op.out_shape[-1] if op.out_shape else 1
    k = op.macs // max(numel(op.out_shape), 1)
    return 1, 1, max(k, 1), op.out_shape[-1] if op.out_shape else 1, rows, 1


def active_pes(device: AsicDevice, r: int, c: int, m: int, e: int, f: int, s: int) -> float:
    """PEs busy on average for one layer under the device's dataflow (module docstring)."""
    rows, cols = device.pe_rows, device.pe_cols
    if device.dataflow == "row_stationary":
        r_set = min(r, rows)
        sets = max(rows // r_set, 1)
        width = e / math.ceil(e / cols)
        return min(r_set * sets * width, rows * cols)
    if device.dataflow == "weight_stationary":
        return rows * cols * _fill(c * r * s, rows) * _fill(m, cols)
    return rows * cols * _fill(e, rows) * _fill(f, cols)


def dram_words(
    device: AsicDevice,
    batch: int,
    shape: tuple[int, int, int, int, int, int, int],
    tensors: tuple[float, float, float],
) -> float:
    """Off-chip words of one group of a MAC layer (``shape``: filter rows ``R``, input
    channels ``C``, filters ``M``, output rows ``E``, stride, input columns ``W`` and output
    columns ``F``; ``tensors``: its input, weight and output words for the batch): the fewest
    over the tilings the global buffer (``glb_kb``) and the array's register files allow
    (module docstring, **DRAM**)."""
    r, c, m, e, stride, in_width, f = shape
    ifmap, weights, ofmap = tensors
    buffer = device.glb_bytes / device.word_bytes  # words: partial sums and input rows
    held = device.pes * device.rf_bytes / device.word_bytes / 2  # weights on the array
    per_filter = weights / max(m, 1)
    rows = np.arange(1, e + 1, dtype=float)  # output rows per tile
    tiles = np.ceil(e / rows)
    span = (rows - 1) * stride + r  # input rows a tile reads
    halo = np.maximum(tiles * span / ((e - 1) * stride + r), 1.0)
    psum_row = batch * f  # words of one output row of one filter, every sample
    # filters outer, row tiles inner: a block of filters' partial sums fill the buffer (at
    # least one row of one filter, streamed); the block's weights stay on the array across the
    # row tiles where they fit; the input is read once per block
    block = np.clip(np.floor(buffer / (psum_row * rows)), 1, m)
    best = np.inf
    for b in (block, np.clip(held // max(per_filter, 1), 1, block)):
        weight_reads = np.where(b * per_filter <= held, 1.0, tiles)
        words = weights * weight_reads + ifmap * halo * np.ceil(m / b) + ofmap
        best = min(best, float(words.min()))
    # row tiles outer, filters inner: a tile's input rows (every channel) stay in the buffer
    # beside one filter's partial sums; every weight is re-read per tile unless all are held
    fits = batch * c * in_width * span + psum_row * rows <= buffer
    if fits.any():
        words = ifmap * halo + weights * np.where(weights <= held, 1.0, tiles) + ofmap
        best = min(best, float(words[fits].min()))
    return best


def layer_row(op: OpNode, device: AsicDevice, batch: int) -> tuple[float, ...]:
    """:data:`FIELDS` of one IR node for a batch of ``batch`` samples."""
    if op.kind in STREAMED:
        elements = batch * (op.flops if op.kind == "pool" else numel(op.out_shape))
        words = batch * (sum(numel(x) for x in op.in_shapes) + numel(op.out_shape))
        cycles = elements / device.pes
        return 1.0, 0.0, float(device.pes), cycles, float(words), float(words), 0.0, 0.0
    if op.kind not in MAC_KINDS or op.macs == 0:
        return (0.0,) * len(FIELDS)
    r, s, c, m, e, f = layer_shape(op)
    macs = float(batch * op.macs)
    active = active_pes(device, r, c, m, e, f, s)
    ifmap = batch * float(sum(numel(x) for x in op.in_shapes))
    ofmap = batch * float(numel(op.out_shape))
    weights = float(op.params)
    rf_words = device.rf_bytes / device.word_bytes
    m_pass = max(int(rf_words / 2) // max(s, 1), 1)
    ifmap_reads = ifmap * math.ceil(m / m_pass)
    glb = ifmap_reads + weights + ofmap
    width = e / math.ceil(e / device.pe_cols)
    noc = ifmap_reads * min(r, device.pe_rows) + weights * width + ofmap * r
    if op.kind in ("conv2d", "dwconv2d", "deconv2d"):
        groups, in_width = op.in_shapes[0][0] // c, op.in_shapes[0][2]
        stride = op.stride if op.kind != "deconv2d" else 1  # transposed: tiled as stride 1
    else:  # linear, matmul: rows of the product, one input row each
        groups, in_width, stride = 1, 1, 1
    dram = groups * dram_words(
        device,
        batch,
        (r, c, m, e, stride, in_width, f),
        (ifmap / groups, weights / groups, ofmap / groups),
    )
    compute = macs / active
    noc_cycles = noc * device.word_bytes / device.noc_bandwidth * device.frequency_hz
    return 1.0, macs, active, max(compute, noc_cycles), dram, glb, noc, 4.0 * macs
