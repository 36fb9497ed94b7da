"""Building blocks shared by the spaces and the reference networks (zoo)."""

from __future__ import annotations

from dse.graph import GraphBuilder


def conv_bn_act(
    b: GraphBuilder,
    x: int,
    channels: int,
    kernel: int = 1,
    stride: int = 1,
    *,
    act: str | None = "relu",
    groups: int = 1,
    bits: int | None = None,
) -> int:
    """conv -> batch norm -> activation (``act=None`` for a linear projection)."""
    wb = {"weight_bits": bits} if bits else {}
    y = b.conv(x, channels, kernel, stride, groups=groups, **wb)
    y = b.norm(y, "batch", **wb)
    return b.act(y, act) if act else y


def relu_conv_bn(
    b: GraphBuilder, x: int, channels: int, kernel: int = 1, stride: int = 1, norm: str = "batch"
) -> int:
    """ReLU -> conv -> batch norm: the cell edge op of NAS-Bench-201, DARTS and TransNAS-Bench
    (``norm="batch_stats"``: a norm without affine weights)."""
    return b.norm(b.conv(b.act(x, "relu"), channels, kernel, stride), norm)


def factorized_reduce(
    b: GraphBuilder, x: int, channels: int, stride: int = 2, norm: str = "batch"
) -> int:
    """DARTS' factorised reduce: ReLU, two strided 1x1 convs to half the channels each (the
    second on the input shifted by one pixel, which changes no shape or cost), concatenated,
    batch norm. The skip op of a reducing edge in DARTS and TransNAS-Bench-101."""
    y = b.act(x, "relu")
    half = channels // 2
    first = b.conv(y, half, 1, stride, padding=0)
    second = b.conv(y, channels - half, 1, stride, padding=0)
    return b.norm(b.concat(first, second), norm)


def dw_bn_act(
    b: GraphBuilder,
    x: int,
    kernel: int,
    stride: int,
    *,
    act: str | None = "relu",
    bits: int | None = None,
) -> int:
    """depthwise conv -> batch norm -> activation."""
    wb = {"weight_bits": bits} if bits else {}
    y = b.dwconv(x, kernel, stride, **wb)
    y = b.norm(y, "batch", **wb)
    return b.act(y, act) if act else y


def squeeze_excite(
    b: GraphBuilder,
    x: int,
    reduced: int,
    *,
    act: str = "relu",
    gate: str = "sigmoid",
    bits: int | None = None,
) -> int:
    """Squeeze-and-excitation: global pool, 1x1 reduce (bias) + act, 1x1 expand (bias) + gate,
    channel-wise product with the input."""
    wb = {"weight_bits": bits} if bits else {}
    channels = b.shape(x)[0]
    s = b.pool(x, "global_avg")
    s = b.act(b.conv(s, reduced, 1, bias=True, **wb), act)
    s = b.act(b.conv(s, channels, 1, bias=True, **wb), gate)
    return b.mul(x, s)


def mbconv(
    b: GraphBuilder,
    x: int,
    out_channels: int,
    kernel: int,
    stride: int,
    expansion: float,
    *,
    act: str = "relu6",
    se_reduced: int = 0,
    residual: bool = True,
    bits: int | None = None,
) -> int:
    """Mobile inverted bottleneck (MBConv, Sandler et al. 2018; Tan et al. 2019):
    conv1x1 expand -> dwconv kxk -> [squeeze-excite] -> conv1x1 project, with an identity
    shortcut when the shape is kept. ``expansion == 1`` skips the expand conv."""
    cin = b.shape(x)[0]
    mid = int(round(cin * expansion))
    y = conv_bn_act(b, x, mid, 1, act=act, bits=bits) if expansion != 1 else x
    y = dw_bn_act(b, y, kernel, stride, act=act, bits=bits)
    if se_reduced:
        y = squeeze_excite(b, y, se_reduced, bits=bits)
    y = conv_bn_act(b, y, out_channels, 1, act=None, bits=bits)
    if residual and stride == 1 and cin == out_channels:
        y = b.sum(x, y)
    return y
