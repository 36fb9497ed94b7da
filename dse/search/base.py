"""The search-driver protocol and the budget every driver honours."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from dse.search.problem import SearchProblem


@dataclass
class Budget:
    """Stop after ``max_evaluations`` proposals or ``max_seconds`` of wall time, whichever first.

    Proposals count every architecture a driver asks for, repeats included; the results hold one
    row per distinct architecture.
    """

    max_evaluations: int
    max_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    def remaining(self, problem: SearchProblem) -> int:
        return max(0, self.max_evaluations - problem.n_proposals)

    def exhausted(self, problem: SearchProblem) -> bool:
        if problem.n_proposals >= self.max_evaluations:
            return True
        return self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds


class Driver(ABC):
    """A search algorithm. It proposes batches of integer genes to ``problem.evaluate`` until the
    budget is spent; everything else (evaluation, dedup, storage) is the problem's job.

    Drivers must be deterministic given ``seed`` and the values the problem returns: that is what
    makes ``--resume`` replay a killed run exactly.
    """

    name: str = ""

    @abstractmethod
    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        ...
