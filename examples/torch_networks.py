"""Reference networks written in plain PyTorch, no weights: what a user's own model looks like.

ResNet-18/50, MobileNetV2, MobileNetV3-Large and EfficientNet-B0 follow torchvision's layouts
(``torchvision.models``; their parameter counts are torchvision's, exactly), ViT-B/16 follows
torchvision's ``vit_b_16`` with timm's attention (one ``qkv`` linear and
``scaled_dot_product_attention``), and the GPT-2-small block stack is Hugging Face's ``GPT2Block``
x 12 (``c_attn`` split into q, k, v; causal attention; tanh GELU). Every network is a function
of no arguments returning an ``nn.Module``, so each is a ``--model`` for ``dse cost``::

    dse cost --model torch_networks:resnet50 --input-shape 3,224,224 --device A100-80GB-PCIe

(run from ``examples/``, or with it on ``PYTHONPATH``). :data:`PUBLISHED` holds the originals'
published parameters and MACs, :func:`fvcore_macs` a peer tool's count;
``tests/test_torch_import.py`` checks the import against both, and
``benchmarks/model_import.py`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Published:
    """An original's published size: parameters, multiply-accumulates per sample (None where
    the source gives none), the input shape it is counted at, and the source."""

    params: int
    macs: float | None
    input_shape: tuple[int, ...]
    source: str


_TV = "torchvision.models weights table (params; GFLOPS column, which counts MACs)"

#: published sizes of the originals, by function name
PUBLISHED = {
    "resnet18": Published(11_689_512, 1.81e9, (3, 224, 224), _TV),
    "resnet50": Published(25_557_032, 4.09e9, (3, 224, 224), _TV),
    "mobilenet_v2": Published(3_504_872, 0.30e9, (3, 224, 224), _TV),
    "mobilenet_v3_large": Published(5_483_032, 0.22e9, (3, 224, 224), _TV),
    "efficientnet_b0": Published(5_288_548, 0.39e9, (3, 224, 224), _TV),
    "vit_b16": Published(86_567_656, 17.56e9, (3, 224, 224), _TV),
    # GPT-2 small (Hugging Face "gpt2"): 124,439,808 parameters less the token (38,597,376) and
    # position (786,432) embeddings and the final norm (1,536)
    "gpt2_blocks": Published(85_054_464, None, (128, 768), "Radford et al. 2019; HF gpt2"),
}

#: (layers, heads, tokens, head width) of the networks whose attention products fvcore leaves
#: out (it has no count for scaled_dot_product_attention): 2 products of T x T x d per head
ATTENTION = {"vit_b16": (12, 12, 197, 64), "gpt2_blocks": (12, 12, 128, 64)}


def fvcore_macs(name: str, net: nn.Module, x: torch.Tensor) -> float:
    """The peer count of network ``name``: fvcore's convolution, linear and matmul MACs (its
    ``FlopCountAnalysis`` counts one per multiply-accumulate) plus the attention products it
    leaves out (:data:`ATTENTION`). Needs ``fvcore`` (a test dependency)."""
    import warnings

    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counter = FlopCountAnalysis(net, x)
        counter.unsupported_ops_warnings(False)
        by_op = counter.by_operator()
    layers, heads, tokens, width = ATTENTION.get(name, (0, 0, 0, 0))
    peer = sum(by_op.get(k, 0) for k in ("conv", "linear", "addmm", "matmul", "bmm"))
    return float(peer + layers * heads * 2 * tokens * tokens * width)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=nn.ReLU):
    """Convolution (no bias, 'same' padding), batch norm and an activation (None: none)."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(cout))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``: a ResNet block (shortcut None: the identity)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, act: bool = True):
        super().__init__()
        self.body, self.shortcut, self.act = body, shortcut, act

    def forward(self, x):
        y = self.body(x) + (x if self.shortcut is None else self.shortcut(x))
        return torch.relu(y) if self.act else y


def _resnet(blocks: tuple[int, ...], bottleneck: bool) -> nn.Module:
    """ResNet (He et al. 2016) in torchvision's layout (stride on the 3x3 convolution)."""
    layers: list[nn.Module] = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin, expansion = 64, 4 if bottleneck else 1
    for stage, (mid, count) in enumerate(zip((64, 128, 256, 512), blocks)):
        for i in range(count):
            stride, cout = (2 if stage and not i else 1), mid * expansion
            if bottleneck:
                body = nn.Sequential(
                    conv_bn(cin, mid, 1),
                    conv_bn(mid, mid, 3, stride),
                    conv_bn(mid, cout, 1, act=None),
                )
            else:
                body = nn.Sequential(conv_bn(cin, mid, 3, stride), conv_bn(mid, cout, 3, act=None))
            short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None
            layers.append(Residual(body, short))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


def resnet18() -> nn.Module:
    return _resnet((2, 2, 2, 2), bottleneck=False)


def resnet50() -> nn.Module:
    return _resnet((3, 4, 6, 3), bottleneck=True)


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (never below 90% of ``v``)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class SqueezeExcite(nn.Module):
    """``x * gate(fc2(act(fc1(mean(x)))))`` (Hu et al. 2018), 1x1 convolutions with bias."""

    def __init__(self, channels: int, squeeze: int, act=nn.ReLU, gate=nn.Hardsigmoid):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act = nn.Conv2d(channels, squeeze, 1), act()
        self.fc2, self.gate = nn.Conv2d(squeeze, channels, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's MBConv: expand, depthwise, optional SE, project."""

    def __init__(self, cin, expanded, cout, k, stride, act, se: nn.Module | None = None):
        super().__init__()
        layers = [conv_bn(cin, expanded, 1, act=act)] if expanded != cin else []
        layers.append(conv_bn(expanded, expanded, k, stride, groups=expanded, act=act))
        if se is not None:
            layers.append(se)
        layers.append(conv_bn(expanded, cout, 1, act=None))
        self.body, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2() -> nn.Module:
    """MobileNetV2 (Sandler et al. 2018), width 1.0."""
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)]
    cin = 32
    for t, c, n, s in (
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
        (6, 160, 3, 2), (6, 320, 1, 1),
    ):  # fmt: skip
        for i in range(n):
            layers.append(InvertedResidual(cin, cin * t, c, 3, s if i == 0 else 1, nn.ReLU6))
            cin = c
    layers += [conv_bn(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Dropout(0.2), nn.Linear(1280, 1000))


def mobilenet_v3_large() -> nn.Module:
    """MobileNetV3-Large (Howard et al. 2019): (kernel, expanded, out, SE, hard-swish, stride)."""
    layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)]
    cin = 16
    for k, exp, out, se, hs, s in (
        (3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
        (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2),
        (3, 200, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1),
        (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1), (5, 672, 160, 1, 1, 2),
        (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1),
    ):  # fmt: skip
        gate = SqueezeExcite(exp, make_divisible(exp // 4)) if se else None
        act = nn.Hardswish if hs else nn.ReLU
        layers.append(InvertedResidual(cin, exp, out, k, s, act, gate))
        cin = out
    layers += [conv_bn(cin, 960, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    head = [nn.Linear(960, 1280), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers, *head)


def efficientnet_b0() -> nn.Module:
    """EfficientNet-B0 (Tan and Le 2019): (expansion, kernel, stride, in, out, layers)."""
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.SiLU)]
    for t, k, s, cin, cout, n in (
        (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
    ):  # fmt: skip
        for i in range(n):
            c = cin if i == 0 else cout
            se = SqueezeExcite(c * t, max(1, c // 4), nn.SiLU, nn.Sigmoid)
            layers.append(InvertedResidual(c, c * t, cout, k, s if i == 0 else 1, nn.SiLU, se))
    layers += [conv_bn(320, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, nn.Dropout(0.2), nn.Linear(1280, 1000))


class Attention(nn.Module):
    """Multi-head self-attention: one q, k, v projection split three ways, SDPA, output
    projection (timm's ViT and Hugging Face's GPT-2 write it so)."""

    def __init__(self, dim: int, heads: int, causal: bool = False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (
            y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for y in self.qkv(x).split(d, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int, causal: bool, gelu: str):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, causal)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate=gelu), nn.Linear(hidden, dim)
        )

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2021): patches, a class token, learned positions, blocks, head."""

    def __init__(self, patch=16, dim=768, depth=12, heads=12, hidden=3072, size=224):
        super().__init__()
        self.patches = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, (size // patch) ** 2 + 1, dim))
        blocks = [TransformerBlock(dim, heads, hidden, False, "none") for _ in range(depth)]
        self.blocks, self.ln = nn.Sequential(*blocks), nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1000)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.ln(self.blocks(x))[:, 0])


def vit_b16() -> nn.Module:
    return VisionTransformer()


def gpt2_blocks() -> nn.Module:
    """GPT-2 small's 12 transformer blocks (768 wide, 12 heads), read from hidden states."""
    return nn.Sequential(*[TransformerBlock(768, 12, 3072, True, "tanh") for _ in range(12)])
