"""Dask execution: a LocalCluster by default, or an existing scheduler, for sweeps and for
searches' batch evaluation.

Workers never receive live evaluators: a task carries the run's config as plain data, and each
worker process builds the experiment from it once (cached per process by the config's JSON),
so user plugins, torch proxies and simulators all work the same on a laptop and on a cluster.

On a CPU cluster, start a scheduler and workers with the job system and pass its address
(``--scheduler tcp://host:8786`` or ``[search] scheduler = ...``); see docs/clusters.md for a
dask-jobqueue (SLURM/PBS) recipe.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dse.config import parse_config
from dse.experiment import build
from dse.params import ConfigError


def check_scheduler(address: str, field: str, timeout_s: float = 5.0) -> None:
    """Refuse (ConfigError naming ``field``) a Dask scheduler address nothing answers at, in
    ``timeout_s`` seconds, before a run or sweep folder is made (Dask itself waits 30 s and
    then fails inside the run)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise ConfigError(
            f"{field}: {address!r} is not a scheduler address such as tcp://HOST:PORT"
        )
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"{field}: no Dask scheduler answers at {address} ({exc.strerror or exc}); start one "
            "(dask scheduler) or give workers = N for a local cluster"
        ) from None


@contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` if given, else to a new
    ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one per core).
    ``announce`` receives one line with the Dask dashboard's address (a LocalCluster serves it
    on a free port when bokeh is installed, the ``cluster`` extra; else the line says so)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            if announce is not None:
                announce(f"Dask dashboard: {client.dashboard_link}")
            yield client
        return
    n = workers or os.cpu_count() or 1
    dashboard = importlib.util.find_spec("bokeh") is not None
    # a free port for the dashboard (and the scheduler's HTTP endpoint), so two clusters on one
    # machine do not race for 8787 and warn
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if dashboard else None,
            scheduler_kwargs={"dashboard_address": ":0"},
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        if announce is not None:
            announce(
                f"Dask dashboard: {client.dashboard_link}"
                if dashboard
                else "Dask dashboard: install bokeh (pip install 'dse[cluster]') to watch the "
                "workers"
            )
        yield client


def worker_count(client) -> int:
    return max(1, len(client.scheduler_info()["workers"]))


@functools.lru_cache(maxsize=256)
def experiment_for(config_json: str):
    """The experiment a config (JSON) describes, built once per process (workers, sweep chunks)."""
    return build(parse_config(json.loads(config_json), require_objectives=False))


def evaluate_on_worker(config_json: str, archs: list[dict]) -> list:
    """Task body: evaluate ``archs`` with the evaluator the config describes."""
    return experiment_for(config_json).evaluator.evaluate_batch(archs)


class PoolEvaluator:
    """``SearchProblem.batch_evaluate`` on a Dask client: a batch is split into one task per
    worker and the results come back in order."""

    def __init__(self, client, config: dict[str, Any]):
        self.client = client
        self.config_json = json.dumps(config, sort_keys=True)

    def __call__(self, archs: Sequence[dict], graphs: Sequence | None = None) -> list:
        archs = list(archs)
        if not archs:
            return []
        n = min(len(archs), worker_count(self.client))
        chunks = [archs[i::n] for i in range(n)]  # strided: equal sizes, order restored below
        futures = self.client.map(evaluate_on_worker, [self.config_json] * n, chunks, pure=False)
        parts = self.client.gather(futures)
        out: list = [None] * len(archs)
        for i, part in enumerate(parts):
            out[i::n] = part
        return out


@contextmanager
def evaluation_pool(
    workers: int | None, scheduler: str | None, config: dict[str, Any]
) -> Iterator[Callable | None]:
    """A batch evaluator on Dask when ``workers`` or ``scheduler`` is set, else None (evaluate
    in-process)."""
    if workers is None and scheduler is None:
        yield None
        return
    with dask_client(workers, scheduler) as client:
        yield PoolEvaluator(client, config)
