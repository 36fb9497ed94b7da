"""Run configuration: TOML in, validated frozen dataclasses out (``tomllib``, never ``eval``).

Format::

    [run]
    name = "nb201"            # run ids are <name>-<UTC time>-s<seed> unless --run-id is given
    seed = 0
    output = "results"
    plugins = ["mypkg.myspace"]  # optional: modules to import; their @register decorators run

    [space]
    name = "nasbench201"      # every other key is a parameter of the space
    dataset = "cifar10"

    [proxies.analytic]        # one table per proxy / simulator, keyed by its registered name
    [simulators.gpu]          # (simulators come from plugins)

    [[objectives]]
    metric = "hook_flops"
    direction = "max"         # "min" or "max"

    [[constraints]]
    metric = "params"
    max = 1.0e6               # and/or min = ...

    [search]
    driver = "pymoo"          # every key but driver / max_evaluations / max_seconds /
    algorithm = "nsga2"       # prune_infeasible is a parameter of the driver
    pop_size = 32
    max_evaluations = 500
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dse.configfile import check_depth, read_config_file
from dse.objectives import Constraint, Objective
from dse.params import ConfigError, create, expect

SECTIONS = (
    "run",
    "space",
    "proxies",
    "simulators",
    "objectives",
    "constraints",
    "search",
    "cluster",
)


@dataclass(frozen=True)
class PluginSpec:
    """A registered plugin by name with its parameters (validated when the run is built)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpec:
    """``[search]``: the driver, its budget, warm start and where batches are evaluated; every
    other key is a parameter of the driver."""

    driver: str = "pymoo"
    max_evaluations: int = 200
    max_seconds: float | None = None
    prune_infeasible: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    max_stagnant_evaluations: int | None = (
        None  # stop after this many proposals without a hypervolume gain
    )
    warm_start: str | None = None  # an earlier run (directory or id) to start from
    warm_start_size: int = 50  # at most this many of its best designs
    workers: int | None = None  # evaluate batches on a Dask LocalCluster of this many workers
    scheduler: str | None = None  # ... or on an existing Dask scheduler (address)

    def __post_init__(self):
        for key, low in (
            ("max_evaluations", 1),
            ("max_stagnant_evaluations", 1),
            ("warm_start_size", 1),
            ("workers", 1),
        ):
            value = getattr(self, key)
            if value is not None and value < low:
                raise ValueError(f"{key}: must be >= {low}, got {value}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds: must be > 0, got {self.max_seconds}")
        if self.workers is not None and self.scheduler is not None:
            raise ValueError(
                "workers: give workers (a local Dask cluster) or scheduler (an existing one), "
                "not both"
            )

    #: keys that only say how long or where a run executes, not which records it produces
    EXECUTION_KEYS = (
        "max_evaluations",
        "max_seconds",
        "max_stagnant_evaluations",
        "workers",
        "scheduler",
    )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "driver": self.driver,
            "max_evaluations": self.max_evaluations,
            "prune_infeasible": self.prune_infeasible,
            **self.params,
        }
        for key in (
            "max_seconds",
            "max_stagnant_evaluations",
            "warm_start",
            "workers",
            "scheduler",
        ):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.warm_start is not None:
            out["warm_start_size"] = self.warm_start_size
        return out


#: a run name or id: one path component of word characters and ``. _ - + = @ ,``, not starting
#: with a dot, at most 100 characters (run ids are folder names under the output folder)
_PLAIN_NAME = re.compile(r"[^\W][\w.+=@,-]{0,99}")


def check_plain_name(value: str, field: str) -> str:
    """``value`` if it can name a run folder (see :data:`_PLAIN_NAME`); else a ValueError that
    names ``field`` and what is allowed."""
    if not _PLAIN_NAME.fullmatch(value):
        raise ValueError(
            f"{field}: must be 1-100 letters, digits or . _ - + = @ , not starting with '.', "
            f"'-' or another punctuation mark (one folder name), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class RunSection:
    """``[run]``: the run's name (run ids are ``<name>-<UTC time>-s<seed>``), seed, output
    folder, and plugin modules to import (from ``plugin_dirs``, a config file's own folder)."""

    name: str = "run"
    seed: int = 0
    output: str = "results"
    plugins: tuple[str, ...] = ()
    plugin_dirs: tuple[str, ...] = ()

    def __post_init__(self):
        check_plain_name(self.name, "name")
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class RunConfig:
    space: PluginSpec
    objectives: tuple[Objective, ...]
    name: str = "run"
    seed: int = 0
    output: str = "results"
    proxies: tuple[PluginSpec, ...] = ()
    simulators: tuple[PluginSpec, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    search: SearchSpec = SearchSpec()
    plugins: tuple[str, ...] = ()
    #: folders put on the import path before ``plugins`` are imported (a config file's own
    #: folder, see dse.configfile)
    plugin_dirs: tuple[str, ...] = ()
    #: ``[cluster]``: where batches are evaluated (:mod:`dse.cluster`; checked when parsed)
    cluster: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped plain data (what the manifest stores and ``--resume`` compares)."""
        search = self.search.to_dict()
        return {
            "run": {
                "name": self.name,
                "seed": self.seed,
                "output": self.output,
                **({"plugins": list(self.plugins)} if self.plugins else {}),
                **({"plugin_dirs": list(self.plugin_dirs)} if self.plugin_dirs else {}),
            },
            "space": {"name": self.space.name, **self.space.params},
            "proxies": {p.name: dict(p.params) for p in self.proxies},
            "simulators": {s.name: dict(s.params) for s in self.simulators},
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [c.to_dict() for c in self.constraints],
            "search": search,
            **({"cluster": dict(self.cluster)} if self.cluster else {}),
        }

    def identity(self) -> dict[str, Any]:
        """:func:`identity` of this config."""
        return identity(self.to_dict())


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run or sweep config (TOML-shaped) that decide which records it produces:
    not its name or where they are written, not the budget (a longer run of the same config
    extends a shorter one's trajectory), not where batches are evaluated. A resume must match
    the run's identity; this is the one place it is computed."""
    out = json.loads(json.dumps(dict(config), default=str))
    out.pop("cluster", None)  # where it runs, not what it produces
    run = out.get("run", {})
    out["run"] = {"seed": run.get("seed", 0), "plugins": list(run.get("plugins", []))}
    for section in ("search", "sweep"):
        if isinstance(out.get(section), dict):
            out[section] = {
                k: v for k, v in out[section].items() if k not in SearchSpec.EXECUTION_KEYS
            }
    return out


def evaluation_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run config that decide an architecture's metrics (so an earlier run's
    rows may be reused, as a warm start does): plugins, space, providers, constraints, pruning."""
    return {
        "plugins": config.get("run", {}).get("plugins", []),
        "prune": config.get("search", {}).get("prune_infeasible", True),
        **{k: config.get(k) for k in ("space", "proxies", "simulators", "constraints")},
    }


def _table(data: Mapping[str, Any], key: str) -> dict:
    return dict(expect(data.get(key, {}), dict, key))


def _plugins(data: Mapping[str, Any], section: str) -> tuple[PluginSpec, ...]:
    return tuple(
        PluginSpec(name, dict(expect(params, dict, f"{section}.{name}")))
        for name, params in _table(data, section).items()
    )


def _objectives(data: Mapping[str, Any], required: bool) -> tuple[Objective, ...]:
    raw = data.get("objectives")
    if raw is None and required:
        raise ConfigError(
            "objectives: missing required section ([[objectives]] with metric and direction)"
        )
    raw = expect([] if raw is None else raw, list[dict], "objectives")
    if not raw and required:
        raise ConfigError("objectives: at least one objective is required")
    out: list[Objective] = []
    for i, table in enumerate(raw):
        objective = create(Objective, table, f"objectives[{i}]")
        earlier = [j for j, prev in enumerate(out) if prev.metric == objective.metric]
        if earlier:
            raise ConfigError(
                f"objectives[{i}].metric: {objective.metric!r} is already "
                f"objectives[{earlier[0]}]; an objective is declared once"
            )
        out.append(objective)
    return tuple(out)


def _constraints(data: Mapping[str, Any]) -> tuple[Constraint, ...]:
    raw = expect(data.get("constraints", []), list[dict], "constraints")
    return tuple(create(Constraint, table, f"constraints[{i}]") for i, table in enumerate(raw))


def _search(data: Mapping[str, Any]) -> SearchSpec:
    """``[search]``: the keys SearchSpec declares are its fields; every other key is a
    parameter of the driver (checked against the driver when the run is built)."""
    table = _table(data, "search")
    own = {f.name for f in fields(SearchSpec)} - {"params"}
    driver_params = {k: v for k, v in table.items() if k not in own}
    return create(
        SearchSpec,
        {**{k: v for k, v in table.items() if k in own}, "params": driver_params},
        "search",
    )


def parse_config(
    data: dict[str, Any], *, require_objectives: bool = True, sections: tuple[str, ...] = SECTIONS
) -> RunConfig:
    """Validate the structure of a config (plugin names and parameters are checked at build),
    every section through :func:`dse.params.bind_params`. Sweeps need no objectives
    (``require_objectives=False``)."""
    check_depth(data, "config")
    for key in data:
        if key not in sections:
            raise ConfigError(f"{key}: unknown section; allowed: {', '.join(SECTIONS)}")
    run = create(RunSection, _table(data, "run"), "run")
    if "space" not in data:
        raise ConfigError("space: missing required section (with at least space.name)")
    space = _table(data, "space")
    if "name" not in space:
        raise ConfigError("space.name: missing required field")
    space_name = expect(space.pop("name"), str, "space.name")
    cluster = _table(data, "cluster")
    if cluster:
        from dse.cluster import parse_cluster

        parse_cluster(cluster)  # every field checked now, the client made when the run starts
    return RunConfig(
        space=PluginSpec(space_name, space),
        objectives=_objectives(data, require_objectives),
        name=run.name,
        seed=run.seed,
        output=run.output,
        proxies=_plugins(data, "proxies"),
        simulators=_plugins(data, "simulators"),
        constraints=_constraints(data),
        search=_search(data),
        plugins=run.plugins,
        plugin_dirs=run.plugin_dirs,
        cluster=cluster,
    )


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file; its relative paths are taken from its folder
    (:mod:`dse.configfile`)."""
    return parse_config(read_config_file(path))


DEMO_CONFIG = """\
# The built-in demo: NSGA-II on NAS-Bench-201 (CIFAR-10) trading capacity for size.
# FLOPs stand in for accuracy here (Spearman 0.72 with CIFAR-10 accuracy on the
# 362 cells of nasbench201_naslib.csv); configure a trained or zero-cost proxy for real work.
[run]
name = "demo"
seed = 0

[space]
name = "nasbench201"
dataset = "cifar10"

[proxies.analytic]

[[objectives]]
metric = "hook_flops"
direction = "max"

[[objectives]]
metric = "params"
direction = "min"

[[constraints]]
metric = "params"
max = 1.2e6

[search]
driver = "pymoo"
algorithm = "nsga2"
pop_size = 24
max_evaluations = 240
"""
