"""Real images on a CPU: scikit-learn's handwritten digits, shipped with the package.

1,797 8x8 grey-level digits (0-16), scaled to [0, 1], upsampled bilinearly to ``resolution``
and normalised by the training split's mean and standard deviation. The split is seeded:
``train`` for weights, ``val`` for architecture decisions (EDD's eq. 2.1 on the validation set,
section 2.3), ``test`` only for a trained network's reported accuracy (``trained_accuracy``).
Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, 1, resolution, resolution)
    y: torch.Tensor  # (n,) class indices

    def batches(self, size: int, generator: torch.Generator | None = None):
        """Mini-batches in a seeded random order (all of them, the last one smaller)."""
        order = torch.randperm(len(self.y), generator=generator)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            yield self.x[idx], self.y[idx]


@dataclass(frozen=True)
class Digits:
    train: Split
    val: Split
    test: Split
    num_classes: int = 10
    in_channels: int = 1


def load_digits(
    resolution: int = 32, seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)
) -> Digits:
    """The digits at ``resolution`` x ``resolution``, split train/val/test by ``fractions``."""
    from sklearn.datasets import load_digits as sk_digits

    if resolution < 8:
        raise ValueError(f"resolution: must be >= 8 (the images are 8x8), got {resolution}")
    data = sk_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    y = torch.tensor(data.target, dtype=torch.long)
    order = np.random.default_rng(seed).permutation(len(y))
    n_train = int(round(fractions[0] * len(y)))
    n_val = int(round(fractions[1] * len(y)))
    parts = np.split(order, [n_train, n_train + n_val])
    mean, std = x[parts[0]].mean(), x[parts[0]].std()
    x = (x - mean) / std
    train, val, test = (Split(x[p], y[p]) for p in parts)
    return Digits(train, val, test)
