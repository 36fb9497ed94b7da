"""Tabular "proxy": a benchmark's recorded accuracy looked up by architecture.

For evaluating search algorithms on tabular benchmarks (NAS-Bench-201/101 tables), as NASLib
does: the metric is the table's value for the architecture, keyed by the space's ``arch_id``
(NAS-Bench-201: the ``arch_str``; NAS-Bench-101: ``"ADJACENCY|OPS"``). An architecture missing
from the table is a failed evaluation naming it, so a search over a partial table records which
proposals it could not score.

Config::

    [proxies.tabular]
    file = "data/nasbench201_naslib.csv"
    column = "val_acc_cifar10"
    key = "arch_str"              # or ["adjacency_7x7", "ops"], joined with "|"
    metric = "accuracy"           # the metric name it provides
    unit = "%"                    # its unit, for reports (default "as tabulated")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from dse.inputs import read_table, require_filled
from dse.params import ConfigError
from dse.provider import MetricProvider
from dse.registry import PROXIES
from dse.space import SearchSpace


def read_keyed_column(
    file: str | Path,
    column: str,
    key: str | list[str] = "arch_str",
    field: str = "file",
    columns_field: str = "column/key",
) -> pd.DataFrame:
    """A benchmark table (CSV or Parquet) as ``arch_text`` (the key columns joined by ``|``, as
    the spaces' ``arch_id``/``parse`` write them) and ``value`` (``column`` as floats); errors name
    ``field`` for the file and ``column/key`` for missing columns."""
    keys = [key] if isinstance(key, str) else list(key)
    df = read_table(file, field, dtype={k: str for k in keys})
    missing = [c for c in [*keys, column] if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{columns_field}: {missing} not in {file}; allowed values: {list(df.columns)}"
        )
    require_filled(df, keys, field, str(file))
    text = df[keys[0]].astype(str)
    for k in keys[1:]:
        text = text + "|" + df[k].astype(str)
    return pd.DataFrame({"arch_text": text, "value": df[column].astype(float)})


@PROXIES.register("tabular")
class TabularProxy(MetricProvider):
    """Look up an architecture's recorded accuracy in a benchmark table (CSV or Parquet)."""

    name = "tabular"
    cost = 1e-6
    accepts = ("*",)  # looks the architecture id up; reads no graph

    def __init__(
        self,
        file: str,
        column: str,
        key: str | list[str] = "arch_str",
        metric: str = "accuracy",
        unit: str = "as tabulated",
    ):
        rows = read_keyed_column(file, column, key)
        self.table = dict(zip(rows.arch_text, rows.value))
        self.metrics = (metric,)
        self.units = {metric: unit}
        self.metric, self.file = metric, file

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        key = space.arch_id(arch)
        if key not in self.table:
            raise KeyError(f"{key!r} is not in {self.file} ({len(self.table)} rows)")
        return {self.metric: self.table[key]}
