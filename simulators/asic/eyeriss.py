"""Eyeriss v1's published figures and the layers they were measured on: what the ASIC model is
checked against (``tests/test_device_families.py``, ``benchmarks/eyeriss.py``).

Source: Chen, Krishna, Emer and Sze, "Eyeriss: An Energy-Efficient Reconfigurable Accelerator
for Deep Convolutional Neural Networks", IEEE JSSC 52(1), 2017: the convolution layers of
AlexNet at batch 4 (34.7 frames/s, 115.3 ms a batch; 0.0029 DRAM accesses per MAC; active PEs
per layer 154, 135, 156, 156, 156 of 168) and of VGG-16 at batch 3 (0.7 frames/s; 0.0035 DRAM
accesses per MAC), 200 MHz, 16-bit words. The DRAM figures count words after Eyeriss'
run-length compression of activations' zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from dse.graph import GraphBuilder


@dataclass(frozen=True)
class Conv:
    """One convolution layer: input channels, input size (square), filters, kernel, stride,
    groups and padding (-1: "same")."""

    cin: int
    size: int
    cout: int
    kernel: int
    stride: int = 1
    groups: int = 1
    padding: int = -1

    def graph(self) -> nx.DiGraph:
        b = GraphBuilder(f"conv{self.kernel}x{self.kernel}_{self.cin}_{self.cout}_{self.size}")
        x = b.input((self.cin, self.size, self.size))
        b.conv(x, self.cout, self.kernel, self.stride, groups=self.groups, padding=self.padding)
        return b.build()


@dataclass(frozen=True)
class Published:
    """One network's published run: batch size, milliseconds per batch, DRAM words per MAC,
    active PEs per layer (where published) and the layers."""

    batch: int
    ms_per_batch: float
    dram_per_mac: float
    active_pes: tuple[float, ...]
    layers: tuple[Conv, ...]

    def graphs(self) -> list[nx.DiGraph]:
        """One graph per layer, in order."""
        return [layer.graph() for layer in self.layers]


_VGG_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)] + [(256, 256)] * 2
_VGG_CHANNELS += [(256, 512)] + [(512, 512)] * 5
_VGG_SIZES = [224] * 2 + [112] * 2 + [56] * 3 + [28] * 3 + [14] * 3

EYERISS_V1 = {
    "alexnet": Published(
        batch=4,
        ms_per_batch=115.3,
        dram_per_mac=0.0029,
        active_pes=(154, 135, 156, 156, 156),
        layers=(
            Conv(3, 227, 96, 11, 4, padding=0),
            Conv(96, 27, 256, 5, groups=2),
            Conv(256, 13, 384, 3),
            Conv(384, 13, 384, 3, groups=2),
            Conv(384, 13, 256, 3, groups=2),
        ),
    ),
    "vgg16": Published(
        batch=3,
        ms_per_batch=3 / 0.7 * 1e3,
        dram_per_mac=0.0035,
        active_pes=(),
        layers=tuple(Conv(c, n, m, 3) for (c, m), n in zip(_VGG_CHANNELS, _VGG_SIZES, strict=True)),
    ),
}
