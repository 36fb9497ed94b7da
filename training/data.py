"""One batch of input data for proxies, without network access.

Real images come from the two photographs scikit-learn ships (``china.jpg``, ``flower.jpg``, 427 x
640 RGB): random square crops of 32-320 pixels, resized to the network's resolution with
antialiasing and normalised per channel, deterministic from the seed. ``synthetic`` data is
standard normal noise. Labels are uniform over the network's classes (proxies that use labels
only need them to be fixed per batch). Nothing is ever downloaded.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

SOURCES = ("images", "synthetic")


@lru_cache(maxsize=1)
def _photographs() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(
        torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float() / 255.0
        for img in load_sample_images().images
    )


def image_batch(
    n: int, shape: tuple[int, ...], seed: int = 0, source: str = "images"
) -> torch.Tensor:
    """``n`` inputs of per-sample ``shape`` (C, H, W)."""
    if source not in SOURCES:
        raise ValueError(f"data: {source!r} is not allowed; allowed values: {list(SOURCES)}")
    if n < 1:
        raise ValueError(f"batch_size: must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(seed)
    if source == "synthetic" or len(shape) != 3:
        return torch.randn((n, *shape), generator=gen)
    c, h, w = shape
    photos = _photographs()
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        img = photos[rng.integers(len(photos))]
        side = int(rng.integers(32, min(img.shape[1], img.shape[2], 320) + 1))
        y, x = rng.integers(0, img.shape[1] - side + 1), rng.integers(0, img.shape[2] - side + 1)
        crop = img[:, y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop.flip(2)
        crops.append(
            F.interpolate(
                crop[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False
            )[0]
        )
    batch = torch.stack(crops)
    batch = (batch - batch.mean(dim=(0, 2, 3), keepdim=True)) / batch.std(
        dim=(0, 2, 3), keepdim=True
    ).clamp_min(1e-6)
    if c != 3:  # grey or more channels: average, then repeat
        batch = batch.mean(dim=1, keepdim=True).repeat(1, c, 1, 1)
    return batch


def labels(n: int, classes: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, max(classes, 1), (n,), generator=gen)
