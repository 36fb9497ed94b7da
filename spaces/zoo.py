"""Fixed reference networks in the graph IR, at ImageNet 224x224 (the baselines of table 2.1).

``PUBLISHED`` lists the parameter and MAC counts their authors report; the tests check that our
graphs stay within 2% of them. Each network is also a one-variable search space (``zoo``), so
the reference designs run through the same evaluators, simulators and reports as searched ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from dse.graph import GraphBuilder
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError
from dse.spaces.blocks import conv_bn_act, dw_bn_act, mbconv


@dataclass(frozen=True)
class Published:
    """Parameters and multiply-accumulates per 224x224 image, as published, with the source."""

    params: float
    macs: float | None  # None: the authors did not publish one
    source: str


PUBLISHED: dict[str, Published] = {
    "resnet18": Published(11.69e6, 1.82e9, "He et al. 2016 (1.8 GFLOPs); torchvision model card"),
    "mobilenet_v2": Published(3.47e6, 300e6, "Sandler et al. 2018, TF-slim mobilenet_v2_1.0_224"),
    "mnasnet_a1": Published(3.9e6, 312e6, "Tan et al. 2019, table 1"),
    "fbnet_c": Published(5.5e6, 375e6, "Wu et al. 2019, table 2"),
    "proxylessnas_gpu": Published(7.1e6, 465e6, "Cai et al. 2019, ProxylessNAS-GPU"),
    "proxylessnas_cpu": Published(
        4.36e6,
        None,
        "Cai et al. 2019, ProxylessNAS-CPU: 4,361,648 parameters in the authors' released model; "
        "no MAC count published (imgclsmob's 459.96M counts element-wise ops too: its GPU count "
        "is 2.3% above the paper's 465M)",
    ),
    "proxylessnas_mobile": Published(4.1e6, 320e6, "Cai et al. 2019, ProxylessNAS-Mobile"),
    "googlenet": Published(
        6.62e6, 1.50e9, "torchvision GoogLeNet model card (6,624,904 params, 1.50 GFLOPS as MACs)"
    ),
    "shufflenet_v2": Published(
        2.28e6, 146e6, "Ma et al. 2018, table 5 (146M FLOPs, i.e. MACs; ShuffleNet V2 1.0x)"
    ),
    "vgg16": Published(138.36e6, 15.47e9, "Simonyan & Zisserman 2015, configuration D"),
}


def _stem(b: GraphBuilder, resolution: int, channels: int, act: str) -> int:
    x = b.input((3, resolution, resolution))
    return conv_bn_act(b, x, channels, 3, 2, act=act)


def resnet18(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = b.input((3, resolution, resolution))
    x = conv_bn_act(b, x, 64, 7, 2)
    x = b.pool(x, "max", 3, 2, padding=1)
    for stage, channels in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage and block == 0 else 1
            y = conv_bn_act(b, x, channels, 3, stride)
            y = conv_bn_act(b, y, channels, 3, 1, act=None)
            short = conv_bn_act(b, x, channels, 1, stride, act=None) if stride == 2 else x
            x = b.act(b.sum(y, short), "relu")
        b.mark_stage(x)
    b.classifier(x, num_classes)


def mobilenet_v2(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = _stem(b, resolution, 32, "relu6")
    for t, c, n, s in (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        for i in range(n):
            x = mbconv(b, x, c, 3, s if i == 0 else 1, t)
        b.mark_stage(x)
    x = conv_bn_act(b, x, 1280, 1, act="relu6")
    b.classifier(x, num_classes)


def _mbconv_stages(b: GraphBuilder, x: int, stages, act: str) -> int:
    """stages: (repeats, kernel, stride, expansion, channels, se_ratio) rows."""
    for repeats, kernel, stride, expansion, channels, se in stages:
        for i in range(repeats):
            cin = b.shape(x)[0]
            se_reduced = max(1, int(cin * se)) if se else 0
            x = mbconv(
                b,
                x,
                channels,
                kernel,
                stride if i == 0 else 1,
                expansion,
                act=act,
                se_reduced=se_reduced,
            )
        b.mark_stage(x)
    return x


def mnasnet_a1(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = _stem(b, resolution, 32, "relu")
    x = dw_bn_act(b, x, 3, 1)  # separable conv block, no shortcut
    x = conv_bn_act(b, x, 16, 1, act=None)
    x = _mbconv_stages(
        b,
        x,
        (
            (2, 3, 2, 6, 24, 0),
            (3, 5, 2, 3, 40, 0.25),
            (4, 3, 2, 6, 80, 0),
            (2, 3, 1, 6, 112, 0.25),
            (3, 5, 2, 6, 160, 0.25),
            (1, 3, 1, 6, 320, 0),
        ),
        "relu",
    )
    x = conv_bn_act(b, x, 1280, 1)
    b.classifier(x, num_classes)


def fbnet_c(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = _stem(b, resolution, 16, "relu")
    rows = [
        (1, 3, 1, 1, 16, 0),
        (1, 3, 2, 6, 24, 0),
        (2, 3, 1, 1, 24, 0),
        (1, 5, 2, 6, 32, 0),
        (1, 5, 1, 3, 32, 0),
        (1, 5, 1, 6, 32, 0),
        (1, 3, 1, 6, 32, 0),
        (1, 5, 2, 6, 64, 0),
        (1, 5, 1, 3, 64, 0),
        (2, 5, 1, 6, 64, 0),
        (3, 5, 1, 6, 112, 0),
        (1, 5, 1, 3, 112, 0),
        (4, 5, 2, 6, 184, 0),
        (1, 3, 1, 6, 352, 0),
    ]
    x = _mbconv_stages(b, x, rows, "relu")
    x = conv_bn_act(b, x, 1984, 1)
    b.classifier(x, num_classes)


#: ProxylessNAS's searched blocks per stage as (channels, kernel, expansion, present), from
#: the authors' released net configs (mit-han-lab/proxylessnas); an absent block is the zero op
#: (identity shortcut only). The first block of stages 2-5 has stride 2.
PROXYLESS = {
    "gpu": (
        40,
        1728,
        [
            [(24, 3, 1, 1)],
            [(32, 5, 3, 1), (32, 3, 3, 0), (32, 3, 3, 0), (32, 3, 3, 0)],
            [(56, 7, 3, 1), (56, 3, 3, 0), (56, 3, 3, 0), (56, 3, 3, 1)],
            [
                (112, 7, 6, 1),
                (112, 5, 3, 0),
                (112, 5, 3, 0),
                (112, 5, 3, 1),
                (128, 5, 6, 1),
                (128, 3, 3, 0),
                (128, 3, 3, 1),
                (128, 5, 3, 1),
            ],
            [(256, 7, 6, 1), (256, 7, 6, 1), (256, 7, 6, 1), (256, 5, 6, 1), (432, 7, 6, 1)],
        ],
    ),
    "cpu": (
        40,
        1432,
        [
            [(24, 3, 1, 1)],
            [(32, 3, 6, 1), (32, 3, 3, 1), (32, 3, 3, 1), (32, 3, 3, 1)],
            [(48, 3, 6, 1), (48, 3, 3, 1), (48, 3, 3, 1), (48, 5, 3, 1)],
            [
                (88, 3, 6, 1),
                (88, 3, 3, 0),
                (88, 3, 3, 0),
                (88, 3, 3, 1),
                (104, 5, 6, 1),
                (104, 3, 3, 1),
                (104, 3, 3, 1),
                (104, 3, 3, 1),
            ],
            [(216, 5, 6, 1), (216, 5, 3, 1), (216, 5, 3, 1), (216, 3, 3, 1), (360, 5, 6, 1)],
        ],
    ),
    "mobile": (
        32,
        1280,
        [
            [(16, 3, 1, 1)],
            [(32, 5, 3, 1), (32, 3, 3, 1), (32, 3, 3, 0), (32, 3, 3, 0)],
            [(40, 7, 3, 1), (40, 3, 3, 1), (40, 5, 3, 1), (40, 5, 3, 1)],
            [
                (80, 7, 6, 1),
                (80, 5, 3, 1),
                (80, 5, 3, 1),
                (80, 5, 3, 1),
                (96, 5, 6, 1),
                (96, 5, 3, 1),
                (96, 5, 3, 1),
                (96, 5, 3, 1),
            ],
            [(192, 7, 6, 1), (192, 7, 6, 1), (192, 7, 3, 1), (192, 7, 3, 1), (320, 7, 6, 1)],
        ],
    ),
}


def _proxylessnas(version: str):
    stem, final, stages = PROXYLESS[version]

    def network(b: GraphBuilder, resolution: int, num_classes: int) -> None:
        x = _stem(b, resolution, stem, "relu6")
        for s, blocks in enumerate(stages):
            for i, (channels, kernel, expansion, present) in enumerate(blocks):
                if present:
                    x = mbconv(b, x, channels, kernel, 2 if s and i == 0 else 1, expansion)
            b.mark_stage(x)
        x = conv_bn_act(b, x, final, 1, act="relu6")
        b.classifier(x, num_classes)

    network.__name__ = f"proxylessnas_{version}"
    return network


proxylessnas_gpu = _proxylessnas("gpu")
proxylessnas_cpu = _proxylessnas("cpu")
proxylessnas_mobile = _proxylessnas("mobile")

#: GoogLeNet's inception modules (Szegedy et al. 2015, table 1): #1x1, #3x3 reduce, #3x3,
#: #5x5 reduce, #5x5, pool proj; "pool" rows are 3x3 stride-2 max pools between them
GOOGLENET = (
    (64, 96, 128, 16, 32, 32),
    (128, 128, 192, 32, 96, 64),
    "pool",
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
    "pool",
    (256, 160, 320, 32, 128, 128),
    (384, 192, 384, 48, 128, 128),
)


def googlenet(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    """GoogLeNet (Inception v1) as PyTorch's torchvision builds it, the network table 2.1's
    GPU latencies were measured with: table 1's modules with batch norm after every
    convolution (no biases) and, as torchvision does, a 3x3 convolution in the "5x5" branch;
    no auxiliary heads. (Table 1's own network, 5x5 and biases, has 7.0M parameters and 1.58G
    MACs here.)"""

    def conv(x: int, channels: int, kernel: int, stride: int = 1) -> int:
        return conv_bn_act(b, x, channels, kernel, stride)

    x = b.input((3, resolution, resolution))
    x = b.pool(conv(x, 64, 7, 2), "max", 3, 2, padding=1)
    x = conv(conv(x, 64, 1), 192, 3)
    x = b.pool(x, "max", 3, 2, padding=1)
    for row in GOOGLENET:
        if row == "pool":
            b.mark_stage(x)
            x = b.pool(x, "max", 3, 2, padding=1)
            continue
        c1, r3, c3, r5, c5, proj = row
        x = b.concat(
            conv(x, c1, 1),
            conv(conv(x, r3, 1), c3, 3),
            conv(conv(x, r5, 1), c5, 3),
            conv(b.pool(x, "max", 3, 1), proj, 1),
        )
    b.mark_stage(x)
    b.linear(b.flatten(b.pool(x, "global_avg")), num_classes)


#: ShuffleNet V2 1.0x (Ma et al. 2018, table 5): output channels and units per stage
SHUFFLENET_V2 = ((116, 4), (232, 8), (464, 4))


def shufflenet_v2(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    """ShuffleNet V2 1.0x. The IR's ``slice`` takes leading channels, so a basic unit's split
    reads the first half twice instead of each half once; costs and parameters are exact, the
    trained function is not the paper's. Each unit ends with a channel shuffle of its two
    branches (``shuffle``: a copy of every element, as PyTorch's ``contiguous()`` makes it)."""
    x = b.pool(_stem(b, resolution, 24, "relu"), "max", 3, 2, padding=1)
    for out, units in SHUFFLENET_V2:
        half = out // 2
        for u in range(units):
            if u == 0:  # down-sampling unit: both branches read the whole input
                left = conv_bn_act(b, dw_bn_act(b, x, 3, 2, act=None), half, 1)
                right = conv_bn_act(b, x, half, 1)
                right = conv_bn_act(b, dw_bn_act(b, right, 3, 2, act=None), half, 1)
            else:
                left = b.slice(x, half)
                right = conv_bn_act(b, b.slice(x, half), half, 1)
                right = conv_bn_act(b, dw_bn_act(b, right, 3, 1, act=None), half, 1)
            x = b.shuffle(b.concat(left, right), 2)
        b.mark_stage(x)
    x = conv_bn_act(b, x, 1024, 1)
    b.classifier(x, num_classes)


def vgg16(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = b.input((3, resolution, resolution))
    for channels, repeats in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(repeats):
            x = b.act(b.conv(x, channels, 3, bias=True), "relu")
        x = b.pool(x, "max", 2, 2, padding=0)
        b.mark_stage(x)
    x = b.flatten(x)
    x = b.act(b.linear(x, 4096), "relu")
    x = b.act(b.linear(x, 4096), "relu")
    b.linear(x, num_classes)


NETWORKS: dict[str, Callable[[GraphBuilder, int, int], None]] = {
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
    "mnasnet_a1": mnasnet_a1,
    "fbnet_c": fbnet_c,
    "proxylessnas_gpu": proxylessnas_gpu,
    "proxylessnas_cpu": proxylessnas_cpu,
    "proxylessnas_mobile": proxylessnas_mobile,
    "googlenet": googlenet,
    "shufflenet_v2": shufflenet_v2,
    "vgg16": vgg16,
}


def build(
    name: str,
    *,
    resolution: int = 224,
    num_classes: int = 1000,
    weight_bits: int = 32,
    act_bits: int = 32,
) -> nx.DiGraph:
    """The reference network ``name`` as a graph of the IR."""
    if name not in NETWORKS:
        raise SpaceError(f"network: {name!r} is not allowed; allowed values: {sorted(NETWORKS)}")
    b = GraphBuilder(name, weight_bits=weight_bits, act_bits=act_bits)
    NETWORKS[name](b, resolution, num_classes)
    b.meta.update(space="zoo", network=name)
    return b.build()


@SPACES.register("zoo")
class ZooSpace(SearchSpace):
    """Reference networks (table 2.1's baselines, ResNet-18, VGG16): see ``NETWORKS``."""

    name = "zoo"

    def __init__(
        self,
        networks: list[str] | None = None,
        resolution: int = 224,
        num_classes: int = 1000,
        weight_bits: int = 32,
        act_bits: int = 32,
    ):
        names = tuple(networks or NETWORKS)
        for n in names:
            if n not in NETWORKS:
                raise SpaceError(
                    f"networks: {n!r} is not allowed; allowed values: {sorted(NETWORKS)}"
                )
        self.variables = (Choice("network", names),)
        self.resolution, self.num_classes = resolution, num_classes
        self.weight_bits, self.act_bits = weight_bits, act_bits

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return str(arch["network"])

    def parse(self, text: str) -> dict[str, Any]:
        """A network's name (``resnet18``), its :meth:`arch_id`: what a table of measured
        reference networks holds (``dse calibrate --space zoo``, ``dse cost --archs``)."""
        allowed = self.variables[0].choices
        if text not in allowed:
            raise SpaceError(f"network: {text!r} is not allowed; allowed values: {list(allowed)}")
        return {"network": text}

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return build(
            arch["network"],
            resolution=self.resolution,
            num_classes=self.num_classes,
            weight_bits=self.weight_bits,
            act_bits=self.act_bits,
        )
