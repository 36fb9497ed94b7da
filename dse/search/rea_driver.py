"""Regularised evolution (REA; Real et al. 2019, the search of dissertation sections 3.4.4 and
4.2.3): an ageing population, tournament selection, one-gene mutation.

Start with ``population_size`` random designs (warm-start designs first); then, repeatedly, draw
``sample_size`` members of the population at random, mutate the tournament's winner, evaluate
the child, add it to the population and remove the *oldest* member. Ageing instead of removing
the worst keeps the search from clinging to one lucky evaluation.

Multi-objective tournaments: a feasible member beats an infeasible one, smaller total violation
beats larger; among feasible members the winner is drawn uniformly from the tournament's
non-dominated ones (with one objective that is simply the best). ``batch_size`` children are
bred from the same population before it ages, so a batch evaluates together (on a Dask pool,
for instance); ``batch_size = 1`` is the textbook algorithm. A child that was evaluated before is
re-drawn up to ``retries`` times (its record would only repeat), so the budget buys new designs.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from dse.registry import DRIVERS
from dse.results.pareto import nondominated_mask
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem


def tournament_winner(F: np.ndarray, G: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the winner among candidates with minimised objectives F and constraints G (<= 0
    ok)."""
    violation = np.clip(G, 0, None).sum(axis=1)
    best = np.flatnonzero(violation == violation.min())
    if violation.min() > 0:
        return int(rng.choice(best))
    front = best[nondominated_mask(F[best])]
    return int(rng.choice(front if len(front) else best))


@DRIVERS.register("rea")
class RegularizedEvolution(Driver):
    """Regularised (ageing) evolution with tournament selection; population 50, sample 10."""

    name = "rea"

    def __init__(
        self,
        population_size: int = 50,
        sample_size: int = 10,
        batch_size: int = 1,
        retries: int = 10,
    ):
        if population_size < 2:
            raise ValueError(f"population_size: must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size: must be in 1..population_size ({population_size}), got {sample_size}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.batch_size = batch_size
        if retries < 0:
            raise ValueError(f"retries: must be >= 0, got {retries}")
        self.retries = retries

    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        rng = np.random.default_rng(seed)
        population: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = (
            deque()
        )  # (genes, F, G), oldest left
        warm = problem.warm_start_encodings(self.population_size)
        initial = (
            np.vstack([warm, problem.sample(rng, self.population_size - len(warm))])
            if len(warm)
            else problem.sample(rng, self.population_size)
        )
        for start in range(
            0, len(initial), max(self.batch_size, 10)
        ):  # the initial population, in chunks
            if budget.exhausted(problem):
                return
            X = problem.space.repair_encodings(
                initial[start : start + min(max(self.batch_size, 10), budget.remaining(problem))]
            )
            F, G = problem.evaluate(X)
            population.extend(zip(X, F, G))
        while not budget.exhausted(problem):
            n = min(self.batch_size, budget.remaining(problem))
            members = list(population)
            children = []
            for _ in range(n):
                pick = rng.choice(
                    len(members), size=min(self.sample_size, len(members)), replace=False
                )
                F = np.array([members[i][1] for i in pick])
                G = np.array([members[i][2] for i in pick])
                parent = members[pick[tournament_winner(F, G, rng)]][0]
                child = problem.space.mutate_encoding(parent, rng)
                for _ in range(self.retries):  # prefer a child not evaluated yet
                    if not problem.is_known(child):
                        break
                    child = problem.space.mutate_encoding(parent, rng)
                children.append(child)
            X = problem.space.repair_encodings(np.array(children))
            F, G = problem.evaluate(X)
            population.extend(zip(X, F, G))
            while len(population) > self.population_size:
                population.popleft()
