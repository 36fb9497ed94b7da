"""Learning-rate schedules shared by the training loops (sequence tasks, the Medusa LM)."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    opt: torch.optim.Optimizer, steps: int, warmup: int, floor: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``floor`` of the peak rate at
    step ``steps`` (and held there after it)."""

    def scale(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, scale)
