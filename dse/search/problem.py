"""What a search driver sees: integer genes in, minimised objectives and constraint values out.

:class:`SearchProblem` sits between a driver and the run's records (as pymoo's ``Problem``
sits apart from its ``Algorithm``). For each batch of proposals it decodes the genes into
architectures, identifies them (arch_hash), hands the batch to the run's
:class:`~dse.ledger.RunLedger` (which owns caching, evaluation, records and storage),
and returns

* ``F``: objective values in minimisation form (``max`` objectives negated), shape (n, k);
* ``G``: constraint values, feasible when ``<= 0``, shape (n, m + 1): one column per declared
  constraint (its violation in metric units) plus a last column that is 1 for a failed
  evaluation, so every driver treats a failure as infeasible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dse.evaluate import Evaluator
from dse.ledger import BatchEvaluate, Proposal, RunLedger, genes_keys
from dse.problem import Defined, ProblemDefinition, fallback_hash
from dse.results.tracker import HypervolumeTracker
from dse.space import SearchSpace


@dataclass(frozen=True)
class SearchProblem(Defined):
    """Genes -> objectives and constraints, for one run (built whole by the runner)."""

    space: SearchSpace
    #: objectives, constraints and record columns, declared once (the ledger holds the same)
    definition: ProblemDefinition
    ledger: RunLedger
    #: evaluates a batch (archs, graphs) -> Evaluations: the evaluator's ``evaluate_batch``,
    #: or a Dask pool's map when the search runs on a cluster
    evaluate_batch: BatchEvaluate
    #: encodings of an earlier run's best designs, for drivers to start from, best first
    warm_start: np.ndarray | None = None
    #: the evaluator's metric providers, for drivers that read their models (EDD prices its
    #: supernet with the configured simulator's own tables)
    providers: tuple[Any, ...] = ()
    #: a folder of the run directory that belongs to the driver (checkpoints a resumed run
    #: continues from); None for a problem held in memory
    workdir: Path | None = None

    @classmethod
    def in_memory(
        cls, evaluator: Evaluator, *, run_id: str = "run", seed: int = 0, driver: str = ""
    ) -> SearchProblem:
        """A problem whose records stay in memory (no run directory): for scripts and tests
        that drive a search by hand."""
        definition = evaluator.definition
        shape = definition.record_shape(run_id, seed, driver, evaluator.space.name)
        ledger = RunLedger(shape, definition=definition)
        return cls(
            evaluator.space,
            definition,
            ledger,
            evaluator.evaluate_batch,
            providers=tuple(evaluator.providers),
        )

    # -- shape of the problem, for drivers ---------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.ledger.shape.run_id

    @property
    def n_var(self) -> int:
        return len(self.space.variables)

    @property
    def upper(self) -> np.ndarray:
        """Largest gene value per variable (genes are 0..upper inclusive)."""
        return self.space.cardinalities - 1

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        return len(self.constraints) + 1

    # -- what the budget and the progress display read ---------------------------------------
    @property
    def n_proposals(self) -> int:
        return self.ledger.n_proposals

    @property
    def hypervolume(self) -> HypervolumeTracker:
        return self.ledger.hypervolume

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(
        self, X: np.ndarray, extra: Sequence[Mapping[str, float]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Record the architectures of genes ``X`` and return their minimised objectives and
        constraint values; ``extra[j]``: the driver's record columns for row ``j`` (see
        :attr:`Driver.record_metrics`), kept only where ``X[j]`` is new to the run."""
        X = np.clip(np.asarray(X, dtype=np.int64).reshape(-1, self.n_var), 0, self.upper)
        if extra is not None and len(extra) != len(X):
            raise ValueError(f"extra: one mapping per row of X, got {len(extra)} for {len(X)}")
        keys: list[str] = []
        pending: dict[str, Proposal] = {}  # new architectures, in order of first sight
        for j, (x, genes) in enumerate(zip(X, genes_keys(X))):
            key, graph, arch = self.ledger.key_of(genes), None, None
            if key is None:  # identical genes decode to the same architecture: hash it once
                arch = self.space.decode(x)
                try:
                    key, graph = self.space.identify(arch)
                except Exception:  # noqa: BLE001 - the evaluator records the real failure
                    key = fallback_hash(arch)
                self.ledger.remember(genes, key)
            if not self.ledger.has(key) and key not in pending:
                arch = arch if arch is not None else self.space.decode(x)
                pending[key] = Proposal(
                    key,
                    arch,
                    self.space.arch_id(arch),
                    self._encoding(arch, x),
                    graph,
                    None if extra is None else dict(extra[j]),
                )
            keys.append(key)
        return self.ledger.record_batch(keys, list(pending.values()), self.evaluate_batch)

    def _encoding(self, arch: dict, x: np.ndarray) -> list[int]:
        """The genes of what was evaluated (a restricted space's projection of ``x``)."""
        try:
            return [int(v) for v in self.space.encode(arch)]
        except Exception:  # noqa: BLE001 - a space whose decode repairs into a non-encodable arch
            return [int(v) for v in x]

    def is_known(self, x: np.ndarray) -> bool:
        """Whether genes ``x`` were proposed before in this run (their record exists), as the
        uninterrupted run would have seen it at this point (a resumed run replays)."""
        key = self.ledger.key_of(genes_keys([x])[0])
        return key is not None and self.ledger.proposed(key)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random encodings, uniform over the space (over the listed ones when restricted)."""
        return self.space.sample_encodings(rng, n)

    def warm_start_encodings(self, n: int | None = None) -> np.ndarray:
        """Up to ``n`` warm-start encodings (all when None), best first; empty without a warm
        start."""
        if self.warm_start is None:
            return np.empty((0, self.n_var), dtype=np.int64)
        return self.warm_start if n is None else self.warm_start[:n]

    def minimised_front(self) -> np.ndarray:
        """Minimised objective rows of the feasible evaluations so far."""
        return self.ledger.minimised_front()
