"""HW-NAS-Bench's FBNet space (CIFAR-100) written as plain PyTorch, for ``[space] name = "torch"``.

``make(arch)`` builds the network the native ``fbnet`` space describes (:mod:`dse.spaces.fbnet`:
its constants are the one source of the layout), so the two give the same graphs::

    [space]
    name = "torch"
    factory = "fbnet_torch:make"          # run with examples/ on the import path
    input_shape = [3, 32, 32]
    [space.choices]                       # l00 .. l21, each one of dse.spaces.fbnet.OPS

``tests/test_torch_space.py`` imports both and compares them.
"""

from __future__ import annotations

import torch
from torch import nn

from dse.spaces.fbnet import HEAD_CHANNELS, LAYERS, OPS, STEM_CHANNELS, VARIABLES, op_parts


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu=True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle over ``groups`` groups."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Block(nn.Module):
    """FBNet's inverted-residual block, or ``skip`` (identity, or a 1x1 conv where the shape
    changes)."""

    def __init__(self, op: str, cin: int, cout: int, stride: int):
        super().__init__()
        self.residual = op != "skip" and stride == 1 and cin == cout
        if op == "skip":
            same = stride == 1 and cin == cout
            self.body = nn.Identity() if same else conv_bn(cin, cout, 1, stride)
            return
        kernel, expansion, groups = op_parts(op)
        mid = cin * expansion
        parts = [conv_bn(cin, mid, 1, groups=groups)]
        if groups > 1:
            parts.append(Shuffle(groups))
        parts += [
            nn.Sequential(
                nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
                nn.BatchNorm2d(mid),
            ),
            conv_bn(mid, cout, 1, groups=groups, relu=False),
        ]
        self.body = nn.Sequential(*parts)

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class FBNet(nn.Module):
    def __init__(self, arch: dict, num_classes: int = 100):
        super().__init__()
        blocks, cin = [conv_bn(3, STEM_CHANNELS, 3)], STEM_CHANNELS
        for variable, (cout, stride) in zip(VARIABLES, LAYERS, strict=True):
            blocks.append(Block(arch[variable], cin, cout, stride))
            cin = cout
        blocks.append(conv_bn(cin, HEAD_CHANNELS, 1))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def make(arch: dict) -> nn.Module:
    return FBNet(arch).eval()


#: the choices of [space.choices]
CHOICES = {v: list(OPS) for v in VARIABLES}
