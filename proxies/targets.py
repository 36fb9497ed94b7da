"""Synthetic regression targets for the few-shot proxies (GenNAS, dissertation 3.3.1; Eproxy,
4.2.2 item 2): labels a network learns to produce at a stage's spatial size, made without data.

* ``net``: the output of an untrained 6-layer CNN on the same images (a tiny distillation from an
  untrained teacher);
* ``wave_l`` / ``wave_m`` / ``wave_h``: ``sin(2 pi f x + phi)`` or ``sin(2 pi f y + phi)`` (equal
  odds) per channel, with frequency f in (0, 0.125), (0.125, 0.375) or (0.375, 0.5) cycles per
  pixel;
* ``wave2d``: a product of a horizontal and a vertical sine (GenNAS's Sin2D), medium frequency;
* ``dot``: Rademacher +-1 values at a fraction ``density`` of positions, 0 elsewhere (GenNAS's
  Dot at k%; 1.0 is Eproxy's dot);
* ``resize``: the input images resized to the stage's size (GenNAS's Resize).

Each group is normalised to zero mean and unit variance, so combinations weigh their parts equally.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

FEATURES = ("net", "wave_l", "wave_m", "wave_h", "wave2d", "dot", "resize")
WAVE_BANDS = {"wave_l": (0.0, 0.125), "wave_m": (0.125, 0.375), "wave_h": (0.375, 0.5)}


def _normalise(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean()) / t.std().clamp_min(1e-8)


def untrained_cnn(images: torch.Tensor, channels: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Six 3x3 conv-ReLU layers, Kaiming-initialised from ``seed``, then resized to ``size``."""
    gen = torch.Generator().manual_seed(seed)
    x = images
    c_in = images.shape[1]
    widths = [32, 32, 64, 64, channels, channels]
    strides = [1, 2, 1, 2, 1, 1]
    with torch.no_grad():
        for i, (w, s) in enumerate(zip(widths, strides)):
            weight = torch.randn(w, c_in, 3, 3, generator=gen) * math.sqrt(2.0 / (c_in * 9))
            x = F.conv2d(x, weight, stride=s, padding=1)
            if i < len(widths) - 1:
                x = F.relu(x)
            c_in = w
        return F.adaptive_avg_pool2d(x, size)


def waves(n: int, channels: int, size: tuple[int, int], band: tuple[float, float], seed: int,
          two_d: bool = False) -> torch.Tensor:
    """Per-channel sines along x or y (or their product with ``two_d``), same for every image."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    x = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    out = []
    for _ in range(channels):
        f1, f2 = band[0] + (band[1] - band[0]) * torch.rand(2, generator=gen)
        p1, p2 = 2 * math.pi * torch.rand(2, generator=gen)
        horizontal = torch.rand(1, generator=gen).item() < 0.5
        a = torch.sin(2 * math.pi * f1 * (x if horizontal else y) + p1)
        out.append(a * torch.sin(2 * math.pi * f2 * (y if horizontal else x) + p2) if two_d else a)
    return torch.stack(out)[None].expand(n, channels, h, w).clone()


def dots(n: int, channels: int, size: tuple[int, int], seed: int, density: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (n, channels, *size), generator=gen).float() * 2 - 1
    if density < 1.0:
        signs = signs * (torch.rand((n, channels, *size), generator=gen) < density).float()
    return signs


def make_targets(features: tuple[str, ...], images: torch.Tensor, channels: int, size: tuple[int, int],
                 seed: int, scale: float = 1.0, density: float = 1.0) -> torch.Tensor:
    """The concatenation of ``channels`` channels per feature group, each normalised, times ``scale``."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise ValueError(f"features: {unknown or '[]'} not allowed; allowed values: {list(FEATURES)}")
    n = images.shape[0]
    makers: dict[str, Callable[[int], torch.Tensor]] = {
        "net": lambda s: untrained_cnn(images, channels, size, s),
        "wave2d": lambda s: waves(n, channels, size, WAVE_BANDS["wave_m"], s, two_d=True),
        "dot": lambda s: dots(n, channels, size, s, density),
        "resize": lambda s: F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        .repeat(1, math.ceil(channels / images.shape[1]), 1, 1)[:, :channels],
        **{k: (lambda s, band=band: waves(n, channels, size, band, s)) for k, band in WAVE_BANDS.items()},
    }
    groups = [_normalise(makers[f](seed + 7919 * i)) for i, f in enumerate(features)]
    return scale * torch.cat(groups, dim=1)


def initialise(module: nn.Module, scheme: str, gen: torch.Generator | None = None) -> None:
    """Re-initialise conv and linear weights: ``kaiming_normal``, ``kaiming_uniform``,
    ``xavier_normal`` or ``xavier_uniform`` (biases to zero); ``default`` keeps torch's."""
    if scheme == "default":
        return
    fns = {"kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen),
           "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=gen),
           "xavier_normal": lambda w: nn.init.xavier_normal_(w, generator=gen),
           "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, generator=gen)}
    if scheme not in fns:
        raise ValueError(f"init: {scheme!r} is not allowed; allowed values: {['default', *fns]}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fns[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


INITS = ("default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")
