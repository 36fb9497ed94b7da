"""EDD's supernet over the ``mbconv`` space: single-path superkernels, trainable on a CPU.

Every searchable block holds one MBConv at its largest candidate (expansion 6, a 7x7 depthwise
kernel) whose smaller candidates are masks of it (Single-Path NAS, Stamoulis et al. 2019): the
3x3 and 5x5 kernels are the centre of the 7x7 one, expansion e keeps the first ``e * c_in``
hidden channels. A block's relaxed op weights ``w`` (the Gumbel-softmax of its Theta row,
eqs. 2.4-2.5) mix the masks in one forward pass: kernel mask ``sum_k a_k mask_k`` and channel
mask ``sum_e b_e mask_e`` with ``a_k = sum_e w_ke`` and ``b_e = sum_k w_ke`` renormalised over
the MBConv candidates, and a skippable block returns ``w_skip x + (1 - w_skip) block(x)``.
Weights are fake-quantised per block and mixed over the bit choices by the block's Phi weights
(eqs. 2.2-2.3; straight-through rounding, symmetric per-tensor scale). With one-hot weights the
block is exactly the chosen MBConv, which is how a derived network is retrained.

The supernet mirrors the space's layout (strides, block count) at a reduced width
(``width``) and resolution, so a 2-core CPU trains it on scikit-learn's digits in minutes; the
hardware cost is always priced at the space's own deployment shape (:mod:`cost`).

This is a torch module for training only; the architecture it searches stays the space's plain
dict, and its graph the space's networkx graph.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the space is handed in by the driver; its vocabulary is read from it
    from dse.spaces.mbconv import MBConvChainSpace


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-tensor quantisation to ``bits`` with a straight-through gradient."""
    levels = 2 ** (bits - 1) - 1
    scale = w.detach().abs().max().clamp_min(1e-8) / levels
    q = torch.round(w / scale).clamp(-levels, levels) * scale
    return w + (q - w).detach()


def mixed_weight(w: torch.Tensor, bit_weights: torch.Tensor, bits: tuple[int, ...]) -> torch.Tensor:
    """``sum_q Phi_q * quant_q(w)``: the expectation of eq. 2.2 applied to the weights (terms
    of weight exactly 0, as in a derived one-hot network, are skipped)."""
    terms = [
        bit_weights[j] * fake_quant(w, q)
        for j, q in enumerate(bits)
        if bit_weights.requires_grad or float(bit_weights[j]) != 0
    ]
    return torch.stack(terms).sum(0)


class SuperBlock(nn.Module):
    """One searchable block: every MBConv candidate as a mask of the largest."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        skippable: bool,
        kernels: tuple[int, ...],
        expansions: tuple[int, ...],
    ):
        super().__init__()
        self.kernels, self.expansions = kernels, expansions
        MAX_K = self.max_kernel = max(kernels)
        mid = max(expansions) * cin
        self.cin, self.cout, self.stride, self.skippable = cin, cout, stride, skippable
        self.expand = nn.Parameter(torch.empty(mid, cin, 1, 1))
        self.depthwise = nn.Parameter(torch.empty(mid, 1, MAX_K, MAX_K))
        self.project = nn.Parameter(torch.empty(cout, mid, 1, 1))
        for p in (self.expand, self.depthwise, self.project):
            nn.init.kaiming_normal_(p, mode="fan_out")
        self.bn1, self.bn2, self.bn3 = (
            nn.BatchNorm2d(mid),
            nn.BatchNorm2d(mid),
            nn.BatchNorm2d(cout),
        )
        kmask = torch.zeros(len(kernels), 1, 1, MAX_K, MAX_K)
        for j, k in enumerate(kernels):
            lo = (MAX_K - k) // 2
            kmask[j, ..., lo : lo + k, lo : lo + k] = 1
        cmask = torch.zeros(len(expansions), mid)
        for j, e in enumerate(expansions):
            cmask[j, : e * cin] = 1
        self.register_buffer("kmask", kmask)
        self.register_buffer("cmask", cmask)

    def forward(
        self, x: torch.Tensor, w_ops: torch.Tensor, w_bits: torch.Tensor, bits: tuple[int, ...]
    ) -> torch.Tensor:
        n_mb = len(self.kernels) * len(self.expansions)  # the MBConv candidates, then skip
        mb = w_ops[:n_mb].reshape(len(self.kernels), len(self.expansions))
        total = mb.sum().clamp_min(1e-12)
        a, b = mb.sum(1) / total, mb.sum(0) / total  # kernel and expansion weights
        kernel = (a[:, None, None, None, None] * self.kmask).sum(0)
        channels = (b[:, None] * self.cmask).sum(0)[None, :, None, None]
        expand = mixed_weight(self.expand, w_bits, bits)
        dw = mixed_weight(self.depthwise, w_bits, bits) * kernel
        project = mixed_weight(self.project, w_bits, bits)
        h = F.relu6(self.bn1(F.conv2d(x, expand))) * channels
        h = F.conv2d(h, dw, stride=self.stride, padding=self.max_kernel // 2, groups=h.shape[1])
        h = F.relu6(self.bn2(h)) * channels
        y = self.bn3(F.conv2d(h, project))
        if self.stride == 1 and self.cin == self.cout:
            y = y + x
        if self.skippable:
            skip = w_ops[n_mb]
            return skip * x + (1 - skip) * y
        return y


def reduced_channels(channels: int, width: float) -> int:
    return max(4, int(math.ceil(channels * width / 4) * 4)) if width < 1 else channels


class Supernet(nn.Module):
    """The space's chain at ``width`` x its channels: stem, the searchable blocks, the head."""

    def __init__(
        self,
        space: MBConvChainSpace,
        in_channels: int = 1,
        num_classes: int = 10,
        width: float = 0.25,
    ):
        super().__init__()
        self.bits = space.bit_choices[space.target]
        c0, c1 = reduced_channels(32, width), reduced_channels(16, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, 3, 2, 1, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU6(),
            nn.Conv2d(c0, c0, 3, 1, 1, groups=c0, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU6(),
            nn.Conv2d(c0, c1, 1, bias=False),
            nn.BatchNorm2d(c1),
        )
        blocks, cin = [], c1
        skip_ok = [("skip" in v.choices) for v in space.variables if v.name.endswith(".op")]
        for (cout, stride), skippable in zip(space.layout, skip_ok):
            c = reduced_channels(cout, width)
            blocks.append(SuperBlock(cin, c, stride, skippable, space.kernels, space.expansions))
            cin = c
        self.blocks = nn.ModuleList(blocks)
        head = reduced_channels(1280, width)
        self.head = nn.Sequential(
            nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6()
        )
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor, w_ops: torch.Tensor, w_bits: torch.Tensor) -> torch.Tensor:
        """``w_ops`` (N, M) and ``w_bits`` (N, Q) (a GPU's one row broadcast to every block)."""
        if w_bits.dim() == 1:
            w_bits = w_bits.expand(len(self.blocks), -1)
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x, w_ops[i], w_bits[i], self.bits)
        x = self.head(x).mean((2, 3))
        return self.classifier(x)
