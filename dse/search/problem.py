"""What a search driver sees: integer genes in, minimised objectives and constraint values out.

:class:`SearchProblem` sits between a driver and the evaluator (as pymoo's ``Problem`` sits apart
from its ``Algorithm``). For each batch of proposals it decodes the genes, looks each
architecture's hash up in the run's cache, evaluates only new ones, gives them consecutive
``eval_id`` values, writes them to the store as one atomic Parquet batch, and returns

* ``F``: objective values in minimisation form (``max`` objectives negated), shape (n, k);
* ``G``: constraint values, feasible when ``<= 0``, shape (n, m + 1): one column per declared
  constraint (its violation in metric units) plus a last column that is 1 for a failed
  evaluation, so every driver treats a failure as infeasible.

Resuming replays the seeded driver against the cache of finished rows: the replay proposes the
same architectures, finds them cached, and continues where the killed run stopped, so the final
dataset equals an uninterrupted run's, with no duplicate and no lost row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from dse.evaluate import Evaluation, Evaluator
from dse.results.store import RunStore, timing_column
from dse.search.hypervolume import HypervolumeTracker
from dse.space import SearchSpace

#: Stand-in for missing objective or constraint values, large but finite so drivers' arithmetic stays finite.
PENALTY = 1e300


@dataclass
class BatchReport:
    """What the progress display hears after each batch."""

    proposals: int
    new_rows: list[dict[str, Any]]
    all_rows: int
    cached: int


@dataclass
class SearchProblem:
    space: SearchSpace
    evaluator: Evaluator
    run_id: str
    seed: int
    driver: str
    store: RunStore | None = None
    schema: pa.Schema | None = None
    existing: list[dict[str, Any]] = field(default_factory=list)
    on_batch: Callable[[BatchReport], None] | None = None
    #: encodings of an earlier run's best designs, for drivers to start from (see warm_start_encodings)
    warm_start: np.ndarray | None = None
    #: evaluates a batch (archs, graphs) -> Evaluations; default ``evaluator.evaluate_batch``,
    #: a Dask pool's map when the search runs on a cluster
    batch_evaluate: Callable[[list, list], list] | None = None
    #: arch_hash -> an earlier run's row whose metrics this run may reuse (warm start)
    reusable: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        self.rows_by_hash: dict[str, dict[str, Any]] = {r["arch_hash"]: r for r in self.existing}
        self.next_eval_id = 1 + max((r["eval_id"] for r in self.existing), default=-1)
        self.n_proposals = 0
        self.n_cached = 0
        self.rows: list[dict[str, Any]] = sorted(self.existing, key=lambda r: r["eval_id"])
        self._restored: set[str] = set(self.rows_by_hash)
        self._hash_by_genes: dict[tuple, str] = {tuple(r["encoding"]): r["arch_hash"] for r in self.existing}
        self.batches = 0
        ref = [math.nan if o.ref is None else o.minimised(o.ref) for o in self.evaluator.objectives]
        self.hypervolume = HypervolumeTracker(np.array(ref, dtype=float))
        restored = [r for r in self.rows if r["feasible"]]
        if restored:  # a resumed run continues from the front it had
            self.hypervolume.update(self._objectives(restored), 0)

    # -- shape of the problem, for drivers ---------------------------------------------------
    @property
    def n_var(self) -> int:
        return len(self.space.variables)

    @property
    def upper(self) -> np.ndarray:
        """Largest gene value per variable (genes are 0..upper inclusive)."""
        return self.space.cardinalities - 1

    @property
    def n_obj(self) -> int:
        return len(self.evaluator.objectives)

    @property
    def n_constr(self) -> int:
        return len(self.evaluator.constraints) + 1

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.int64).reshape(-1, self.n_var)
        X = np.clip(X, 0, self.upper)
        keys: list[str] = []
        pending: dict[str, tuple[dict, np.ndarray, Any]] = {}  # new hashes, in order of first sight
        for x in X:
            genes = tuple(x.tolist())
            key, graph, arch = self._hash_by_genes.get(genes), None, None
            if key is None:  # identical genes decode to the same architecture: hash it once
                arch = self.space.decode(x)
                try:
                    key, graph = self.space.identify(arch)
                except Exception:  # noqa: BLE001 - the evaluator records the real failure
                    key = "unhashable:" + self.space.arch_id(arch)
                self._hash_by_genes[genes] = key
            if key not in self.rows_by_hash and key not in pending:
                pending[key] = (arch if arch is not None else self.space.decode(x), x, graph)
            keys.append(key)
        # one evaluator call for the whole batch: population-capable providers cost it at once
        items = [(k, v) for k, v in pending.items() if k not in self.reusable]
        evaluate = self.batch_evaluate or self.evaluator.evaluate_batch
        results = dict(zip([k for k, _ in items],
                           evaluate([a for _, (a, _, _) in items], [g for _, (_, _, g) in items]) if items else []))
        new_rows = [self._reused_row(arch, x, key) if key in self.reusable else self._row(arch, x, key, results[key])
                    for key, (arch, x, _) in pending.items()]
        self.rows_by_hash.update((r["arch_hash"], r) for r in new_rows)
        batch_rows: list[dict[str, Any]] = []
        cached = 0
        fresh = set(pending)
        for key in keys:
            if key in fresh:
                fresh.discard(key)  # the proposal that asked for it; repeats below count as cached
            elif key in self._restored:
                self._restored.discard(key)  # first sight of a row restored from disk: a replay
            else:
                cached += 1
            batch_rows.append(self.rows_by_hash[key])
        if new_rows and self.store is not None:
            self.store.write_batch(new_rows, self.schema)
        self.rows.extend(new_rows)
        self.n_proposals += len(X)
        self.n_cached += cached
        self.batches += 1
        feasible = [r for r in new_rows if r["feasible"]]
        self.hypervolume.update(self._objectives(feasible) if feasible else np.empty((0, self.n_obj)),
                                self.n_proposals)
        if self.on_batch:
            self.on_batch(BatchReport(len(X), new_rows, len(self.rows), cached))
        return self._objectives(batch_rows), self._constraints(batch_rows)

    def _row(self, arch: dict, x: np.ndarray, key: str, result) -> dict[str, Any]:
        if result is None:  # filled in by the caller (a reused row)
            result = Evaluation({}, "ok", None, {}, 0.0, 0.0)
        row: dict[str, Any] = {
            "run_id": self.run_id,
            "eval_id": self.next_eval_id,
            "batch": self.batches,
            "seed": self.seed,
            "space": self.space.name,
            "arch": json.dumps(arch, separators=(",", ":"), default=str),
            "arch_id": self.space.arch_id(arch),
            "arch_hash": key,
            "encoding": [int(v) for v in self._encoding(arch, x)],
            "status": result.status,
            "error": result.error,
            "feasible": result.feasible,
            "violation": result.violation if math.isfinite(result.violation) else PENALTY,
            "wall_s": result.wall_s,
            "started_at": datetime.fromtimestamp(result.started_at, tz=timezone.utc),
            "driver": self.driver,
        }
        for m in self.evaluator.metric_names:
            row[m] = result.metrics.get(m)
        for p in self.evaluator.providers:
            row[timing_column(p.name)] = result.provider_s.get(p.name)
        self.next_eval_id += 1
        return row

    def _reused_row(self, arch: dict, x: np.ndarray, key: str) -> dict[str, Any]:
        """An earlier run's row (warm start, same evaluation config) under this run's ids."""
        old = self.reusable[key]
        row = self._row(arch, x, key, None)
        for col in ("status", "error", "feasible", "violation", "wall_s", "started_at",
                    *self.evaluator.metric_names, *(timing_column(p.name) for p in self.evaluator.providers)):
            v = old.get(col)
            row[col] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        return row

    def _encoding(self, arch: dict, x: np.ndarray) -> np.ndarray:
        """The genes of what was evaluated (a restricted space's projection of ``x``)."""
        try:
            return self.space.encode(arch)
        except Exception:  # noqa: BLE001 - a space whose decode repairs into a non-encodable arch
            return x

    def is_known(self, x: np.ndarray) -> bool:
        """Whether genes ``x`` were proposed before in this run (their record exists)."""
        return tuple(int(v) for v in x) in self._hash_by_genes

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random encodings, uniform over the space (over the listed ones when restricted)."""
        return self.space.sample_encodings(rng, n)

    def warm_start_encodings(self, n: int | None = None) -> np.ndarray:
        """Up to ``n`` warm-start encodings (all when None), best first; empty without warm start."""
        if self.warm_start is None:
            return np.empty((0, self.n_var), dtype=np.int64)
        return self.warm_start if n is None else self.warm_start[:n]

    def _objectives(self, rows: list[dict[str, Any]]) -> np.ndarray:
        F = np.empty((len(rows), self.n_obj))
        for i, row in enumerate(rows):
            for j, obj in enumerate(self.evaluator.objectives):
                v = row.get(obj.metric)
                F[i, j] = PENALTY if v is None or not math.isfinite(v) else obj.minimised(v)
        return F

    def _constraints(self, rows: list[dict[str, Any]]) -> np.ndarray:
        G = np.zeros((len(rows), self.n_constr))
        for i, row in enumerate(rows):
            for j, con in enumerate(self.evaluator.constraints):
                v = row.get(con.metric)
                viol = con.violation(math.nan if v is None else v)
                G[i, j] = min(viol, PENALTY)
            G[i, -1] = 1.0 if row["status"] == "failed" else 0.0
        return G

    # -- views -----------------------------------------------------------------------------------
    def minimised_front(self) -> np.ndarray:
        """Minimised objective rows of the feasible evaluations so far."""
        rows = [r for r in self.rows if r["feasible"]]
        return self._objectives(rows) if rows else np.empty((0, self.n_obj))
