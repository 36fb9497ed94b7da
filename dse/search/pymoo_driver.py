"""Multi-objective evolutionary search with pymoo (NSGA-II by default, NSGA-III, AGE-MOEA).

Genes are category indices, so the operators are the categorical ones: uniform integer sampling,
uniform crossover (each gene from either parent) and a mutation that moves a gene to a
*different* category with probability 1/n_var. The loop is pymoo's ask/tell interface, so
the budget is honoured exactly and every batch streams through :class:`SearchProblem` to disk.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import cast

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2  # the default: imported with the driver (0.14 s)
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.ux import UX
from pymoo.operators.sampling.rnd import IntegerRandomSampling

from dse.registry import DRIVERS, Registry
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem


class CategoricalMutation(Mutation):
    """Each gene, with probability ``prob_var`` (default 1/n_var), jumps to another category."""

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.asarray(X, dtype=np.int64).copy()
        high = np.asarray(problem.xu, dtype=np.int64) + 1
        prob = self.get_prob_var(problem, size=len(X))
        prob = np.broadcast_to(np.asarray(prob, dtype=float).reshape(-1, 1), X.shape)
        hit = (random_state.random(X.shape) < prob) & (high > 1)
        shift = random_state.integers(1, np.maximum(high, 2), size=X.shape)
        X[hit] = ((X + shift) % high)[hit]
        return X


class GeneDuplicateElimination(DuplicateElimination):
    """pymoo's default duplicate elimination for integer genes, by hashing each gene row
    instead of computing every pairwise distance: an offspring is a duplicate when its genes
    equal an earlier offspring's or any of another population's (the default's verdicts at
    its epsilon of 1e-16), in linear time. NAS spaces are small enough that a converging
    population mates many times per generation to find new offspring, which made the
    quadratic distances the largest share of the driver's time."""

    def _do(self, pop, other, is_duplicate):
        rows = _gene_rows(pop.get("X"))
        if other is None:
            seen: set[bytes] = set()
            for i, row in enumerate(rows):
                if row in seen:
                    is_duplicate[i] = True
                else:
                    seen.add(row)
        else:
            known = set(_gene_rows(other.get("X")))
            for i, row in enumerate(rows):
                if row in known:
                    is_duplicate[i] = True
        return is_duplicate


def _gene_rows(X) -> list[bytes]:
    """Each gene row as bytes (genes are integers; pymoo may hold them as floats)."""
    A = np.ascontiguousarray(np.rint(np.asarray(X, dtype=float)).astype(np.int64))
    if A.ndim != 2 or A.shape[1] == 0:
        return [b""] * len(A)
    rows = A.view(np.dtype((np.void, A.itemsize * A.shape[1]))).ravel().tolist()
    return cast(list[bytes], rows)  # a void array's items are bytes


class SpaceRepair(Repair):
    """Genes replaced by those of the architecture they decode to (a restricted space projects
    them onto its listed designs), so the population holds what was evaluated."""

    def _do(self, problem, X, **kwargs):
        return problem.problem.space.repair_encodings(np.rint(X).astype(np.int64))


class _PymooProblem(Problem):
    """pymoo's view of a :class:`SearchProblem`."""

    def __init__(self, problem: SearchProblem):
        super().__init__(
            n_var=problem.n_var,
            n_obj=problem.n_obj,
            n_ieq_constr=problem.n_constr,
            xl=np.zeros(problem.n_var),
            xu=problem.upper.astype(float),
            vtype=int,
        )
        self.problem = problem

    def _evaluate(self, X, out, *args, **kwargs):
        F, G = self.problem.evaluate(np.rint(X).astype(np.int64))
        out["F"] = F
        out["G"] = G


#: algorithm name -> factory(pop_size, n_obj, seed, **operators); ``ALGORITHMS.register`` adds more
ALGORITHMS: Registry[Callable] = Registry("pymoo algorithm")


@ALGORITHMS.register("nsga2")
def _nsga2(pop_size: int, n_obj: int, seed: int, **ops):
    return NSGA2(pop_size=pop_size, **ops)


@ALGORITHMS.register("nsga3")
def _nsga3(pop_size: int, n_obj: int, seed: int, **ops):
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    ref_dirs = get_reference_directions("energy", n_obj, pop_size, seed=seed)
    return NSGA3(ref_dirs=ref_dirs, pop_size=pop_size, **ops)


@ALGORITHMS.register("agemoea")
def _agemoea(pop_size: int, n_obj: int, seed: int, **ops):
    from pymoo.algorithms.moo.age import AGEMOEA

    return AGEMOEA(pop_size=pop_size, **ops)


@DRIVERS.register("pymoo")
class PymooDriver(Driver):
    """pymoo genetic algorithms (nsga2, nsga3, agemoea) with categorical operators."""

    name = "pymoo"

    def __init__(
        self,
        algorithm: str = "nsga2",
        pop_size: int = 32,
        crossover_prob: float = 0.9,
        mutation_prob_var: float | None = None,
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm: {algorithm!r} is not allowed; allowed values: {ALGORITHMS.names()}"
            )
        if algorithm == "agemoea" and importlib.util.find_spec("numba") is None:
            raise ValueError(
                "algorithm: 'agemoea' needs numba; install it with pip install 'dse[agemoea]'"
            )
        if pop_size < 2:
            raise ValueError(f"pop_size: must be >= 2, got {pop_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob: must be in [0, 1], got {crossover_prob}")
        if mutation_prob_var is not None and not 0.0 < mutation_prob_var <= 1.0:
            raise ValueError(f"mutation_prob_var: must be in (0, 1], got {mutation_prob_var}")
        self.algorithm = algorithm
        self.pop_size = pop_size
        self.crossover_prob = crossover_prob
        self.mutation_prob_var = mutation_prob_var

    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        pproblem = _PymooProblem(problem)
        warm = problem.warm_start_encodings(self.pop_size)
        if len(warm):  # the first population: the warm designs, topped up with random ones
            fill = problem.sample(np.random.default_rng(seed), self.pop_size - len(warm))
            sampling = np.vstack([warm, fill]) if len(fill) else warm
        else:
            sampling = IntegerRandomSampling()
        algo = ALGORITHMS[self.algorithm](
            self.pop_size,
            problem.n_obj,
            seed,
            sampling=sampling,
            repair=SpaceRepair(),
            crossover=UX(prob=self.crossover_prob),
            mutation=CategoricalMutation(prob_var=self.mutation_prob_var),
            eliminate_duplicates=GeneDuplicateElimination(),
        )
        algo.setup(pproblem, seed=seed, verbose=False)
        while not budget.exhausted(problem) and algo.has_next():
            pop = algo.ask()
            if pop is None or len(pop) == 0:
                break
            remaining = budget.remaining(problem)
            if len(pop) > remaining:
                pop = pop[:remaining]
            algo.evaluator.eval(pproblem, pop, algorithm=algo)
            algo.tell(infills=pop)
