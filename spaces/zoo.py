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
    macs: float
    source: str


PUBLISHED: dict[str, Published] = {
    "resnet18": Published(11.69e6, 1.82e9, "He et al. 2016 (1.8 GFLOPs); torchvision model card"),
    "mobilenet_v2": Published(3.47e6, 300e6, "Sandler et al. 2018, TF-slim mobilenet_v2_1.0_224"),
    "mnasnet_a1": Published(3.9e6, 312e6, "Tan et al. 2019, table 1"),
    "fbnet_c": Published(5.5e6, 375e6, "Wu et al. 2019, table 2"),
    "proxylessnas_gpu": Published(7.1e6, 465e6, "Cai et al. 2019, ProxylessNAS-GPU"),
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


def proxylessnas_gpu(b: GraphBuilder, resolution: int, num_classes: int) -> None:
    x = _stem(b, resolution, 40, "relu6")
    # Searched blocks per stage as (channels, kernel, expansion, present); absent blocks are the
    # zero op (identity shortcut only). The first block of stages 2-5 has stride 2.
    stages = [
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
    ]
    for s, blocks in enumerate(stages):
        for i, (channels, kernel, expansion, present) in enumerate(blocks):
            if present:
                x = mbconv(b, x, channels, kernel, 2 if s and i == 0 else 1, expansion)
        b.mark_stage(x)
    x = conv_bn_act(b, x, 1728, 1, act="relu6")
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
    """Reference networks (ResNet-18, MobileNetV2, MnasNet-A1, FBNet-C, ProxylessNAS-GPU, VGG16)."""

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

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return build(
            arch["network"],
            resolution=self.resolution,
            num_classes=self.num_classes,
            weight_bits=self.weight_bits,
            act_bits=self.act_bits,
        )
