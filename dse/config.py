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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse.configfile import read_config_file
from dse.objectives import Constraint, Objective, check_direction
from dse.params import ConfigError

SECTIONS = ("run", "space", "proxies", "simulators", "objectives", "constraints", "search")


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


def _expect(value: Any, tp: type | tuple, where: str, what: str) -> Any:
    ok = isinstance(value, tp) and not (
        isinstance(value, bool) and tp in (int, float, (int, float))
    )
    if not ok:
        raise ConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    return _expect(value, dict, f"{where}{key}", "a table")


def _plugins(data: dict, section: str) -> tuple[PluginSpec, ...]:
    table = _table(data, section, "")
    out = []
    for name, params in table.items():
        _expect(params, dict, f"{section}.{name}", "a table of parameters")
        out.append(PluginSpec(name, dict(params)))
    return tuple(out)


def _unknown(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key; allowed: {', '.join(allowed)}")


def parse_config(
    data: dict[str, Any], *, require_objectives: bool = True, sections: tuple[str, ...] = SECTIONS
) -> RunConfig:
    """Validate the structure of a config (plugin names and parameters are checked at build).
    Sweeps need no objectives (``require_objectives=False``)."""
    for key in data:
        if key not in sections:
            raise ConfigError(f"{key}: unknown section; allowed: {', '.join(SECTIONS)}")
    run = _table(data, "run", "")
    _unknown(run, ("name", "seed", "output", "plugins", "plugin_dirs"), "run")
    name = _expect(run.get("name", "run"), str, "run.name", "a string")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"run.name: must be a non-empty name without slashes, got {name!r}")
    seed = _expect(run.get("seed", 0), int, "run.seed", "an integer")
    if seed < 0:
        raise ConfigError(f"run.seed: must be >= 0, got {seed}")
    output = _expect(run.get("output", "results"), str, "run.output", "a string")
    plugins = _expect(run.get("plugins", []), list, "run.plugins", "a list of module names")
    for i, mod in enumerate(plugins):
        _expect(mod, str, f"run.plugins[{i}]", "a module name")
    plugin_dirs = _expect(run.get("plugin_dirs", []), list, "run.plugin_dirs", "a list of folders")
    for i, folder in enumerate(plugin_dirs):
        _expect(folder, str, f"run.plugin_dirs[{i}]", "a folder")

    if "space" not in data:
        raise ConfigError("space: missing required section (with at least space.name)")
    space = dict(_table(data, "space", ""))
    if "name" not in space:
        raise ConfigError("space.name: missing required field")
    space_name = _expect(space.pop("name"), str, "space.name", "a string")

    objectives: list[Objective] = []
    raw_obj = data.get("objectives")
    if raw_obj is None and require_objectives:
        raise ConfigError(
            "objectives: missing required section ([[objectives]] with metric and direction)"
        )
    raw_obj = [] if raw_obj is None else raw_obj
    _expect(raw_obj, list, "objectives", "an array of tables ([[objectives]])")
    if not raw_obj and require_objectives:
        raise ConfigError("objectives: at least one objective is required")
    for i, o in enumerate(raw_obj):
        where = f"objectives[{i}]"
        _expect(o, dict, where, "a table")
        _unknown(o, ("metric", "direction", "ref"), where)
        if "metric" not in o:
            raise ConfigError(f"{where}.metric: missing required field")
        metric = _expect(o["metric"], str, f"{where}.metric", "a string")
        earlier = [j for j, prev in enumerate(objectives) if prev.metric == metric]
        if earlier:
            raise ConfigError(
                f"{where}.metric: {metric!r} is already objectives[{earlier[0]}]; "
                "an objective is declared once"
            )
        try:
            direction = check_direction(o.get("direction", "min"), f"{where}.direction")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        ref = o.get("ref")
        if ref is not None:
            ref = float(_expect(ref, (int, float), f"{where}.ref", "a number"))
        objectives.append(Objective(metric, direction, ref))

    constraints = []
    raw_con = data.get("constraints", [])
    _expect(raw_con, list, "constraints", "an array of tables ([[constraints]])")
    for i, c in enumerate(raw_con):
        where = f"constraints[{i}]"
        _expect(c, dict, where, "a table")
        _unknown(c, ("metric", "max", "min"), where)
        if "metric" not in c:
            raise ConfigError(f"{where}.metric: missing required field")
        metric = _expect(c["metric"], str, f"{where}.metric", "a string")
        bounds = {
            k: float(_expect(c[k], (int, float), f"{where}.{k}", "a number"))
            for k in ("max", "min")
            if k in c
        }
        if not bounds:
            raise ConfigError(f"{where}.max: a constraint needs 'max' and/or 'min'")
        if "max" in bounds and "min" in bounds and bounds["min"] > bounds["max"]:
            raise ConfigError(f"{where}.min: {bounds['min']} is greater than max {bounds['max']}")
        constraints.append(Constraint(metric, **bounds))

    search = dict(_table(data, "search", ""))
    driver = _expect(search.pop("driver", "pymoo"), str, "search.driver", "a string")
    max_evals = _expect(
        search.pop("max_evaluations", 200), int, "search.max_evaluations", "an integer"
    )
    if max_evals < 1:
        raise ConfigError(f"search.max_evaluations: must be >= 1, got {max_evals}")
    max_seconds = search.pop("max_seconds", None)
    if max_seconds is not None:
        _expect(max_seconds, (int, float), "search.max_seconds", "a number")
        if max_seconds <= 0:
            raise ConfigError(f"search.max_seconds: must be > 0, got {max_seconds}")
        max_seconds = float(max_seconds)
    prune = _expect(
        search.pop("prune_infeasible", True), bool, "search.prune_infeasible", "true or false"
    )
    extra: dict[str, Any] = {}
    for key, tp, what, low in (
        ("max_stagnant_evaluations", int, "an integer", 1),
        ("warm_start_size", int, "an integer", 1),
        ("workers", int, "an integer", 1),
        ("warm_start", str, "a run directory or id", None),
        ("scheduler", str, "a Dask scheduler address", None),
    ):
        if key in search:
            value = _expect(search.pop(key), tp, f"search.{key}", what)
            if low is not None and value < low:
                raise ConfigError(f"search.{key}: must be >= {low}, got {value}")
            extra[key] = value
    if "workers" in extra and "scheduler" in extra:
        raise ConfigError(
            "search.workers: give workers (a local Dask cluster) or scheduler (an existing one), "
            "not both"
        )

    return RunConfig(
        space=PluginSpec(space_name, space),
        objectives=tuple(objectives),
        name=name,
        seed=seed,
        output=output,
        proxies=_plugins(data, "proxies"),
        simulators=_plugins(data, "simulators"),
        constraints=tuple(constraints),
        search=SearchSpec(driver, max_evals, max_seconds, prune, search, **extra),
        plugins=tuple(plugins),
        plugin_dirs=tuple(plugin_dirs),
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
