"""Run a search from a config: experiment -> ledger -> driver -> Parquet store.

The experiment is built (and so validated, see :mod:`dse.experiment`) before the run directory
exists, so a bad config leaves nothing behind; resuming rebuilds it from the run's manifest.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dse.cluster import check_scheduler, cluster_spec
from dse.config import RunConfig, check_plain_name, load_config, parse_config
from dse.experiment import Experiment, build
from dse.gcpolicy import search_gc
from dse.inputs import check_plugin_trust, writable_folder
from dse.ledger import BatchReport, RunLedger
from dse.parallel import evaluation_pool
from dse.params import ConfigError
from dse.problem import fallback_hash
from dse.results import load, open_to_resume
from dse.results.integrity import drop_damaged, refuse_damaged
from dse.results.record import failure_summary
from dse.results.store import RunStore, new_manifest, recording_outcome
from dse.search.base import Budget
from dse.search.interrupt import stop_on_interrupt
from dse.search.problem import SearchProblem
from dse.search.warm import load_warm_start
from dse.space import SearchSpace


@dataclass
class RunResult:
    run_id: str
    path: Path
    rows: int
    proposals: int
    cached: int
    seconds: float
    status: str
    #: (count, "provider: error") of the failed evaluations, most frequent first
    failures: list[tuple[int, str]] = field(default_factory=list)
    #: the signal that stopped an ``interrupted`` run (SIGINT or SIGTERM)
    stop_signal: int | None = None

    def load(self):
        return load(self.path)

    @property
    def all_failed(self) -> bool:
        """Every evaluation failed (nothing to report): the CLI exits 1."""
        return self.rows > 0 and sum(n for n, _ in self.failures) == self.rows


def _coerce(config: RunConfig | dict | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def new_run_id(config: RunConfig, output: Path) -> str:
    """A fresh run id whose directory this call creates (atomically: two processes started in
    the same second, such as two workers of one optuna study, get different ids)."""
    base = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-s{config.seed}"
    output.mkdir(parents=True, exist_ok=True)
    run_id, k = base, 1
    while True:
        try:
            (output / run_id).mkdir()
            return run_id
        except FileExistsError:
            k += 1
            run_id = f"{base}-{k}"


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    return None if a == b else f"{path} ({b!r} in the run, {a!r} now)"


def _check_hashes(space: SearchSpace, rows: list[dict[str, Any]], manifest: dict) -> None:
    """Refuse to resume when the space no longer hashes stored architectures the same way (a
    different dse or plugin version): the cache would miss and every row would be redone."""
    for row in rows[:: max(1, len(rows) // 8)][:8]:
        arch = json.loads(row["arch"])
        try:
            same = space.arch_hash(arch) == row["arch_hash"]
        except Exception:  # noqa: BLE001 - an architecture the space no longer accepts
            same = row["arch_hash"] == fallback_hash(arch)
        if not same:
            versions = manifest.get("versions", {})
            raise ConfigError(
                f"--resume: space {space.name!r} hashes architecture {row['arch_id']!r} "
                "differently "
                f"from run {manifest['run_id']!r} (written with dse {versions.get('dse', '?')}); "
                f"resuming would re-evaluate every row. Start a new run instead."
            )


def _warm_start(cfg: RunConfig, experiment: Experiment, output: str | Path | None):
    """The earlier run's designs to start from (None without ``search.warm_start``); read before
    the run directory exists, so a bad reference leaves nothing behind."""
    if cfg.search.warm_start is None:
        return None
    return load_warm_start(
        cfg.search.warm_start,
        output or cfg.output,
        experiment.space,
        cfg.to_dict(),
        [(o.metric, o.direction) for o in experiment.evaluator.objectives],
        cfg.search.warm_start_size,
    )


def run(
    config: RunConfig | dict | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    run_id: str | None = None,
    output: str | Path | None = None,
    progress: bool = True,
    max_evaluations: int | None = None,
    drop_corrupt: bool = False,
    trust_plugins: bool = False,
    cluster: dict[str, Any] | None = None,
) -> RunResult:
    """Run a search; with ``resume`` (a run directory or id), continue that run instead.

    Resuming replays the seeded driver against the rows already on disk, so nothing is evaluated
    or written twice. ``config`` may be omitted when resuming; if given it must match the run's
    except for the budget and where it is evaluated (``workers``, ``scheduler``), which it sets.
    ``max_evaluations`` overrides the budget (to extend a finished run; never to shrink one).
    ``cluster``: a ``[cluster]`` table (``--cluster``) that replaces the config's, where batches
    are evaluated (:mod:`dse.cluster`).
    A run whose store is not whole (a part missing or unreadable, a manifest that disagrees with
    the data) is refused unless ``drop_corrupt``, which sets such parts aside and evaluates their
    architectures again. One process writes a run at a time: a second is refused.
    """
    if max_evaluations is not None and max_evaluations < 1:
        raise ConfigError(f"--max-evaluations: must be >= 1, got {max_evaluations}")
    given = _coerce(config) if config is not None else None  # parse a config file once
    if cluster is not None:
        from dse.cluster import parse_cluster

        parse_cluster(cluster, "--cluster")
    if run_id is not None:
        try:
            check_plain_name(run_id, "--run-id")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    with ExitStack() as stack:
        if resume is not None:
            opened = _open_resumed(
                resume, given, output, max_evaluations, drop_corrupt, trust_plugins, stack
            )
        else:
            if given is None:
                raise ConfigError("config: a config file is required unless --resume is given")
            opened = _open_new(given, run_id, output, max_evaluations, stack)
        if cluster is not None:
            opened.cfg = replace(opened.cfg, cluster=dict(cluster))
            opened.store.update_manifest(config=opened.cfg.to_dict())
        return _execute(opened, progress)


@dataclass
class _Opened:
    """A run ready to execute: its config, experiment, store (locked) and finished rows."""

    cfg: RunConfig
    experiment: Experiment
    warm: Any
    store: RunStore
    existing: list[dict[str, Any]]
    run_id: str


def _open_resumed(
    resume, given, output, max_evaluations, drop_corrupt, trust_plugins, stack
) -> _Opened:
    store, manifest = open_to_resume(resume, output or (given and given.output), "run", stack)
    cfg = parse_config(manifest["config"])
    # the manifest's plugin folders are imported only when trusted; a config given with the
    # resume brings its own (the user's) folders
    check_plugin_trust(manifest["config"], store.path, trust_plugins or given is not None)
    if given is not None:
        diff = _first_difference(given.identity(), cfg.identity())
        if diff:
            raise ConfigError(
                f"--resume: the config differs from run {manifest['run_id']!r} at {diff}"
            )
        # the budget may be extended on resume, and the run may go on on other workers
        cfg = replace(
            cfg,
            plugin_dirs=given.plugin_dirs,
            cluster=given.cluster,
            search=replace(
                cfg.search,
                max_evaluations=given.search.max_evaluations,
                max_seconds=given.search.max_seconds,
                workers=given.search.workers,
                scheduler=given.search.scheduler,
            ),
        )
    if max_evaluations is not None:
        cfg = replace(cfg, search=replace(cfg.search, max_evaluations=max_evaluations))
    spent = manifest.get("proposals") or 0
    if cfg.search.max_evaluations < spent:
        raise ConfigError(
            f"--max-evaluations: {cfg.search.max_evaluations} is less than the "
            f"{spent} proposals run {manifest['run_id']!r} already made; a budget can be "
            f"extended (>= {spent}), never shrunk"
        )
    experiment = build(cfg)
    warm = _warm_start(cfg, experiment, output)
    if drop_corrupt:
        for line in drop_damaged(store, manifest):
            print(f"dse: --drop-corrupt: {line}", file=sys.stderr)
        manifest = store.read_manifest()
    table = store.read_table()
    refuse_damaged(store, manifest, table.num_rows)
    existing = table.to_pylist()
    _check_hashes(experiment.space, existing, manifest)
    if cfg.search.scheduler is not None:
        check_scheduler(cfg.search.scheduler, "search.scheduler")
    store.update_manifest(
        status="running", resumed=manifest.get("resumed", 0) + 1, config=cfg.to_dict()
    )
    return _Opened(cfg, experiment, warm, store, existing, manifest["run_id"])


def _open_new(given: RunConfig, run_id, output, max_evaluations, stack) -> _Opened:
    cfg = given
    if max_evaluations is not None:
        cfg = replace(cfg, search=replace(cfg.search, max_evaluations=max_evaluations))
    experiment = build(cfg)  # all validation happens before anything is written
    warm = _warm_start(cfg, experiment, output)
    out = writable_folder(output or cfg.output, "--output" if output else "run.output")
    if cfg.search.scheduler is not None:
        check_scheduler(cfg.search.scheduler, "search.scheduler")
    if run_id is not None and RunStore(out / run_id).exists():
        raise ConfigError(
            f"--run-id: run {run_id!r} already exists in {out}; use --resume to continue it"
        )
    if run_id is not None and RunStore(out / run_id).part_files():
        raise ConfigError(
            f"--run-id: {out / run_id} holds evaluations but no manifest.json; restore the "
            "manifest from a copy (then --resume), or choose another run id"
        )
    run_id = run_id or new_run_id(cfg, out)
    store = RunStore(out / run_id)
    stack.enter_context(store.writer_lock())
    ev = experiment.evaluator
    store.write_manifest(
        new_manifest(
            run_id,
            cfg.to_dict(),
            ev.metric_names,
            [o.to_dict() for o in ev.objectives],
            [c.to_dict() for c in ev.constraints],
            experiment.space.describe(),
            {**ev.units, **experiment.driver.units},
            {m: [f.to_dict()] for m, f in ev.fidelity.items()},
        )
    )
    return _Opened(cfg, experiment, warm, store, [], run_id)


def _execute(opened: _Opened, progress: bool) -> RunResult:
    cfg, experiment, warm, store, run_id = (
        opened.cfg,
        opened.experiment,
        opened.warm,
        opened.store,
        opened.run_id,
    )
    bar = tqdm(
        total=cfg.search.max_evaluations,
        disable=None if progress else True,
        file=sys.stderr,
        desc=run_id,
        unit="eval",
        dynamic_ncols=True,
        leave=True,
    )
    ev = experiment.evaluator
    definition = ev.definition
    shape = definition.record_shape(run_id, cfg.seed, cfg.search.driver, experiment.space.name)

    def on_batch(report: BatchReport) -> None:
        bar.update(report.proposals)
        hv = ledger.hypervolume
        post = {
            "rows": report.all_rows,
            "front": 0 if hv.front is None else len(hv.front),
            "hv": f"{hv.value:.4g}",
        }
        for j, obj in enumerate(definition.objectives):
            if hv.front is not None and len(hv.front):
                post[obj.metric] = f"{obj.minimised(hv.front[:, j].min()):.4g}"
        bar.set_postfix(post, refresh=False)

    ledger = RunLedger(
        shape,
        store,
        experiment.schema,
        definition,
        opened.existing,
        reusable=warm.reusable if warm is not None else None,
        on_batch=on_batch,
    )
    budget = Budget(
        cfg.search.max_evaluations, cfg.search.max_seconds, cfg.search.max_stagnant_evaluations
    )
    start = time.monotonic()

    def closing(status: str) -> dict[str, Any]:
        bar.close()
        return {
            "stopped_by": budget.reason or ("driver" if status == "finished" else None),
            "hypervolume": ledger.hypervolume.value,
            "evaluations": ledger.n_rows,
            "proposals": ledger.n_proposals,
            "parts": store.part_records(),
        }

    with recording_outcome(store, closing) as outcome:
        with (
            stop_on_interrupt(budget, quiet=not progress),
            evaluation_pool(
                cluster_spec(
                    cfg.cluster, workers=cfg.search.workers, scheduler=cfg.search.scheduler
                ),
                cfg.to_dict(),
            ) as pool,
            search_gc(),
        ):
            problem = SearchProblem(
                experiment.space,
                definition,
                ledger,
                pool if pool is not None else ev.evaluate_batch,
                warm.encodings if warm is not None else None,
                tuple(ev.providers),
                store.path / "driver",
            )
            experiment.driver.run(problem, budget, cfg.seed)
        if budget.stop_requested:
            outcome.status = "interrupted"
    return RunResult(
        run_id,
        store.path,
        ledger.n_rows,
        ledger.n_proposals,
        ledger.n_cached,
        time.monotonic() - start,
        outcome.status,
        failure_summary(ledger.failures),
        budget.stop_signal,
    )
