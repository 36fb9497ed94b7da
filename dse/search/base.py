"""The search-driver protocol and the budget every driver honours."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dse.search.problem import SearchProblem


@dataclass
class Budget:
    """When a search stops: ``max_evaluations`` proposals, ``max_seconds`` of wall time, or
    ``max_stagnant_evaluations`` proposals without a hypervolume gain, whichever comes first,
    or as soon as :meth:`request_stop` is called (Ctrl-C): drivers check :meth:`exhausted`
    between batches, so a stop always lands on a batch boundary with every batch saved.

    Proposals count every architecture a driver asks for, repeats included; the results hold one
    row per distinct architecture.
    """

    max_evaluations: int
    max_seconds: float | None = None
    max_stagnant_evaluations: int | None = None
    started: float = field(default_factory=time.monotonic)
    stop_requested: bool = False
    reason: str | None = None
    #: the signal that asked to stop (SIGINT: Ctrl-C; SIGTERM: a scheduler ending the job)
    stop_signal: int | None = None

    def request_stop(self, signum: int | None = None) -> None:
        self.stop_requested = True
        self.stop_signal = signum

    def remaining(self, problem: SearchProblem) -> int:
        return max(0, self.max_evaluations - problem.n_proposals)

    def exhausted(self, problem: SearchProblem) -> bool:
        self.reason = self._reason(problem)
        return self.reason is not None

    def _reason(self, problem: SearchProblem) -> str | None:
        if self.stop_requested:
            return "interrupted"
        if problem.n_proposals >= self.max_evaluations:
            return "max_evaluations"
        if self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
            return "max_seconds"
        if (
            self.max_stagnant_evaluations is not None
            and problem.hypervolume.value > 0
            and problem.n_proposals - problem.hypervolume.improved_at
            >= self.max_stagnant_evaluations
        ):
            return "stagnation"
        return None


class Driver(ABC):
    """A search algorithm. It proposes batches of integer genes to ``problem.evaluate`` until the
    budget is spent; everything else (evaluation, dedup, storage) is the problem's job.

    Every driver takes the same inputs: the problem (space, evaluator with its objectives and
    constraints, store), the budget and the seed; ``problem.warm_start`` holds encodings of an
    earlier run's best designs to start from.

    Drivers must be deterministic given ``seed`` and the values the problem returns: that is what
    makes ``--resume`` replay a killed run exactly.
    """

    name: str = ""
    #: columns this driver fills in the records of its own proposals (``problem.evaluate(X,
    #: extra=...)``), e.g. EDD's supernet accuracy per epoch; float64 like metrics, and
    #: ``units`` gives theirs. They describe the search, not the architecture: they are not
    #: objectives, and a repeat of an architecture keeps its first row's values.
    record_metrics: tuple[str, ...] = ()
    units: Mapping[str, str] = {}

    def check(self, space: Any, providers: Sequence[Any]) -> None:
        """Refuse (``ValueError``) a space or set of providers this driver cannot search; called
        when the run is built, before anything is written. The default accepts everything."""
        return None

    @abstractmethod
    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None: ...
