"""The numbers EDD's differentiable cost multiplies, taken from the simulators themselves.

Every candidate of every block of the ``mbconv`` space is built as a graph piece
(:meth:`MBConvChainSpace.segment_graphs`) and read by the FPGA simulator's own layer rows
(``LayerRows``: the eq. 2.14 work terms, IP types, per-layer bit-widths) and the GPU simulator's
own kernel coster (calibrated roofline seconds per precision). The torch cost
(:mod:`dse.simulators.edd.cost`) only weights these tables with the relaxed choices; there is no
second copy of any formula or constant: ``Phi(q)`` and ``Psi(q)`` are the simulator's tables
looked up with its :func:`~dse.simulators.fpga.model.lookup`.

Ops are indexed like :data:`OPS`: the nine MBConv candidates, then ``skip`` (no layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.simulators.fpga.model import lookup
from dse.simulators.fpga.plugin import FpgaSimulator
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import GpuCostModel
from dse.spaces.mbconv import BITS, MBCONV_OPS, MBConvChainSpace

OPS = MBCONV_OPS + ("skip",)
#: GPU precision of each network bit-width (section 2.4.2: TensorRT's int8, fp16, fp32)
GPU_PRECISION = {8: "int8", 16: "fp16", 32: "fp32"}


def skippable(space: MBConvChainSpace) -> np.ndarray:
    """(N,) whether block i may be ``skip`` (it keeps its shape)."""
    return np.array([OPS[-1] in v.choices for v in space.variables if v.name.endswith(".op")])


@dataclass(frozen=True)
class FpgaTables:
    """Candidate layers as rows (block, op, layer) with their IP, work and the Phi and Psi of
    the layer's bits under each bit choice; fixed layers (stem, head) likewise."""

    ip_names: tuple[str, ...]
    bits: tuple[int, ...]  # the bit choices (columns of phi and psi)
    block: np.ndarray  # (R,) block of each candidate row
    op: np.ndarray  # (R,) op index of each candidate row
    ip: np.ndarray  # (R,) IP index
    work: np.ndarray  # (R,) eq. 2.14 work units
    phi: np.ndarray  # (R, Q) cycles per work unit per lane at the layer's bits under choice q
    psi: np.ndarray  # (R, Q) DSPs per lane
    fixed_ip: np.ndarray  # (F,)
    fixed_work: np.ndarray  # (F,)
    fixed_phi: np.ndarray  # (F,)
    fixed_psi: np.ndarray  # (F,)
    n_blocks: int
    clock_hz: float
    skippable: np.ndarray  # (N,)

    @property
    def uses(self) -> np.ndarray:
        """(N, M, IPs) whether op m of block i has a layer on each IP."""
        out = np.zeros((self.n_blocks, len(OPS), len(self.ip_names)), dtype=bool)
        out[self.block, self.op, self.ip] = True
        return out

    @property
    def fixed_uses(self) -> np.ndarray:
        """(IPs,) IPs the fixed layers use (always instantiated)."""
        out = np.zeros(len(self.ip_names), dtype=bool)
        out[self.fixed_ip] = True
        return out


def fpga_tables(space: MBConvChainSpace, sim: FpgaSimulator) -> FpgaTables:
    """The FPGA tables of ``space`` (``target = "fpga"``) as ``sim`` sees its layers."""
    if space.target != "fpga":
        raise ValueError(f"space.target: FPGA tables need target 'fpga', got {space.target!r}")
    bits = BITS["fpga"]
    stem, blocks, head = space.segment_graphs(16)
    names: dict[str, int] = {}

    def rows(graph):
        t = sim.layers([graph])
        ips = np.array([names.setdefault(t.ip_names[c], len(names)) for c in t.ip_code])
        return ips, t.work, t.bits

    cols: dict[str, list] = {k: [] for k in ("block", "op", "ip", "work", "phi", "psi")}
    for i, pieces in enumerate(blocks):
        for m, op in enumerate(MBCONV_OPS):
            per_q = [rows(pieces[(op, q)]) for q in bits]
            ips, work, _ = per_q[0]
            for other_ips, other_work, _ in per_q[1:]:  # bits change precision, not layers
                assert np.array_equal(ips, other_ips) and np.allclose(work, other_work)
            layer_bits = np.stack([b for _, _, b in per_q], axis=1)  # (L, Q)
            cols["block"].append(np.full(len(ips), i))
            cols["op"].append(np.full(len(ips), m))
            cols["ip"].append(ips)
            cols["work"].append(work)
            cols["phi"].append(lookup(sim.phi, layer_bits))
            cols["psi"].append(lookup(sim.psi, layer_bits))
    fixed = [rows(stem), rows(head)]
    f_ip = np.concatenate([r[0] for r in fixed])
    f_bits = np.concatenate([r[2] for r in fixed])
    return FpgaTables(
        ip_names=tuple(sorted(names, key=names.__getitem__)),
        bits=bits,
        block=np.concatenate(cols["block"]),
        op=np.concatenate(cols["op"]),
        ip=np.concatenate(cols["ip"]),
        work=np.concatenate(cols["work"]).astype(float),
        phi=np.concatenate(cols["phi"]),
        psi=np.concatenate(cols["psi"]),
        fixed_ip=f_ip,
        fixed_work=np.concatenate([r[1] for r in fixed]).astype(float),
        fixed_phi=lookup(sim.phi, f_bits),
        fixed_psi=lookup(sim.psi, f_bits),
        n_blocks=len(blocks),
        clock_hz=sim.board.clock_hz,
        skippable=skippable(space),
    )


@dataclass(frozen=True)
class GpuTables:
    """Seconds of every candidate of every block at each network precision, and of the fixed
    layers, from the GPU simulator's calibrated roofline at batch 1 (section 2.4.2)."""

    bits: tuple[int, ...]
    block_s: np.ndarray  # (N, M, Q); skip is 0
    fixed_s: np.ndarray  # (Q,)
    skippable: np.ndarray


def gpu_tables(space: MBConvChainSpace, model: GpuCostModel, batch_size: int = 1) -> GpuTables:
    """The GPU tables of ``space`` (``target = "gpu"``) on ``model``'s device."""
    if space.target != "gpu":
        raise ValueError(f"space.target: GPU tables need target 'gpu', got {space.target!r}")
    bits = BITS["gpu"]
    block_s = np.zeros((space.num_blocks, len(OPS), len(bits)))
    fixed_s = np.zeros(len(bits))
    for j, q in enumerate(bits):
        coster = GraphCoster(model, batch_size, GPU_PRECISION[q])
        stem, blocks, head = space.segment_graphs(q)
        fixed_s[j] = coster.cost([stem, head]).seconds.sum()
        for i, pieces in enumerate(blocks):
            graphs = [pieces[(op, q)] for op in MBCONV_OPS]
            block_s[i, : len(MBCONV_OPS), j] = coster.cost(graphs).seconds
    return GpuTables(bits, block_s, fixed_s, skippable(space))


def one_hot(space: MBConvChainSpace, arch) -> tuple[np.ndarray, np.ndarray]:
    """(P, Q) of an architecture: one-hot op choices per block (N, M) and bit choices (N, Q) on
    an FPGA or (Q,) for the network on a GPU."""
    n = space.num_blocks
    P = np.zeros((n, len(OPS)))
    for i in range(n):
        P[i, OPS.index(arch[f"b{i:02d}.op"])] = 1
    bits = BITS[space.target]
    if space.target == "gpu":
        return P, np.eye(len(bits))[bits.index(arch["bits"])]
    return P, np.stack([np.eye(len(bits))[bits.index(arch[f"b{i:02d}.bits"])] for i in range(n)])


def derive(space: MBConvChainSpace, P: np.ndarray, Q: np.ndarray) -> dict:
    """The architecture of the most probable choices (argmax of Theta and Phi, section 2.5);
    ``skip`` is never derived for a block that cannot keep its shape."""
    P = np.where(
        np.append(np.ones(len(MBCONV_OPS), bool), False)[None, :] | skippable(space)[:, None],
        P,
        -np.inf,
    )
    arch: dict = {f"b{i:02d}.op": OPS[int(np.argmax(P[i]))] for i in range(space.num_blocks)}
    bits = BITS[space.target]
    if space.target == "gpu":
        arch["bits"] = bits[int(np.argmax(Q))]
    else:
        for i in range(space.num_blocks):
            arch[f"b{i:02d}.bits"] = bits[int(np.argmax(Q[i]))]
    return {v.name: arch[v.name] for v in space.variables}
