"""Parameter sweeps: grid, random, Latin-hypercube or Sobol points over config values, evaluated
in parallel on Dask (see :mod:`dse.sweeps.plan` for the config and :mod:`dse.sweeps.execute`
for how chunks are written)."""

from __future__ import annotations

import json
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dse.config import identity
from dse.parallel import dask_client
from dse.params import ConfigError
from dse.results.store import RunStore, new_manifest, recording_outcome
from dse.runner import new_run_id
from dse.sweeps.execute import SweepPlan, plan_sweep, run_chunk
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
        return json.loads(json.dumps(config))  # a private, plain copy
    p = Path(config)
    try:
        return tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read sweep config {str(p)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None


def sweep(
    config: dict | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    output: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run a sweep (a TOML path or a dict shaped like it) or, with ``resume``, finish one.

    ``workers`` (a new LocalCluster; 0 evaluates in this process) and ``scheduler`` (an existing
    Dask scheduler's address) override ``[sweep]``'s. Returns where the results are.
    """
    from dse.results import resolve_run

    if workers is not None and workers < 0:
        raise ConfigError(f"--workers: must be >= 0 (0: evaluate in this process), got {workers}")
    if resume is not None:
        try:
            path = resolve_run(resume, output or "results")
        except FileNotFoundError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        store = RunStore(path)
        manifest = store.read_manifest()
        raw = manifest["config"]
        if config is not None and identity(_raw(config)) != identity(raw):
            raise ConfigError(f"--resume: the config differs from sweep {manifest['run_id']!r}")
        plan = plan_sweep(raw)
        sweep_id = manifest["run_id"]
        store.update_manifest(status="running", resumed=manifest.get("resumed", 0) + 1)
    else:
        if config is None:
            raise ConfigError("sweep: a config is required unless --resume is given")
        raw = _raw(config)
        plan = plan_sweep(raw)  # every check before anything is written
        out = Path(output or plan.config.output)
        sweep_id = new_run_id(plan.config, out)
        store = RunStore(out / sweep_id)
        manifest = new_manifest(
            sweep_id,
            raw,
            plan.metrics,
            [o.to_dict() for o in plan.config.objectives],
            [c.to_dict() for c in plan.config.constraints],
            plan.space_name,
            plan.units,
        )
        manifest.update(
            kind="sweep",
            method=raw["sweep"].get("method", "grid"),
            points=len(plan.points),
            chunks=plan.chunks,
            chunk_size=plan.chunk_size,
            parameters=[p.name for p in plan.parameters],
        )
        store.write_manifest(manifest)
    workers = plan.workers if workers is None else workers
    scheduler = plan.scheduler if scheduler is None else scheduler
    done = {int(p.stem.split("-")[1]) for p in store.part_files()}
    pending = [k for k in range(plan.chunks) if k not in done]
    bar = tqdm(
        total=len(plan.points),
        initial=len(plan.points) - sum(len(plan.chunk(k)) for k in pending),
        disable=None if progress else True,
        file=sys.stderr,
        desc=sweep_id,
        unit="pt",
        dynamic_ncols=True,
    )
    start = time.monotonic()

    def closing(status: str) -> dict[str, Any]:
        bar.close()
        return {"chunks_done": len(store.part_files())}

    with recording_outcome(store, closing) as outcome:
        _execute(plan, pending, store, sweep_id, workers, scheduler, bar)
    return SweepResult(
        sweep_id,
        store.path,
        len(plan.points),
        plan.chunks,
        len(pending),
        time.monotonic() - start,
        outcome.status,
    )


def _execute(
    plan: SweepPlan,
    pending: list[int],
    store: RunStore,
    sweep_id: str,
    workers: int | None,
    scheduler: str | None,
    bar,
) -> None:
    base_json = plan.base_json
    tail = (str(store.path), plan.schema, plan.record_shape(sweep_id))
    if workers == 0 and scheduler is None:  # in this process
        for k in pending:
            run_chunk(base_json, plan.chunk(k), plan.archs, k, *tail)
            bar.update(len(plan.chunk(k)))
        return
    from distributed import as_completed

    with dask_client(workers, scheduler) as client:
        archs = client.scatter(plan.archs, broadcast=True) if plan.archs else plan.archs
        futures = [
            client.submit(
                run_chunk,
                base_json,
                plan.chunk(k),
                archs,
                k,
                *tail,
                key=f"dse-sweep-{sweep_id}-chunk-{k}",
                retries=3,
                pure=False,
            )
            for k in pending
        ]
        for future in as_completed(futures):
            k, n = future.result()
            bar.update(n)


__all__ = ["METHODS", "Parameter", "SweepPlan", "SweepResult", "make_points", "plan_sweep", "sweep"]
