"""The run ledger: the one owner of a run's records.

Everything between "these architectures were proposed" and "their rows are on disk" happens
here, for searches and sweeps alike: the architecture cache (arch_hash -> row) and
de-duplication, ``eval_id`` numbering, record building (:func:`~dse.results.record.make_record`),
store writes, the hypervolume tracker and the progress callback. A search driver's
:class:`~dse.search.problem.SearchProblem` only turns genes into proposals and rows into
objective and constraint values; a sweep's chunk task hands its evaluated points over whole.

Resuming is a ledger built on the rows already on disk: a replayed driver proposes the same
architectures, finds them cached, and the run continues where it stopped, so the final dataset
equals an uninterrupted run's, with no duplicate and no lost row.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa

from dse.evaluate import Evaluation
from dse.problem import Defined, ProblemDefinition, RecordShape
from dse.results.record import (
    constraint_matrix,
    evaluation_of,
    failure_key,
    make_record,
    objective_matrix,
)
from dse.results.store import RunStore
from dse.results.tracker import HypervolumeTracker

#: (archs, graphs or None) -> one Evaluation per architecture
BatchEvaluate = Callable[[list, list], list]


@dataclass(frozen=True)
class Proposal:
    """An architecture a driver asked for, identified (``key`` is its arch_hash)."""

    key: str
    arch: Mapping[str, Any]
    arch_id: str
    encoding: Sequence[int]
    graph: Any = None  # the graph identify() built, reused by the evaluator
    extra: Mapping[str, Any] | None = None  # the driver's record columns for this proposal


@dataclass
class BatchReport:
    """What the progress display hears after each batch."""

    proposals: int
    new_rows: list[dict[str, Any]]
    all_rows: int
    cached: int


class _Slots:
    """What the ledger keeps per recorded architecture once its row is on disk: its minimised
    objectives and constraint values (numpy, grown by doubling), and whether it is feasible.
    No row dict outlives its write, so memory grows by a few dozen bytes per architecture."""

    def __init__(self, n_obj: int, n_con: int):
        self.n = 0
        self.F = np.empty((64, n_obj))
        self.G = np.empty((64, n_con))
        self.feasible = np.empty(64, dtype=bool)

    def add(self, F: np.ndarray, G: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        k = len(F)
        while self.n + k > len(self.F):
            self.F = np.resize(self.F, (2 * len(self.F), self.F.shape[1]))
            self.G = np.resize(self.G, (2 * len(self.G), self.G.shape[1]))
            self.feasible = np.resize(self.feasible, 2 * len(self.feasible))
        slots = np.arange(self.n, self.n + k)
        self.F[slots], self.G[slots], self.feasible[slots] = F, G, feasible
        self.n += k
        return slots


class RunLedger(Defined):
    """Records of one run: cached by architecture, numbered, written, tracked."""

    def __init__(
        self,
        shape: RecordShape,
        store: RunStore | None = None,
        schema: pa.Schema | None = None,
        definition: ProblemDefinition | None = None,
        existing: Sequence[dict[str, Any]] = (),
        reusable: Mapping[str, Mapping[str, Any]] | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ):
        self.shape, self.store, self.schema = shape, store, schema
        #: the run's problem (objectives and constraints); a sweep's has neither
        self.definition = definition or ProblemDefinition()
        self.reusable = dict(reusable or {})  # arch_hash -> an earlier run's row (warm start)
        self.on_batch = on_batch
        self._slots = _Slots(len(self.objectives), len(self.constraints) + 1)
        self._slot_of: dict[str, int] = {}  # arch_hash -> slot
        self._key_by_genes: dict[bytes, str] = {}
        #: "provider: Type: message" -> count, over the failed rows (see failure_summary)
        self.failures: Counter[str] = Counter()
        self.n_proposals = self.n_cached = self.batches = 0
        ordered = sorted(existing, key=lambda r: r["eval_id"])
        self.next_eval_id = 1 + max((r["eval_id"] for r in ordered), default=-1)
        ref = [math.nan if o.ref is None else o.minimised(o.ref) for o in self.objectives]
        self.hypervolume = HypervolumeTracker(np.array(ref, dtype=float))
        self._keep(ordered)
        #: rows restored from disk that the resumed run's replay has not proposed again yet:
        #: until it does, they are neither known to the driver (:meth:`proposed`) nor on the
        #: front,
        #: so the replay sees exactly what the uninterrupted run saw (tournament retries,
        #: hypervolume, stagnation); they are never evaluated again
        self._restored: set[str] = set(self._slot_of)
        for r, gkey in zip(ordered, genes_keys([r["encoding"] for r in ordered])):
            self._key_by_genes[gkey] = r["arch_hash"]

    @property
    def n_rows(self) -> int:
        """Rows recorded so far (restored ones included)."""
        return self._slots.n

    def _keep(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Remember what the search needs of ``rows`` (written or restored) and drop the rest;
        returns their slots."""
        if not rows:
            return np.empty(0, dtype=np.int64)
        slots = self._slots.add(
            objective_matrix(rows, self.objectives),
            constraint_matrix(rows, self.constraints),
            np.array([bool(r["feasible"]) for r in rows]),
        )
        for r, slot in zip(rows, slots.tolist()):
            self._slot_of[r["arch_hash"]] = slot
            if r["status"] == "failed":
                self.failures[failure_key(r)] += 1
        return slots

    def _feasible_front(self, slots: np.ndarray) -> np.ndarray:
        """Minimised objectives of the feasible rows among ``slots``."""
        return self._slots.F[slots[self._slots.feasible[slots]]]

    # -- the architecture cache ----------------------------------------------------------------
    def key_of(self, genes: bytes) -> str | None:
        """The arch_hash that genes (their :func:`genes_keys` key) decoded to before in this
        run, if any."""
        return self._key_by_genes.get(genes)

    def remember(self, genes: bytes, key: str) -> None:
        self._key_by_genes[genes] = key

    def has(self, key: str) -> bool:
        """Whether ``key`` has a row (evaluated in this run, or restored from disk)."""
        return key in self._slot_of

    def proposed(self, key: str) -> bool:
        """Whether ``key`` was proposed in this run as the driver has seen it so far: a row
        restored from disk counts once the replay proposes it again."""
        return key in self._slot_of and key not in self._restored

    # -- recording -----------------------------------------------------------------------------
    def record_batch(
        self, keys: Sequence[str], pending: Sequence[Proposal], evaluate: BatchEvaluate
    ) -> tuple[np.ndarray, np.ndarray]:
        """One search batch: ``keys`` are the proposals' arch_hashes in order, ``pending`` the
        new architectures among them (first sight, in order). Evaluates those (one call, so
        population-capable providers cost them at once), records and writes them as one
        atomic part, and returns every proposal's minimised objectives ``F`` and constraint
        values ``G`` (see :class:`~dse.search.problem.SearchProblem`)."""
        fresh = [p for p in pending if p.key not in self.reusable]
        evaluated = evaluate([p.arch for p in fresh], [p.graph for p in fresh]) if fresh else []
        results = dict(zip([p.key for p in fresh], evaluated))
        new_rows = []
        for p in pending:
            evaluation = (
                evaluation_of(self.reusable[p.key], self.shape)
                if p.key in self.reusable
                else results[p.key]
            )
            new_rows.append(self._make(p, evaluation, self.next_eval_id, self.batches, p.extra))
            self.next_eval_id += 1
        self._write(new_rows, part=None)
        new_slots = self._keep(new_rows)
        cached, first, replayed = 0, {p.key for p in pending}, []
        for key in keys:
            if key in first:
                first.discard(key)  # the proposal that asked for it; repeats count as cached
            elif key in self._restored:
                self._restored.discard(key)  # first sight of a row restored from disk: a replay
                replayed.append(self._slot_of[key])
            else:
                cached += 1
        self.n_proposals += len(keys)
        self.n_cached += cached
        self.batches += 1
        front_slots = np.concatenate([new_slots, np.array(replayed, dtype=np.int64)])
        self.hypervolume.update(self._feasible_front(front_slots), self.n_proposals)
        if self.on_batch:
            self.on_batch(BatchReport(len(keys), new_rows, self.n_rows, cached))
        slots = np.fromiter((self._slot_of[k] for k in keys), dtype=np.int64, count=len(keys))
        return self._slots.F[slots], self._slots.G[slots]

    def record_points(
        self,
        part: int,
        points: Sequence[tuple[int, Proposal, Evaluation, Mapping[str, Any]]],
    ) -> int:
        """One sweep chunk: (point index as eval_id, proposal, evaluation, swept values) rows,
        written whole as part ``part`` (a retried chunk rewrites the same file). Returns rows."""
        rows = sorted(
            (self._make(p, ev, eval_id, part, extra) for eval_id, p, ev, extra in points),
            key=lambda r: r["eval_id"],
        )
        self._write(rows, part=part)
        return len(rows)

    def _make(self, p: Proposal, evaluation: Evaluation, eval_id: int, batch: int, extra=None):
        return make_record(
            self.shape,
            eval_id=eval_id,
            batch=batch,
            arch=p.arch,
            arch_id=p.arch_id,
            arch_hash=p.key,
            encoding=p.encoding,
            evaluation=evaluation,
            extra=extra,
        )

    def _write(self, rows: list[dict[str, Any]], part: int | None) -> None:
        if self.store is None or self.schema is None or (part is None and not rows):
            return
        if part is None:
            self.store.write_batch(rows, self.schema)
        else:
            self.store.write_part(part, rows, self.schema)

    # -- views ---------------------------------------------------------------------------------
    def minimised_front(self) -> np.ndarray:
        """Minimised objective rows of the feasible evaluations proposed so far (restored rows
        once the replay has proposed them again)."""
        n = self._slots.n
        seen = self._slots.feasible[:n].copy()
        seen[[self._slot_of[k] for k in self._restored]] = False
        return self._slots.F[:n][seen]


def genes_keys(X) -> list[bytes]:
    """A compact dictionary key per gene vector (row of ``X``): its genes as int16 bytes (80
    bytes for 40 genes, where a tuple of ints takes 360), int64 when a gene does not fit. Keys
    of one space never collide: the two widths give different lengths for the same number of
    genes. One numpy pass for a whole batch."""
    if len(X) == 0:
        return []
    X = np.asarray(X, dtype=np.int64)
    X = X.reshape(len(X), -1)
    if X.shape[1] == 0:
        return [b""] * len(X)
    small = (X.min(axis=1) >= -32768) & (X.max(axis=1) < 32768)
    narrow = np.ascontiguousarray(X.astype(np.int16))
    keys = cast(list[bytes], narrow.view(np.dtype((np.void, 2 * X.shape[1]))).ravel().tolist())
    for i in np.flatnonzero(~small).tolist():
        keys[i] = X[i].tobytes()
    return keys
