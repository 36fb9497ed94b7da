"""Shared timing helper for the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import statistics
import time


def rate(fn, items, repeats: int) -> tuple[float, float]:
    """(best, median) items/s over ``repeats`` passes. As with ``timeit``, the best pass bounds
    what the code itself can do; slower passes are mostly interference from other work."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for x in items:
            fn(x)
        rates.append(len(items) / (time.perf_counter() - t))
    return max(rates), statistics.median(rates)
