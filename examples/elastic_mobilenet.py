"""A small Once-for-All-style elastic MobileNetV3, written as plain PyTorch for a torch space.

Once-for-All (Cai et al., ICLR 2020) searches a MobileNetV3 whose five stages each keep their
first 2, 3 or 4 blocks, and whose every block picks its depthwise kernel (3, 5, 7) and its
expansion ratio (3, 4, 6). This is that space at CIFAR resolution (32 x 32 input, 10 classes):
the stage widths, strides, activations and squeeze-excite placement are OFA's MobileNetV3
(16 | 24, 40 SE, 80 h-swish, 112 h-swish SE, 160 h-swish SE | 960 | 1280), with the first stage's
stride dropped for the small input. A block past its stage's depth is not built, so its kernel
and ratio choices do not change the network (OFA's encoding: every block has its variables)::

    [space]
    name = "torch"
    factory = "elastic_mobilenet:make"
    choices = "elastic_mobilenet:CHOICES"   # d1..d5, k<stage>_<block>, e<stage>_<block>
    input_shape = [3, 32, 32]

``examples/elastic_mobilenet_nsga2.toml`` searches it with NSGA-II against a GPU and an FPGA.
Its blocks are those of :mod:`torch_networks` (the MobileNetV3 written there), so this module
needs ``examples/`` on the import path, as a config beside it puts it.
"""

from __future__ import annotations

from torch import nn
from torch_networks import InvertedResidual, SqueezeExcite, conv_bn, make_divisible

#: (output channels, first block's stride, activation, squeeze-excite) of each elastic stage
STAGES = (
    (24, 1, nn.ReLU, False),
    (40, 2, nn.ReLU, True),
    (80, 2, nn.Hardswish, False),
    (112, 1, nn.Hardswish, True),
    (160, 2, nn.Hardswish, True),
)
STEM, FINAL_EXPAND, FEATURES, CLASSES = 16, 960, 1280, 10
DEPTHS, KERNELS, RATIOS = (2, 3, 4), (3, 5, 7), (3, 4, 6)

#: the space's choices: a depth per stage, a kernel and an expansion ratio per block
CHOICES: dict[str, list[int]] = {f"d{s + 1}": list(DEPTHS) for s in range(len(STAGES))}
for _s in range(len(STAGES)):
    for _b in range(max(DEPTHS)):
        CHOICES[f"k{_s + 1}_{_b + 1}"] = list(KERNELS)
        CHOICES[f"e{_s + 1}_{_b + 1}"] = list(RATIOS)


def block(cin: int, cout: int, kernel: int, stride: int, ratio: int, act, se: bool) -> nn.Module:
    """An MBConv block of torch_networks (MobileNetV3's, squeeze-excite to a quarter)."""
    expanded = make_divisible(cin * ratio)
    gate = SqueezeExcite(expanded, make_divisible(expanded // 4)) if se else None
    return InvertedResidual(cin, expanded, cout, kernel, stride, act, gate)


def make(arch: dict) -> nn.Module:
    """The network of one architecture of :data:`CHOICES`."""
    layers = [conv_bn(3, STEM, 3, act=nn.Hardswish), block(STEM, STEM, 3, 1, 1, nn.ReLU, False)]
    cin = STEM  # the stem and OFA's fixed first block, then the elastic stages
    for s, (cout, stride, act, se) in enumerate(STAGES, start=1):
        for b in range(1, arch[f"d{s}"] + 1):
            kernel, ratio = arch[f"k{s}_{b}"], arch[f"e{s}_{b}"]
            layers.append(block(cin, cout, kernel, stride if b == 1 else 1, ratio, act, se))
            cin = cout
    layers += [conv_bn(cin, FINAL_EXPAND, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1)]
    layers += [nn.Conv2d(FINAL_EXPAND, FEATURES, 1), nn.Hardswish(), nn.Flatten()]
    layers.append(nn.Linear(FEATURES, CLASSES))
    return nn.Sequential(*layers)
