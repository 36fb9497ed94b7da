"""Torch layers of the IR's sequence op kinds (``dse.graph.sequence_ops``), SGConv first.

* :class:`SGConv` (dissertation 5.3.2): per channel ``N = ceil(log2(L / d)) + 1`` parameter
  vectors ``w_i`` of ``d`` values; eq. 5.1 makes the kernel ``1/Z [k_0, ..., k_{N-1}]`` with
  ``k_i = alpha^i Upsample_{2^max(i-1,0) d}(w_i)`` (linear interpolation, ``F.interpolate``),
  truncated to L; eq. 5.2 (``decay="power"``) drops ``alpha^i`` and multiplies the truncated
  kernel by ``1/pos^t``, pos = 1..L. ``Z`` is each channel's kernel norm at initialisation, then
  fixed (a buffer), so the kernel starts at unit norm: the norm of the whole concatenation for
  eq. 5.1 (listing 5.1 takes it before truncating), of the truncated, decayed kernel for eq. 5.2.
  The convolution is listing 5.1's FFT product of length 2L; bidirectional adds a second kernel
  over the reversed direction (S4's convention: the two, zero-padded to 2L, form one kernel).
  ``D * x`` is the skip term. Parameters: ``k C N d + C`` (k = 2 when bidirectional).
* :func:`fft_conv` and :func:`direct_conv` (the reference it is tested against).
* :func:`prune_sgconv`: kernel pruning after training (5.4.3, fig. 5.10), by magnitude or by
  truncating the tail, as masks on a copy of the trained model.
* :class:`Attention`, :class:`Position`, :class:`SeqPool`: the other sequence kinds.

Tensors are ``(batch, L, C)`` as in the IR; the convolution runs on ``(batch, C, L)``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from dse.graph.sequence_ops import fft_size, sgconv_scales


def fft_conv(x: torch.Tensor, k: torch.Tensor, bidirectional: bool = False) -> torch.Tensor:
    """Depth-wise convolution of ``x`` (B, C, L) with per-channel kernels by FFT (listing 5.1).

    Causal: ``k`` (C, L), ``y[t] = sum_{s <= t} k[s] x[t - s]``. Bidirectional: ``k`` (2C, L),
    the first C the causal kernels, the last C weighting the future, ``+ sum_{u >= 1}
    k_b[u - 1] x[t + u]``."""
    length = x.shape[-1]
    n = fft_size(length)
    if bidirectional:
        forward, backward = k.chunk(2, dim=0)
        k = F.pad(forward, (0, length)) + F.pad(backward.flip(-1), (length, 0))
    spectrum = torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n)
    return torch.fft.irfft(spectrum, n=n)[..., :length]


def direct_conv(x: torch.Tensor, k: torch.Tensor, bidirectional: bool = False) -> torch.Tensor:
    """What :func:`fft_conv` computes, as sums over shifts (O(L^2); for tests)."""
    length = x.shape[-1]
    forward, backward = k.chunk(2, dim=0) if bidirectional else (k, None)
    y = torch.zeros_like(x)
    for s in range(length):
        y[..., s:] += forward[:, s : s + 1] * x[..., : length - s]
        if backward is not None and s + 1 < length:
            y[..., : length - s - 1] += backward[:, s : s + 1] * x[..., s + 1 :]
    return y


class SGConv(nn.Module):
    """SGConv's global convolution over (batch, L, C); see the module docstring."""

    def __init__(
        self,
        channels: int,
        length: int,
        d: int,
        bidirectional: bool = False,
        decay: str = "alpha",
        rate: float = 0.5,
        skip: bool = True,
        prune: float = 0.0,
        prune_method: str = "magnitude",
    ):
        super().__init__()
        if decay not in ("alpha", "power"):
            raise ValueError(f"decay: {decay!r} is not allowed; allowed values: ['alpha', 'power']")
        self.channels, self.length, self.d = channels, length, d
        self.bidirectional, self.decay, self.rate = bidirectional, decay, float(rate)
        self.prune, self.prune_method = float(prune), prune_method  # applied by prune_sgconv
        rows = 2 * channels if bidirectional else channels
        n_scales = sgconv_scales(length, d)
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(rows, d)) for _ in range(n_scales))
        self.D = nn.Parameter(torch.randn(channels)) if skip else None
        positions = torch.arange(1, length + 1, dtype=torch.float32)
        self.register_buffer("position_decay", positions ** (-self.rate), persistent=False)
        with torch.no_grad():
            raw = self._concatenated()
            if decay == "power":
                raw = raw[:, :length] * self.position_decay
        self.register_buffer("z", raw.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        self.register_buffer("mask", torch.ones(rows, length))

    def _concatenated(self) -> torch.Tensor:
        """[k_0, ..., k_{N-1}] before normalisation and truncation, (rows, 2^(N-1) d)."""
        parts = []
        for i, w in enumerate(self.weights):
            size = 2 ** max(i - 1, 0) * self.d
            part = F.interpolate(w[None], size=size, mode="linear")[0] if size != self.d else w
            parts.append(part * self.rate**i if self.decay == "alpha" else part)
        return torch.cat(parts, dim=-1)

    def kernel(self) -> torch.Tensor:
        """The convolution kernel, (rows, L): eq. 5.1 or 5.2, normalised by the fixed Z, with
        the pruning mask applied."""
        k = self._concatenated()
        if self.decay == "alpha":
            k = (k / self.z)[:, : self.length]
        else:
            k = k[:, : self.length] * self.position_decay.to(k.dtype) / self.z
        return k * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)  # (B, C, L)
        y = fft_conv(u, self.kernel().to(u.dtype), self.bidirectional)
        if self.D is not None:
            y = y + u * self.D[:, None].to(u.dtype)
        return y.transpose(1, 2)


def prune_sgconv(model: nn.Module, ratio: float | None = None, method: str | None = None):
    """A copy of trained ``model`` with every :class:`SGConv` kernel pruned: ``magnitude``
    zeroes the ``ratio`` share of its entries with the smallest absolute value (over the layer),
    ``tail`` the last ``ratio`` share of positions (fig. 5.9's decay puts little weight there).
    ``ratio``/``method`` default to each layer's own (the IR's ``prune`` options)."""
    pruned = copy.deepcopy(model)
    for layer in pruned.modules():
        if not isinstance(layer, SGConv):
            continue
        r = layer.prune if ratio is None else float(ratio)
        how = layer.prune_method if method is None else method
        if not 0.0 <= r < 1.0:
            raise ValueError(f"ratio: must be in [0, 1), got {r}")
        with torch.no_grad():
            layer.mask.fill_(1.0)
            if r == 0:
                continue
            if how == "tail":
                keep = max(1, math.ceil(layer.length * (1 - r)))
                layer.mask[:, keep:] = 0.0
            elif how == "magnitude":
                k = layer.kernel().abs().flatten()
                drop = int(round(r * k.numel()))
                if drop:
                    layer.mask.view(-1)[torch.argsort(k)[:drop]] = 0.0
            else:
                raise ValueError(
                    f"method: {how!r} is not allowed; allowed values: ['magnitude', 'tail']"
                )
    return pruned


class Attention(nn.Module):
    """Softmax attention over packed (batch, L, 3C) queries, keys, values; (batch, L, C) out.
    Causal masks the future; a window > 0 keeps the last ``window`` keys (causal) or those
    within ``window // 2`` either side. Computed by ``F.scaled_dot_product_attention`` (a fused
    kernel that never stores the (L, L) scores on a CPU: about 5x faster to train at L = 512
    than softmax over explicit scores, equal to it within float rounding; see ``allowed``)."""

    def __init__(self, heads: int, window: int = 0, causal: bool = True):
        super().__init__()
        self.heads, self.window, self.causal = heads, window, causal

    def allowed(self, length: int) -> torch.Tensor | None:
        """The (L, L) mask of keys each query sees (True: seen); None when it sees every key."""
        if not self.causal and self.window <= 0:
            return None
        i = torch.arange(length)[:, None]
        j = torch.arange(length)[None, :]
        if not self.causal:
            return (j - i).abs() <= self.window // 2
        keep = j <= i
        return keep & (j > i - self.window) if self.window > 0 else keep

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        b, length, packed = qkv.shape
        c = packed // 3
        q, k, v = qkv.view(b, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.causal and self.window <= 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed(length))
        return y.transpose(1, 2).reshape(b, length, c)


class Position(nn.Module):
    """Adds a learned embedding per position."""

    def __init__(self, length: int, channels: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(length, channels) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding.to(x.dtype)


class SeqPool(nn.Module):
    """(batch, L, C) to (batch, C): mean, max or last position."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=1)
        if self.mode == "max":
            return x.amax(dim=1)
        return x[:, -1]
