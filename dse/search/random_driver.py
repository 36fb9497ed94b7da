"""Random search: uniform samples of the space, in batches. The baseline every driver must beat."""

from __future__ import annotations

import numpy as np

from dse.registry import DRIVERS
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem


@DRIVERS.register("random")
class RandomSearch(Driver):
    """Uniform random sampling of the search space (warm-start designs are evaluated first)."""

    name = "random"

    def __init__(self, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        rng = np.random.default_rng(seed)
        warm = problem.warm_start_encodings()
        for start in range(0, len(warm), self.batch_size):
            if budget.exhausted(problem):
                return
            problem.evaluate(warm[start : start + min(self.batch_size, budget.remaining(problem))])
        while not budget.exhausted(problem):
            n = min(self.batch_size, budget.remaining(problem))
            problem.evaluate(problem.sample(rng, n))
