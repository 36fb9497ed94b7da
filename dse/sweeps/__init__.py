"""Parameter sweeps: grid, random, Latin-hypercube or Sobol points over config values, evaluated
in parallel on Dask (see :mod:`dse.sweeps.plan` for the config and :mod:`dse.sweeps.execute`
for how chunks are written)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dse.cluster import ClusterSpec, check_scheduler, cluster_spec, open_cluster, windowed
from dse.config import identity
from dse.configfile import check_depth, read_config_file
from dse.inputs import check_plugin_trust, writable_folder
from dse.parallel import worker_count
from dse.params import ConfigError
from dse.results import open_to_resume
from dse.results.integrity import refuse_foreign_parts
from dse.results.store import RunStore, StoreError, new_manifest, part_number, recording_outcome
from dse.runner import new_run_id
from dse.search.interrupt import terminate_as_interrupt
from dse.sweeps.execute import SweepPlan, plan_sweep, run_chunk, run_planned_chunk
from dse.sweeps.plan import METHODS, Parameter, make_points


@dataclass
class SweepResult:
    sweep_id: str
    path: Path
    points: int
    chunks: int
    chunks_run: int
    seconds: float
    status: str

    def load(self):
        from dse.results import load

        return load(self.path)


def _raw(config: dict | str | Path) -> dict[str, Any]:
    if isinstance(config, dict):
        check_depth(config, "config")
        return json.loads(json.dumps(config))  # a private, plain copy
    return read_config_file(config)


def sweep(
    config: dict | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    output: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    drop_corrupt: bool = False,
    trust_plugins: bool = False,
    cluster: dict[str, Any] | None = None,
) -> SweepResult:
    """Run a sweep (a TOML path or a dict shaped like it) or, with ``resume``, finish one.

    Where chunks run: ``cluster`` (a ``[cluster]`` table, e.g. ``{"kind": "slurm", "jobs":
    2}``; :mod:`dse.cluster`), else the config's ``[cluster]``, else ``[sweep]``'s ``workers``
    / ``scheduler``; ``workers`` (a new LocalCluster; 0 evaluates in this process) and
    ``scheduler`` (an existing Dask scheduler's address) override them all. Resuming runs the
    chunks whose part is missing; an unreadable part is refused unless ``drop_corrupt`` (set
    aside, its chunk run again). One process writes a sweep at a time. Returns where the
    results are.
    """
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers: must be >= 0 (0: evaluate in this process), got {workers}")
    with ExitStack() as stack:
        if resume is not None:
            plan, store, sweep_id = _open_resumed(
                resume, config, output, drop_corrupt, trust_plugins, stack
            )
            spec = where(plan, cluster, workers, scheduler)
        else:
            if config is None:
                raise ConfigError("sweep: a config is required unless --resume is given")
            plan, store, sweep_id, spec = _open_new(
                _raw(config), output, lambda plan: where(plan, cluster, workers, scheduler), stack
            )
        store.update_manifest(cluster=spec.to_dict() if spec else {"kind": "in-process"})
        done = {part_number(p) for p in store.part_files()}
        pending = [k for k in range(plan.chunks) if k not in done]
        bar = tqdm(
            total=len(plan.points),
            initial=len(plan.points) - sum(plan.chunk_len(k) for k in pending),
            disable=None if progress else True,
            file=sys.stderr,
            desc=sweep_id,
            unit="pt",
            dynamic_ncols=True,
        )
        start = time.monotonic()

        def closing(status: str) -> dict[str, Any]:
            bar.close()
            parts = store.part_records()
            return {"chunks_done": len(parts), "parts": parts}

        with recording_outcome(store, closing) as outcome, terminate_as_interrupt():
            announce = (lambda line: print(f"dse: {line}", file=sys.stderr)) if progress else None
            _execute(plan, pending, store, sweep_id, spec, bar, announce)
    return SweepResult(
        sweep_id,
        store.path,
        len(plan.points),
        plan.chunks,
        len(pending),
        time.monotonic() - start,
        outcome.status,
    )


def _open_resumed(resume, config, output, drop_corrupt: bool, trust: bool, stack: ExitStack):
    store, manifest = open_to_resume(resume, output, "sweep", stack)
    path = store.path
    raw = manifest["config"]
    check_plugin_trust(raw, path, trust or config is not None)
    if config is not None:
        given = _raw(config)
        if identity(given) != identity(raw):
            raise ConfigError(f"--resume: the config differs from sweep {manifest['run_id']!r}")
        # the user's own config brings its own plugin folders
        raw.setdefault("run", {})["plugin_dirs"] = given.get("run", {}).get("plugin_dirs", [])
    plan = plan_sweep(raw)
    for line in refuse_foreign_parts(store, manifest, drop_corrupt):
        print(f"dse: --drop-corrupt: {line}", file=sys.stderr)
    for part in store.corrupt_parts():
        if not drop_corrupt:
            raise StoreError(
                f"{part} cannot be read; run its chunk again with --resume {path} --drop-corrupt "
                "(the unreadable file is set aside, not deleted)"
            )
        target = store.set_aside(part)
        print(
            f"dse: --drop-corrupt: set aside {part} as {target.name}; its chunk runs again",
            file=sys.stderr,
        )
    store.update_manifest(status="running", resumed=manifest.get("resumed", 0) + 1)
    return plan, store, manifest["run_id"]


def where(plan: SweepPlan, cluster, workers, scheduler) -> ClusterSpec | None:
    """The cluster the sweep's chunks run on (None: this process); see :func:`sweep`."""
    if workers is not None or scheduler is not None:
        table: dict[str, Any] | None = None
    elif cluster is not None:
        table = cluster
    elif plan.cluster:
        table = plan.cluster
    else:
        table, workers, scheduler = None, plan.workers, plan.scheduler
    if workers == 0 and scheduler is None:
        return None
    return cluster_spec(table, workers=workers, scheduler=scheduler) or ClusterSpec()


def _open_new(raw: dict[str, Any], output, resolve, stack: ExitStack):
    """(plan, store, sweep id, the cluster ``resolve(plan)`` names), every check made before
    the sweep's folder and manifest are written."""
    plan = plan_sweep(raw)
    out = writable_folder(output or plan.config.output, "--output" if output else "run.output")
    spec = resolve(plan)
    if spec is not None and spec.kind == "scheduler":
        assert spec.address is not None
        check_scheduler(spec.address, "--scheduler")
    sweep_id = new_run_id(plan.config, out)
    store = RunStore(out / sweep_id)
    stack.enter_context(store.writer_lock())
    manifest = new_manifest(
        sweep_id,
        raw,
        plan.metrics,
        [o.to_dict() for o in plan.config.objectives],
        [c.to_dict() for c in plan.config.constraints],
        plan.space_name,
        plan.units,
        plan.fidelity,
    )
    manifest.update(
        kind="sweep",
        method=raw["sweep"].get("method", "grid"),
        points=len(plan.points),
        chunks=plan.chunks,
        chunk_size=plan.chunk_size,
        parameters=[p.name for p in plan.parameters],
        arch_defaults=plan.arch_defaults,
    )
    store.write_manifest(manifest)
    return plan, store, sweep_id, spec


def _execute(
    plan: SweepPlan,
    pending: list[int],
    store: RunStore,
    sweep_id: str,
    spec: ClusterSpec | None,
    bar,
    announce: Callable[[str], None] | None = None,
) -> None:
    if spec is None:  # in this process
        base_json = plan.base_json
        tail = (str(store.path), plan.schema, plan.record_shape(sweep_id))
        for k in pending:
            run_chunk(base_json, plan.points, plan.chunk_size, plan.archs, k, *tail)
            bar.update(plan.chunk_len(k))
        return
    raw_json = json.dumps(plan.raw, sort_keys=True, default=str)
    with open_cluster(spec, announce) as client:

        def submit(k: int):
            return client.submit(
                run_planned_chunk,
                raw_json,
                sweep_id,
                k,
                str(store.path),
                key=f"dse-sweep-{sweep_id}-chunk-{k}",
                retries=3,
                pure=False,
            )

        # a bounded number of chunks in flight, each task a config and an index
        window = max(64, 4 * worker_count(client))
        for future in windowed(client, submit, pending, window, spec.worker_timeout_s, announce):
            k, n = future.result()
            bar.update(n)


__all__ = ["METHODS", "Parameter", "SweepPlan", "SweepResult", "make_points", "plan_sweep", "sweep"]
