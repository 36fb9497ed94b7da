"""Synthetic regression targets for the few-shot proxies: labels a network learns to produce at
a stage's spatial size, made without data (GenNAS, dissertation 3.3.1 and figure 3.3; Eproxy,
4.2.2 item 2).

Signal bases (``channels`` 2-D maps each):

* ``sin1d_l`` / ``sin1d_m`` / ``sin1d_h``: ``sin(2 pi f x + phi)`` or ``sin(2 pi f y + phi)`` (equal
  odds) per channel, f uniform in the low (0, 0.125), medium (0.125, 0.375) or high (0.375, 0.5)
  band, in cycles per pixel; Eproxy calls them ``wave_l`` / ``wave_m`` / ``wave_h``;
* ``sin2d_l`` / ``sin2d_m`` / ``sin2d_h``: ``sin(2 pi f_x x + 2 pi f_y y + phi)``;
* ``dot``: Rademacher +-1 at a fraction ``density`` of the pixels of zeroed maps (GenNAS's Dot
  at k%); ``gdot``: the same smoothed by a Gaussian (sigma 1) and scaled to +-1;
* ``resize``: the input images resized to the stage's size;
* ``net``: the output of an untrained 6-layer CNN on the same images (Eproxy's default);
* ``zero``: all zeros (the degenerate task of table 3.1).

``local`` signals differ per image, ``global`` ones are the same for the whole batch (3.3.1);
sines default to global and dots to local, ``resize`` and ``net`` are per image by nature.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

BANDS = {"l": (0.0, 0.125), "m": (0.125, 0.375), "h": (0.375, 0.5)}
ALIASES = {"wave_l": "sin1d_l", "wave_m": "sin1d_m", "wave_h": "sin1d_h"}
SIGNALS = (
    "sin1d_l",
    "sin1d_m",
    "sin1d_h",
    "sin2d_l",
    "sin2d_m",
    "sin2d_h",
    "dot",
    "gdot",
    "resize",
    "net",
    "zero",
)
FEATURES = SIGNALS + tuple(ALIASES)


def _normalise(t: torch.Tensor) -> torch.Tensor:
    std = t.std()
    return (t - t.mean()) / std if std > 1e-8 else t - t.mean()


def untrained_cnn(
    images: torch.Tensor, channels: int, size: tuple[int, int], seed: int
) -> torch.Tensor:
    """Six 3x3 conv(-ReLU) layers, Kaiming-initialised from ``seed``, pooled to ``size``."""
    gen = torch.Generator().manual_seed(seed)
    x, c_in = images, images.shape[1]
    widths, strides = [32, 32, 64, 64, channels, channels], [1, 2, 1, 2, 1, 1]
    with torch.no_grad():
        for i, (w, s) in enumerate(zip(widths, strides)):
            weight = torch.randn(w, c_in, 3, 3, generator=gen) * math.sqrt(2.0 / (c_in * 9))
            x = F.conv2d(x, weight, stride=s, padding=1)
            x = F.relu(x) if i < len(widths) - 1 else x
            c_in = w
        return F.adaptive_avg_pool2d(x, size)


def sines(
    maps: int, size: tuple[int, int], band: tuple[float, float], seed: int, two_d: bool
) -> torch.Tensor:
    """``maps`` sine maps (Sin1D along x or y, or Sin2D), shape (maps, h, w)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    x = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    lo, hi = band
    f = lo + (hi - lo) * torch.rand(maps, 2, generator=gen)
    phase = 2 * math.pi * torch.rand(maps, generator=gen)
    along_x = torch.rand(maps, generator=gen) < 0.5
    out = []
    for k in range(maps):
        if two_d:
            arg = 2 * math.pi * (f[k, 0] * x + f[k, 1] * y)
        else:
            arg = 2 * math.pi * f[k, 0] * (x if along_x[k] else y)
        out.append(torch.sin(arg + phase[k]))
    return torch.stack(out)


def dots(
    shape: tuple[int, ...], seed: int, density: float = 1.0, smooth: bool = False
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    d = torch.randint(0, 2, shape, generator=gen).float() * 2 - 1
    if density < 1.0:
        d = d * (torch.rand(shape, generator=gen) < density).float()
    if smooth:  # GDot: Gaussian filter, sigma 1 (5x5), then scaled to +-1
        r = torch.arange(-2, 3, dtype=torch.float32)
        g = torch.exp(-(r**2) / 2)
        kernel = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
        flat = d.reshape(-1, 1, *shape[-2:])
        d = F.conv2d(flat, kernel, padding=2).reshape(shape)
        d = d / d.abs().amax().clamp_min(1e-8)
    return d


def signal(
    kind: str,
    images: torch.Tensor,
    channels: int,
    size: tuple[int, int],
    seed: int,
    density: float = 1.0,
    local: bool | None = None,
) -> torch.Tensor:
    """One signal basis as a (batch, channels, h, w) tensor (see the module docstring)."""
    kind = ALIASES.get(kind, kind)
    if kind not in SIGNALS:
        raise ValueError(f"features: {[kind]} not allowed; allowed values: {list(FEATURES)}")
    n = images.shape[0]
    if kind == "net":
        return untrained_cnn(images, channels, size, seed)
    if kind == "resize":
        r = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        return r.repeat(1, math.ceil(channels / images.shape[1]), 1, 1)[:, :channels]
    if kind == "zero":
        return torch.zeros(n, channels, *size)
    if kind in ("dot", "gdot"):
        local = True if local is None else local
        shape = (n if local else 1, channels, *size)
        return dots(shape, seed, density, smooth=kind == "gdot").expand(n, channels, *size).clone()
    local = False if local is None else local
    two_d, band = kind.startswith("sin2d"), BANDS[kind[-1]]
    if local:
        return torch.stack(
            [sines(channels, size, band, seed + 104729 * i, two_d) for i in range(n)]
        )
    return sines(channels, size, band, seed, two_d)[None].expand(n, channels, *size).clone()


def make_targets(
    features: tuple[str, ...],
    images: torch.Tensor,
    channels: int,
    size: tuple[int, int],
    seed: int,
    scale: float = 1.0,
    density: float = 1.0,
    combine: str = "concat",
) -> torch.Tensor:
    """The feature groups, each normalised, concatenated along channels (Eproxy) or summed
    (``combine = "sum"``, GenNAS's combinations), times ``scale``."""
    unknown = [f for f in features if ALIASES.get(f, f) not in SIGNALS]
    if unknown or not features:
        raise ValueError(
            f"features: {unknown or '[]'} not allowed; allowed values: {list(FEATURES)}"
        )
    groups = [
        _normalise(signal(f, images, channels, size, seed + 7919 * i, density))
        for i, f in enumerate(features)
    ]
    combined = torch.cat(groups, dim=1) if combine == "concat" else torch.stack(groups).sum(0)
    return scale * combined


INITS = ("default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")


def initialise(module: nn.Module, scheme: str, gen: torch.Generator | None = None) -> None:
    """Re-initialise conv and linear weights: ``kaiming_normal``, ``kaiming_uniform``,
    ``xavier_normal`` or ``xavier_uniform`` (biases to zero); ``default`` keeps torch's."""
    if scheme == "default":
        return
    fns: dict[str, Callable] = {
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen),
        "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(
            w, nonlinearity="relu", generator=gen
        ),
        "xavier_normal": lambda w: nn.init.xavier_normal_(w, generator=gen),
        "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, generator=gen),
    }
    if scheme not in fns:
        raise ValueError(f"init: {scheme!r} is not allowed; allowed values: {list(INITS)}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fns[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
