"""Shared helpers for the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

#: the repository's reference tables (data/README.md gives each file's source)
DATA = Path(__file__).resolve().parents[1] / "data"


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


def population_rate(fn, population, repeats: int) -> tuple[float, float]:
    """(best, median) items/s of ``fn(population)`` costing the whole population in one call."""
    best, median = rate(fn, [population], repeats)
    return best * len(population), median * len(population)


def sample_graphs(space, n: int, seed: int = 0) -> list:
    """``n`` graphs of uniformly sampled architectures, built before any timing."""
    rng = np.random.default_rng(seed)
    return [space.to_graph(space.sample(rng)) for _ in range(n)]
