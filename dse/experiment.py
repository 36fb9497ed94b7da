"""An experiment: a config's plugins instantiated and checked, ready to run or to evaluate.

Everything that can be wrong with the input (unknown plugin, bad parameter, objective on a metric
nobody produces, a provider that cannot read the space's graphs) is found by :func:`build`,
before any run directory exists, so a bad config leaves nothing behind. Searches, sweeps and
Dask workers all build their experiments here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dse.config import RunConfig
from dse.evaluate import Evaluator
from dse.inputs import import_plugins
from dse.params import ConfigError, create
from dse.provider import MetricProvider
from dse.registry import DRIVERS, PROXIES, SIMULATORS, SPACES, Registry, UnknownPluginError
from dse.results.store import run_schema
from dse.search.base import Driver
from dse.space import SearchSpace
from dse.subset import restrict


@dataclass
class Experiment:
    """A validated, ready-to-run configuration."""

    config: RunConfig
    space: SearchSpace
    evaluator: Evaluator
    driver: Driver
    schema: pa.Schema


def _plugin(registry: Registry, name: str, params: dict, where: str) -> Any:
    try:
        entry = registry.get(name)
    except UnknownPluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return create(entry.factory, params, where.rsplit(".name", 1)[0])


def build(config: RunConfig) -> Experiment:
    """Instantiate every plugin of ``config``; raises :class:`ConfigError` naming the bad field."""
    import_plugins(config.plugins, config.plugin_dirs)
    params = dict(config.space.params)
    restriction = params.pop("restrict", None)
    space = _plugin(SPACES, config.space.name, params, "space.name")
    if restriction is not None:
        space = restrict(space, restriction)
    providers: list[MetricProvider] = []
    for section, registry, specs in (
        ("proxies", PROXIES, config.proxies),
        ("simulators", SIMULATORS, config.simulators),
    ):
        for spec in specs:
            try:
                entry = registry.get(spec.name)
            except UnknownPluginError as exc:
                raise ConfigError(f"{section}.{spec.name}: {exc}") from None
            provider = create(entry.factory, spec.params, f"{section}.{spec.name}")
            if not isinstance(provider, MetricProvider):
                raise ConfigError(
                    f"{section}.{spec.name}: {type(provider).__name__} is not a metric provider; "
                    "subclass dse.plugin.MetricProvider (or PopulationProvider)"
                )
            if not provider.reads(space.graph_kind):
                raise ConfigError(
                    f"{section}.{spec.name}: cannot evaluate space {config.space.name!r}: the "
                    f"space makes {space.graph_kind!r} graphs and {spec.name!r} reads "
                    f"{' or '.join(repr(k) for k in provider.accepts)} graphs"
                )
            providers.append(provider)
    if not providers:
        raise ConfigError(
            f"proxies: configure at least one proxy or simulator, e.g. [proxies.analytic]; "
            f"proxies: {', '.join(PROXIES.names())}; simulators: "
            f"{', '.join(SIMULATORS.names()) or '(none)'}"
        )
    try:
        evaluator = Evaluator(
            space,
            providers,
            config.objectives,
            config.constraints,
            prune_infeasible=config.search.prune_infeasible,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        entry = DRIVERS.get(config.search.driver)
    except UnknownPluginError as exc:
        raise ConfigError(f"search.driver: {exc}") from None
    driver = create(entry.factory, config.search.params, "search")
    try:
        driver.check(space, evaluator.providers)
        schema = run_schema(
            [*evaluator.metric_names, *driver.record_metrics],
            [p.name for p in evaluator.providers],
        )
    except ValueError as exc:
        raise ConfigError(f"search.driver: {exc}") from None
    return Experiment(config, space, evaluator, driver, schema)
