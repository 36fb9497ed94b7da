"""``dse sweep``: evaluate a plan of config points on Dask, one Parquet part per chunk.

A sweep directory has the layout of a run (``manifest.json``, ``evals/part-NNNNNN.parquet``,
the run schema plus one column per swept parameter), so ``dse.results.load``, ``dse show`` and
``dse report`` read it like a run; ``eval_id`` is the point's index in the plan and ``batch``
its chunk.

Fault tolerance comes from naming, not bookkeeping: chunk ``k`` always holds the same points
and is always written to ``part-k`` (temp file, fsync, rename). A worker that dies mid-chunk has
its task re-run by Dask on another worker, which writes the same file; a chunk that finished
twice is the same file written twice. So no point is lost or duplicated, and ``--resume`` simply
skips chunks whose part exists.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dse.config import RunConfig, parse_config
from dse.experiment import build
from dse.gcpolicy import search_gc
from dse.ledger import Proposal, RunLedger
from dse.parallel import experiment_for
from dse.params import ConfigError, create, expect
from dse.problem import ProblemDefinition, RecordShape, fallback_hash
from dse.results.store import RunStore, run_schema
from dse.sweeps.plan import (
    ARCH,
    METHODS,
    Parameter,
    Points,
    listed_archs,
    make_points,
    parse_parameter,
)

_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}


@dataclass
class SweepPlan:
    """A validated sweep: base config, parameters, points, chunks and the output schema."""

    config: RunConfig
    raw: dict[str, Any]  # the TOML-shaped config, [sweep] included
    parameters: list[Parameter]
    points: Points
    chunk_size: int
    workers: int | None
    scheduler: str | None
    schema: pa.Schema
    space_name: str
    metrics: list[str]
    units: dict[str, str]
    providers: list[str]
    archs: dict[str, dict] = field(default_factory=dict)  # arch_id -> decisions, for "arch" lists
    #: what the variables that no parameter sweeps are set to (see :func:`default_arch`)
    arch_defaults: dict[str, Any] = field(default_factory=dict)
    #: metric -> each distinct expected error over the sweep's configurations (Fidelity dicts)
    fidelity: dict[str, list[dict]] = field(default_factory=dict)
    #: ``[cluster]``: where chunks run (:mod:`dse.cluster`; checked when planned)
    cluster: dict[str, Any] = field(default_factory=dict)

    @property
    def base_json(self) -> str:
        """The run config of the sweep's first point, without [sweep], as tasks receive it."""
        return json.dumps(base_config(self.raw), sort_keys=True)

    @property
    def definition(self) -> ProblemDefinition:
        """The sweep's problem: the union of its points' metrics and providers (a sweep
        optimises nothing itself; reports read its objectives from the config)."""
        return ProblemDefinition(
            metrics=tuple(self.metrics), providers=tuple(self.providers), units=self.units
        )

    def record_shape(self, sweep_id: str) -> RecordShape:
        """What every row of this sweep shares."""
        driver = "sweep:" + self.raw["sweep"].get("method", "grid")
        return self.definition.record_shape(sweep_id, self.config.seed, driver, self.space_name)

    @property
    def chunks(self) -> int:
        return math.ceil(len(self.points) / self.chunk_size)

    def chunk(self, k: int) -> list[tuple[int, dict[str, Any]]]:
        start = k * self.chunk_size
        return list(enumerate(self.points[start : start + self.chunk_size], start))

    def chunk_len(self, k: int) -> int:
        """Points in chunk ``k`` (without making them)."""
        return max(0, min(self.chunk_size, len(self.points) - k * self.chunk_size))


def _set(config: dict, path: str, value: Any) -> None:
    """config[a][b][c] = value for path "a.b.c" (sections and plugin tables must exist)."""
    keys = path.split(".")
    node = config
    for i, key in enumerate(keys[:-1]):
        if key not in node or not isinstance(node[key], dict):
            raise ConfigError(
                f"sweep.parameters.{path}: {'.'.join(keys[: i + 1])!r} is not a table of the "
                "config "
                f"(sweep a proxy's or simulator's parameter, or space.<param>)"
            )
        node = node[key]
    node[keys[-1]] = value


def point_config(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The run config (without [sweep]) that a point's non-architecture values describe."""
    cfg = copy.deepcopy(base)
    for name, value in point.items():
        if name != ARCH and not name.startswith(ARCH + "."):
            _set(cfg, name, value)
    return cfg


def base_config(raw: dict[str, Any]) -> dict[str, Any]:
    base = {k: v for k, v in raw.items() if k not in ("sweep", "cluster")}
    base.setdefault("objectives", [])
    base.setdefault("search", {})
    return base


@dataclass(frozen=True)
class SweepSection:
    """``[sweep]``: how points are drawn (``method``; ``points`` for the sampled methods), the
    swept ``parameters``, and where chunks of ``chunk_size`` points run (``workers`` of a
    LocalCluster, 0 for this process, or a running ``scheduler``). Checked by
    :func:`dse.params.bind_params` like every other section."""

    parameters: dict[str, Any]
    method: str = "grid"
    points: int | None = None
    chunk_size: int | None = None
    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"method: {self.method!r} is not allowed; allowed values: {', '.join(METHODS)}"
            )
        if not self.parameters:
            raise ValueError("parameters: a table of at least one parameter is required")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1, got {self.chunk_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers: must be >= 0 (0: in this process), got {self.workers}")


def plan_sweep(raw: dict[str, Any]) -> SweepPlan:
    """Validate a sweep config and lay out its points; raises :class:`ConfigError` naming the
    field."""
    if "sweep" not in raw:
        raise ConfigError("sweep: missing required section [sweep] (method, parameters, ...)")
    section = create(SweepSection, expect(raw["sweep"], dict, "sweep"), "sweep")
    base = base_config(raw)
    config = parse_config(base, require_objectives=False)
    experiment = build(config)
    method, params_spec = section.method, section.parameters
    parameters: list[Parameter] = []
    archs: dict[str, dict] = {}  # arch_id -> decisions, when architectures are listed
    for name, value in params_spec.items():
        if name == ARCH and isinstance(value, (dict, list)):
            archs = listed_archs(experiment.space, value, f"sweep.parameters.{ARCH}")
            parameters.append(Parameter(ARCH, tuple(archs)))
        else:
            parameters.extend(parse_parameter(name, value, experiment.space))
    names = [p.name for p in parameters]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f'sweep.parameters: {repeated[0]!r} is swept twice (arch = "all" already sweeps every '
            f"arch.<variable>)"
        )
    if (
        not any(p.name == ARCH or p.name.startswith(ARCH + ".") for p in parameters)
        and experiment.space.size != 1
    ):
        fixed = {v.name for v in experiment.space.variables if v.cardinality == 1}
        if len(fixed) != len(experiment.space.variables):
            raise ConfigError(
                'sweep.parameters: no architecture is swept; add arch = "all", a list of '
                "architectures, or arch.<variable> = [...] (unswept variables take their first "
                "choice)"
            )
    points = make_points(parameters, method, section.points, config.seed)
    chunk_size = section.chunk_size or max(1, min(500, math.ceil(len(points) / 64)))
    workers, scheduler = section.workers, section.scheduler
    units, providers, fidelity = _validate_values(base, parameters, points[0])
    metrics = list(units)
    schema = run_schema(metrics, providers)
    columns = set(schema.names)
    extra = []
    for p in parameters:
        if p.name == ARCH:  # recorded in the arch / arch_id columns
            continue
        if p.name in columns:
            raise ConfigError(f"sweep.parameters.{p.name}: clashes with a result column")
        extra.append(pa.field(p.name, _TYPES[p.column_type]))
    schema = pa.schema(list(schema) + extra)
    return SweepPlan(
        config,
        raw,
        parameters,
        points,
        chunk_size,
        workers,
        scheduler,
        schema,
        experiment.space.name,
        metrics,
        units,
        providers,
        archs,
        {
            k: v
            for k, v in default_arch(experiment.space).items()
            if not archs and f"{ARCH}.{k}" not in {p.name for p in parameters}
        },
        fidelity,
        _cluster_table(raw),
    )


def _cluster_table(raw: dict[str, Any]) -> dict[str, Any]:
    """The sweep's ``[cluster]`` table, every field checked (:func:`dse.cluster.parse_cluster`)."""
    from dse.cluster import parse_cluster

    table = dict(expect(raw.get("cluster", {}), dict, "cluster"))
    if table:
        parse_cluster(table)
    return table


#: combinations of config values a sweep builds to validate (beyond, each value alone)
MAX_VALIDATED = 256


def _validate_values(
    base: dict[str, Any], parameters: list[Parameter], first: dict[str, Any]
) -> tuple[dict[str, str], list[str], dict[str, list[dict]]]:
    """Build the experiment for every combination of the config parameters' listed values (and
    both ends of every range), or, past :data:`MAX_VALIDATED` combinations, for each value
    varied alone from the first point, so a bad value (or pair: a DSP budget above one board's)
    is reported before anything runs; returns the union of metrics (with their units), of
    provider names and of each metric's distinct expected errors."""
    units: dict[str, str] = {}  # metric -> unit, in order of first sight
    providers: list[str] = []
    fidelity: dict[str, list[dict]] = {}
    axes = [
        (p.name, p.values if p.values is not None else tuple(p.at(np.array([0.0, 1.0 - 1e-12]))))
        for p in parameters
        if p.name != ARCH and not p.name.startswith(ARCH + ".")
    ]
    cases = [dict(first)]
    if math.prod(len(v) for _, v in axes) <= MAX_VALIDATED:
        names = [n for n, _ in axes]
        cases += [
            {**first, **dict(zip(names, combo))}
            for combo in itertools.product(*(v for _, v in axes))
        ]
    else:
        cases += [{**first, name: v} for name, values in axes for v in values]
    seen: set[str] = set()
    for case in cases:
        cfg = point_config(base, case)
        key = json.dumps(cfg, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            experiment = build(parse_config(cfg, require_objectives=False))
        except ConfigError as exc:
            changed = [
                f"{k} = {v!r}"
                for k, v in case.items()
                if k != ARCH and not k.startswith(ARCH + ".")
            ]
            raise ConfigError(f"{exc} (at sweep point {', '.join(changed)})") from None
        for m in experiment.evaluator.metric_names:
            units.setdefault(m, experiment.evaluator.units[m])
        providers += [q.name for q in experiment.evaluator.providers if q.name not in providers]
        for m, f in experiment.evaluator.fidelity.items():
            seen_f = fidelity.setdefault(m, [])
            if f.to_dict() not in seen_f:
                seen_f.append(f.to_dict())
    return units, providers, fidelity


def default_arch(space) -> dict[str, Any]:
    """What a sweep gives the variables it does not sweep: each variable's first choice (the
    manifest lists them as ``arch_defaults``; fix one with ``"arch.<variable>" = value``)."""
    return {v.name: v.value(0) for v in space.variables}


def _point_arch(plan_archs: dict[str, dict], space, point: dict[str, Any]) -> dict:
    if ARCH in point:
        return plan_archs[point[ARCH]]
    arch = default_arch(space)
    arch.update({k.split(".", 1)[1]: v for k, v in point.items() if k.startswith(ARCH + ".")})
    return arch


def run_chunk(
    base_json: str,
    points: Points,
    chunk_size: int,
    archs: dict[str, dict],
    k: int,
    out_dir: str,
    schema: pa.Schema,
    shape: RecordShape,
) -> tuple[int, int]:
    """Task body: evaluate chunk ``k`` (points ``k * chunk_size`` on, made here from the
    sweep's :class:`Points`: a task carries an index, not its points) and write ``part-k``
    atomically; returns (k, rows)."""
    start = k * chunk_size
    chunk = list(enumerate(points[start : start + chunk_size], start))
    base = json.loads(base_json)
    groups: dict[str, list[tuple[int, dict]]] = {}
    for pid, point in chunk:
        key = json.dumps(point_config(base, point), sort_keys=True, default=str)
        groups.setdefault(key, []).append((pid, point))
    evaluated = []
    for key, items in groups.items():
        experiment = experiment_for(key)
        space = experiment.space
        arch_list = [_point_arch(archs, space, p) for _, p in items]
        with search_gc():
            results = experiment.evaluator.evaluate_batch(arch_list)
        for (pid, point), arch, res in zip(items, arch_list, results):
            swept = {name: v for name, v in point.items() if name != ARCH}
            evaluated.append((pid, _proposal(space, arch), res, swept))
    ledger = RunLedger(shape, RunStore(Path(out_dir)), schema)
    return k, ledger.record_points(k, evaluated)


@functools.lru_cache(maxsize=8)
def plan_for(raw_json: str) -> SweepPlan:
    """The plan of a sweep config (JSON), made once per worker process."""
    return plan_sweep(json.loads(raw_json))


def run_planned_chunk(raw_json: str, sweep_id: str, k: int, out_dir: str) -> tuple[int, int]:
    """Task body on a cluster: chunk ``k`` of the sweep ``raw_json`` describes. A task carries
    the config and an index, nothing a lost worker could take with it (scattered data dies with
    the last worker that holds it); each worker plans the sweep once (:func:`plan_for`)."""
    plan = plan_for(raw_json)
    return run_chunk(
        plan.base_json,
        plan.points,
        plan.chunk_size,
        plan.archs,
        k,
        out_dir,
        plan.schema,
        plan.record_shape(sweep_id),
    )


def _proposal(space, arch: dict) -> Proposal:
    try:
        arch_hash, encoding = space.arch_hash(arch), [int(v) for v in space.encode(arch)]
    except Exception:  # noqa: BLE001 - recorded through status/error of the evaluation
        arch_hash, encoding = fallback_hash(arch), []
    return Proposal(arch_hash, arch, space.arch_id(arch), encoding)
