"""Dask execution: a LocalCluster by default, or an existing scheduler, for sweeps and for
searches' batch evaluation.

Workers never receive live evaluators: a task carries the run's config as plain data, and each
worker process builds the experiment from it once (cached per process by the config's JSON),
so user plugins, torch proxies and simulators all work the same on a laptop and on a cluster.

On a batch cluster, ``[cluster] kind = "slurm"`` (or ``--cluster slurm``) submits the workers
as jobs (:mod:`dse.cluster`); an existing scheduler is ``--scheduler tcp://host:8786``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dse.config import parse_config
from dse.experiment import build


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
def evaluation_pool(cluster, config: dict[str, Any]) -> Iterator[Callable | None]:
    """A batch evaluator on the Dask cluster ``cluster`` (a :class:`~dse.cluster.ClusterSpec`)
    describes, else None (evaluate in-process)."""
    if cluster is None:
        yield None
        return
    from dse.cluster import open_cluster

    with open_cluster(cluster) as client:
        yield PoolEvaluator(client, config)
