"""The numbers EDD's differentiable cost multiplies, taken from the simulators themselves.

Every candidate of every block of the ``mbconv`` space is built as a graph piece
(:meth:`MBConvChainSpace.segment_graphs`) and read by the FPGA simulator's own layer rows
(``LayerRows``: the eq. 2.14 work terms, IP types, per-layer bit-widths) and the GPU simulator's
own kernel coster (calibrated roofline seconds per precision). The torch cost
(:mod:`dse.drivers.edd.cost`) only weights these tables with the relaxed choices; there is no
second copy of any formula or constant: ``Phi(q)`` and ``Psi(q)`` are the simulator's tables
looked up by the simulator (``phi_at``, ``psi_at``). The space and the simulator are the run's
own, handed in by the driver: this module imports neither.

Ops are indexed like :func:`candidate_ops`: the nine MBConv candidates, then ``skip`` (no
layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MBConvChainSpace(Protocol):
    """What EDD reads of the space it searches (the ``mbconv`` space is one): its candidate
    vocabulary, bit choices, blocks and their graph pieces."""

    name: str
    target: str
    num_blocks: int
    variables: tuple
    kernels: tuple[int, ...]
    expansions: tuple[int, ...]
    mbconv_ops: tuple[str, ...]
    bit_choices: dict[str, tuple[int, ...]]

    def segment_graphs(self, bits: int) -> tuple: ...

    def to_graph(self, arch: Any) -> Any: ...

    def arch_id(self, arch: Any) -> str: ...

    def encode(self, arch: Any) -> np.ndarray: ...


@runtime_checkable
class FpgaLayerCost(Protocol):
    """An FPGA simulator as EDD's tables read it: layer rows (eq. 2.14 work, IP, bits), the
    Phi and Psi of a bit-width, its board and DSP budget."""

    architecture: str
    dsp_budget: float

    def layers(self, graphs: Any) -> Any: ...

    def phi_at(self, bits: np.ndarray) -> np.ndarray: ...

    def psi_at(self, bits: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class GpuKernelCost(Protocol):
    """A GPU simulator as EDD's tables read it: a kernel coster at a batch and precision."""

    def coster_at(self, batch_size: int, precision: str) -> Any: ...


SKIP = "skip"
#: GPU precision of each network bit-width (section 2.4.2: TensorRT's int8, fp16, fp32)
GPU_PRECISION = {8: "int8", 16: "fp16", 32: "fp32"}


def candidate_ops(space: MBConvChainSpace) -> tuple[str, ...]:
    """The op of each column of P: the space's MBConv candidates, then ``skip``."""
    return (*space.mbconv_ops, SKIP)


def skippable(space: MBConvChainSpace) -> np.ndarray:
    """(N,) whether block i may be ``skip`` (it keeps its shape)."""
    return np.array([SKIP in v.choices for v in space.variables if v.name.endswith(".op")])


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
    n_ops: int  # columns of P (the MBConv candidates and skip)
    clock_hz: float
    skippable: np.ndarray  # (N,)

    @property
    def uses(self) -> np.ndarray:
        """(N, M, IPs) whether op m of block i has a layer on each IP."""
        out = np.zeros((self.n_blocks, self.n_ops, len(self.ip_names)), dtype=bool)
        out[self.block, self.op, self.ip] = True
        return out

    @property
    def fixed_uses(self) -> np.ndarray:
        """(IPs,) IPs the fixed layers use (always instantiated)."""
        out = np.zeros(len(self.ip_names), dtype=bool)
        out[self.fixed_ip] = True
        return out


def fpga_tables(space: MBConvChainSpace, sim: Any) -> FpgaTables:
    """The FPGA tables of ``space`` (``target = "fpga"``) as the FPGA simulator ``sim`` sees its
    layers (``sim.layers``, ``sim.phi_at``, ``sim.psi_at``, ``sim.board``)."""
    if space.target != "fpga":
        raise ValueError(f"space.target: FPGA tables need target 'fpga', got {space.target!r}")
    bits = space.bit_choices["fpga"]
    stem, blocks, head = space.segment_graphs(16)
    names: dict[str, int] = {}

    def rows(graph):
        t = sim.layers([graph])
        ips = np.array([names.setdefault(t.ip_names[c], len(names)) for c in t.ip_code])
        return ips, t.work, t.bits

    cols: dict[str, list] = {k: [] for k in ("block", "op", "ip", "work", "phi", "psi")}
    for i, pieces in enumerate(blocks):
        for m, op in enumerate(space.mbconv_ops):
            per_q = [rows(pieces[(op, q)]) for q in bits]
            ips, work, _ = per_q[0]
            for other_ips, other_work, _ in per_q[1:]:  # bits change precision, not layers
                assert np.array_equal(ips, other_ips) and np.allclose(work, other_work)
            layer_bits = np.stack([b for _, _, b in per_q], axis=1)  # (L, Q)
            cols["block"].append(np.full(len(ips), i))
            cols["op"].append(np.full(len(ips), m))
            cols["ip"].append(ips)
            cols["work"].append(work)
            cols["phi"].append(sim.phi_at(layer_bits))
            cols["psi"].append(sim.psi_at(layer_bits))
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
        fixed_phi=sim.phi_at(f_bits),
        fixed_psi=sim.psi_at(f_bits),
        n_blocks=len(blocks),
        n_ops=len(candidate_ops(space)),
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


def gpu_tables(space: MBConvChainSpace, sim: Any, batch_size: int = 1) -> GpuTables:
    """The GPU tables of ``space`` (``target = "gpu"``) on the GPU simulator ``sim``'s device
    (its kernel coster at each precision, ``sim.coster_at``)."""
    if space.target != "gpu":
        raise ValueError(f"space.target: GPU tables need target 'gpu', got {space.target!r}")
    bits, mb = space.bit_choices["gpu"], space.mbconv_ops
    block_s = np.zeros((space.num_blocks, len(candidate_ops(space)), len(bits)))
    fixed_s = np.zeros(len(bits))
    for j, q in enumerate(bits):
        coster = sim.coster_at(batch_size, GPU_PRECISION[q])
        stem, blocks, head = space.segment_graphs(q)
        fixed_s[j] = coster.cost([stem, head]).seconds.sum()
        for i, pieces in enumerate(blocks):
            graphs = [pieces[(op, q)] for op in mb]
            block_s[i, : len(mb), j] = coster.cost(graphs).seconds
    return GpuTables(bits, block_s, fixed_s, skippable(space))


def one_hot(space: MBConvChainSpace, arch) -> tuple[np.ndarray, np.ndarray]:
    """(P, Q) of an architecture: one-hot op choices per block (N, M) and bit choices (N, Q) on
    an FPGA or (Q,) for the network on a GPU."""
    n, ops = space.num_blocks, candidate_ops(space)
    P = np.zeros((n, len(ops)))
    for i in range(n):
        P[i, ops.index(arch[f"b{i:02d}.op"])] = 1
    bits = space.bit_choices[space.target]
    if space.target == "gpu":
        return P, np.eye(len(bits))[bits.index(arch["bits"])]
    return P, np.stack([np.eye(len(bits))[bits.index(arch[f"b{i:02d}.bits"])] for i in range(n)])


def derive(space: MBConvChainSpace, P: np.ndarray, Q: np.ndarray) -> dict:
    """The architecture of the most probable choices (argmax of Theta and Phi, section 2.5);
    ``skip`` is never derived for a block that cannot keep its shape."""
    P = np.where(
        np.append(np.ones(len(space.mbconv_ops), bool), False)[None, :] | skippable(space)[:, None],
        P,
        -np.inf,
    )
    ops = candidate_ops(space)
    arch: dict = {f"b{i:02d}.op": ops[int(np.argmax(P[i]))] for i in range(space.num_blocks)}
    bits = space.bit_choices[space.target]
    if space.target == "gpu":
        arch["bits"] = bits[int(np.argmax(Q))]
    else:
        for i in range(space.num_blocks):
            arch[f"b{i:02d}.bits"] = bits[int(np.argmax(Q[i]))]
    return {v.name: arch[v.name] for v in space.variables}
