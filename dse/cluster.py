"""Where work runs: a Dask cluster described as plain data (``[cluster]``, ``--cluster``).

``kind`` picks the cluster: ``local`` (a LocalCluster of ``workers`` processes on this
machine), ``scheduler`` (an existing Dask scheduler at ``address``), or a batch system through
dask-jobqueue: ``slurm``, ``pbs``, ``sge``, ``lsf``. A batch cluster submits ``jobs`` jobs of
``cores`` cores, ``processes`` Dask worker processes and ``memory`` each, for ``walltime``, on
``queue`` under ``account``, with ``job_extra_directives`` (e.g. ``["--qos=low"]``); with
``maximum_jobs`` it is adaptive instead (between ``minimum_jobs`` and ``maximum_jobs`` jobs,
replacing jobs that end). Every field is checked like any other config field (exit 2 naming
it).

What a cluster does to a command's work (:func:`completed`): tasks of a job that is cancelled,
preempted or killed at its walltime are re-run by Dask on the workers that remain, and each
departure is reported; when no worker is left (or none ever started: a full queue) for
``worker_timeout_s`` seconds, :class:`ClusterError` stops the command (exit 1) with every
finished chunk kept, to be resumed. The scheduler lives in the client process; the workers need
the same Python environment and a file system shared with it (results are written by the
workers).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from dse.params import ConfigError, create, expect

#: batch systems dask-jobqueue drives, by kind (a new one adds a line)
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
KINDS = ("local", "scheduler", *JOBQUEUE)
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B)", re.IGNORECASE)
_WALLTIME = re.compile(r"(\d+-)?\d{1,2}:\d{2}(:\d{2})?")


class ClusterError(RuntimeError):
    """The cluster could not do the work (no worker started, every worker gone): the command
    stops with exit 1; every finished chunk is kept for ``--resume``."""


@dataclass(frozen=True)
class ClusterSpec:
    """``[cluster]`` (see the module docstring); time in seconds, memory as jobqueue writes
    it (``"2GB"``)."""

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    cores: int = 1
    processes: int = 1
    memory: str = "2GB"
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    jobs: int = 1
    minimum_jobs: int | None = None
    maximum_jobs: int | None = None
    worker_timeout_s: float = 300.0
    log_directory: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not allowed; allowed values: {list(KINDS)}")
        if self.kind == "scheduler" and not self.address:
            raise ValueError("address: kind = 'scheduler' needs the scheduler's address")
        if self.kind != "scheduler" and self.address:
            raise ValueError(f"address: only kind = 'scheduler' takes one (kind is {self.kind!r})")
        if self.workers is not None and (self.kind != "local" or self.workers < 1):
            raise ValueError("workers: a number >= 1, for kind = 'local' only")
        for name in ("cores", "processes", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not _MEMORY.fullmatch(self.memory.strip()):
            raise ValueError(f"memory: {self.memory!r} is not a size such as '2GB' or '500MiB'")
        if not _WALLTIME.fullmatch(self.walltime.strip()):
            raise ValueError(
                f"walltime: {self.walltime!r} is not a time such as '01:00:00' or '1-00:00:00'"
            )
        low, high = self.minimum_jobs, self.maximum_jobs
        if low is not None and high is None:
            raise ValueError("minimum_jobs: give maximum_jobs too (an adaptive cluster)")
        if high is not None and (high < 1 or (low or 0) < 0 or (low or 0) > high):
            raise ValueError(
                f"maximum_jobs: need 0 <= minimum_jobs <= maximum_jobs and maximum_jobs >= 1, "
                f"got {low} and {high}"
            )
        if not self.worker_timeout_s > 0:
            raise ValueError(f"worker_timeout_s: must be > 0, got {self.worker_timeout_s}")

    @property
    def batch(self) -> bool:
        """Whether jobs of a batch system run the workers."""
        return self.kind in JOBQUEUE

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record of the cluster used (set fields only)."""
        d = asdict(self)
        d["job_extra_directives"] = list(self.job_extra_directives)
        return {k: v for k, v in d.items() if v is not None and v != []}


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


def parse_cluster(table: dict[str, Any], where: str = "cluster") -> ClusterSpec:
    """A ``[cluster]`` table as a :class:`ClusterSpec` (exit 2 naming a bad field)."""
    table = dict(expect(table, dict, where))
    if "job_extra_directives" in table:
        table["job_extra_directives"] = tuple(
            expect(table["job_extra_directives"], list[str], f"{where}.job_extra_directives")
        )
    return create(ClusterSpec, table, where)


def parse_cluster_params(items: Iterable[str], where: str = "--cluster-param") -> dict[str, Any]:
    """``KEY=VALUE`` strings as a table (values read as TOML values where they parse: numbers,
    ``["--qos=low"]``; else as strings)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}: expected KEY=VALUE, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        # a TOML time or date (walltime=00:30:00) stays the string the user wrote
        out[key.strip()] = parsed if isinstance(parsed, (int, float, str, list)) else value
    return out


def cluster_spec(
    table: dict[str, Any] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> ClusterSpec | None:
    """The cluster a command runs on: a ``[cluster]`` table (the config's, or what
    ``--cluster`` gave: :func:`cluster_table`), unless ``scheduler`` (a running scheduler's
    address) or ``workers`` (a LocalCluster's size), the shorthands, name another. None: run in
    this process."""
    if scheduler is not None:
        return parse_cluster({"kind": "scheduler", "address": scheduler})
    if workers is not None:
        return parse_cluster({"kind": "local", "workers": workers})
    return parse_cluster(table) if table else None


def add_cluster_arguments(p) -> None:
    """``--cluster KIND`` and ``--cluster-param KEY=VALUE`` (one way for every command)."""
    p.add_argument(
        "--cluster",
        choices=KINDS,
        default=None,
        help="where the work runs: a local cluster, a running scheduler, or jobs of a batch "
        "system (replaces the config's [cluster]; fields with --cluster-param)",
    )
    p.add_argument(
        "--cluster-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [cluster] field, e.g. jobs=2, walltime=00:30:00, "
        'job_extra_directives=["--qos=low"] (repeatable)',
    )


def cluster_table(args) -> dict[str, Any] | None:
    """The ``[cluster]`` table ``--cluster`` and ``--cluster-param`` give (None: neither)."""
    if args.cluster is None:
        if args.cluster_param:
            raise ConfigError("--cluster-param: give --cluster KIND too")
        return None
    table = {"kind": args.cluster, **parse_cluster_params(args.cluster_param)}
    parse_cluster(table, "--cluster")
    return table


def _jobqueue_cluster(spec: ClusterSpec):
    if importlib.util.find_spec("dask_jobqueue") is None:
        raise ConfigError(
            f"cluster.kind: {spec.kind!r} needs dask-jobqueue; install it with "
            "pip install 'dse[cluster]'"
        )
    import dask_jobqueue

    factory = getattr(dask_jobqueue, JOBQUEUE[spec.kind])
    kwargs: dict[str, Any] = {
        "cores": spec.cores,
        "processes": spec.processes,
        "memory": spec.memory,
        "walltime": spec.walltime,
        "job_extra_directives": list(spec.job_extra_directives),
        "scheduler_options": {"dashboard_address": ":0"},
    }
    for key in ("queue", "account", "log_directory"):
        if getattr(spec, key) is not None:
            kwargs[key] = getattr(spec, key)
    cluster = factory(**kwargs)
    if spec.maximum_jobs is not None:
        cluster.adapt(minimum_jobs=spec.minimum_jobs or 0, maximum_jobs=spec.maximum_jobs)
    else:
        cluster.scale(jobs=spec.jobs)
    return cluster


@contextmanager
def open_cluster(spec: ClusterSpec, announce: Callable[[str], None] | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster ``spec`` describes, closed (and its jobs
    cancelled) on exit. A batch cluster waits up to ``worker_timeout_s`` for its first worker
    (:class:`ClusterError` when none starts). ``announce`` receives one line with the
    dashboard's address."""
    from distributed import Client, LocalCluster

    say = announce or (lambda line: None)
    if spec.kind == "scheduler":
        assert spec.address is not None
        check_scheduler(spec.address, "cluster.address")
        with Client(spec.address) as client:
            say(f"Dask dashboard: {client.dashboard_link}")
            yield client
        return
    if spec.kind == "local":
        n = spec.workers or os.cpu_count() or 1
        dashboard = importlib.util.find_spec("bokeh") is not None
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
            say(
                f"Dask dashboard: {client.dashboard_link}"
                if dashboard
                else "Dask dashboard: install bokeh (pip install 'dse[cluster]') to watch the "
                "workers"
            )
            yield client
        return
    with _quiet_dask(), _jobqueue_cluster(spec) as cluster, Client(cluster) as client:
        jobs = spec.maximum_jobs or spec.jobs
        say(f"{spec.kind}: up to {jobs} job(s) submitted; Dask dashboard: {client.dashboard_link}")
        try:
            client.wait_for_workers(1, timeout=spec.worker_timeout_s)
        except TimeoutError:
            raise ClusterError(
                f"cluster: no worker started within {spec.worker_timeout_s:g} s ({jobs} job(s) "
                f"submitted to {spec.kind}; {pending_reason(spec)}); nothing was lost: run "
                "again, or resume, when the queue has room"
            ) from None
        yield client


@contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own log lines off while a batch cluster runs (a worker's death is told in one
    line of ours, not a scheduler traceback); restored afterwards."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def pending_reason(spec: ClusterSpec) -> str:
    """Why the batch system holds the jobs, where it says (SLURM's squeue); else a hint."""
    if spec.kind != "slurm":
        return "the queue may be full"
    import subprocess

    try:
        out = subprocess.run(
            ["squeue", "--me", "-h", "-n", "dask-worker", "-o", "%T %r"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"squeue says {out.strip()!r}" if out.strip() else "the queue may be full"


#: how many workers may die running one task before Dask gives up on it (its default)
_ALLOWED_FAILURES = 3


def worker_names(client) -> dict[str, str]:
    """Address -> name of every worker the scheduler knows now."""
    return {a: str(w.get("name", a)) for a, w in client.scheduler_info()["workers"].items()}


def completed(
    client,
    futures: list,
    timeout_s: float,
    announce: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> Iterator[Any]:
    """Each of ``futures`` (already submitted) as it finishes; see :func:`windowed`."""
    return windowed(client, lambda f: f, futures, len(futures), timeout_s, announce, poll_s)


def windowed(
    client,
    submit: Callable[[Any], Any],
    items: Iterable[Any],
    window: int,
    timeout_s: float,
    announce: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> Iterator[Any]:
    """``submit(item)`` for each of ``items``, at most ``window`` unfinished at a time (so a
    million-point sweep never holds all its tasks in the client), yielding each future as it
    finishes. Workers that leave are reported through ``announce`` (Dask re-runs their
    unfinished tasks on the others); a task whose workers keep dying, or no worker alive for
    ``timeout_s`` seconds with tasks unfinished, is a :class:`ClusterError`."""
    from distributed import wait

    say = announce or (lambda line: None)
    source = iter(items)
    pending: set = set()
    exhausted = False
    known = worker_names(client)
    alone_since: float | None = None
    left = 0
    while True:
        while not exhausted and len(pending) < window:
            item = next(source, _END)
            if item is _END:
                exhausted = True
            else:
                pending.add(submit(item))
        if not pending:
            return
        try:
            done = wait(list(pending), timeout=poll_s, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            done = set()
        for future in done:
            pending.discard(future)
            if future.status == "error" and type(future.exception()).__name__ == "KilledWorker":
                raise ClusterError(
                    f"cluster: a task's workers died {_ALLOWED_FAILURES} times running it "
                    "(out of memory? give the jobs more: memory = ...); every finished chunk is "
                    "kept: resume to finish"
                )
            yield future
        now = worker_names(client)
        for address in sorted(set(known) - set(now)):
            left += 1
            say(
                f"worker {known[address]} left (its job ended, was cancelled or hit its "
                "walltime); its unfinished tasks run again on the other workers"
            )
        known = now
        if now:
            alone_since = None
        elif pending:
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since > timeout_s:
                raise ClusterError(
                    f"cluster: no worker alive for {timeout_s:g} s ({left} left, {len(pending)} "
                    "task(s) unfinished); every finished chunk is kept: resume to finish"
                )


_END = object()
