"""A search space restricted to a listed set of architectures (e.g. the cells a benchmark table
has accuracy for).

Searching a tabular benchmark that covers only part of a space (the 362 NAS-Bench-201 cells of
``nasbench201_naslib.csv`` out of 15,625) needs every proposal to land on a listed cell, or
almost every evaluation fails. :class:`SubsetSpace` keeps the base space's variables, so drivers
still see the structure of the decisions, and projects any gene vector onto the nearest listed
architecture (Hamming distance on the genes; ties go to the earliest listed). Uniform sampling
and mutation stay on the list: sampling picks a listed architecture uniformly, and mutation moves
to one of the nearest *other* listed architectures.

Config::

    [space]
    name = "nasbench201"
    restrict = { file = "data/nasbench201_naslib.csv", column = "arch_str" }
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from dse.inputs import read_table, require_columns, require_filled
from dse.params import ConfigError
from dse.space import Arch, Parsable, SearchSpace, SpaceError


class SubsetSpace(SearchSpace):
    """``base`` restricted to ``archs`` (duplicates and isomorphic repeats dropped)."""

    def __init__(self, base: SearchSpace, archs: Sequence[Mapping[str, Any]]):
        if not archs:
            raise SpaceError(f"a restricted {base.name!r} space needs at least one architecture")
        self.base = base
        self.name = base.name
        self.variables = base.variables
        self.graph_kind = base.graph_kind
        rows, seen = [], set()
        for arch in archs:
            x = base.encode(arch)
            key = base.arch_hash(base.decode(x))
            if key not in seen:
                seen.add(key)
                rows.append(x)
        self.allowed = np.stack(rows).astype(np.int64)  # (n_allowed, n_var)

    # -- projection ---------------------------------------------------------------------------
    def repair_encodings(self, X: np.ndarray) -> np.ndarray:
        """Each row replaced by its nearest listed encoding (Hamming; earliest listed on ties)."""
        X = np.asarray(X, dtype=np.int64).reshape(-1, self.allowed.shape[1])
        dist = (X[:, None, :] != self.allowed[None, :, :]).sum(axis=2)
        return self.allowed[np.argmin(dist, axis=1)]

    def decode(self, x: Sequence[int] | np.ndarray) -> Arch:
        return self.base.decode(self.repair_encodings(np.asarray(x))[0])

    def sample_encodings(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.allowed[rng.integers(0, len(self.allowed), size=n)]

    def mutate_encoding(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly chosen listed encoding among those nearest to ``x`` but different from it."""
        dist = (self.allowed != np.asarray(x, dtype=np.int64)).sum(axis=1)
        dist[dist == 0] = np.iinfo(np.int64).max
        nearest = np.flatnonzero(dist == dist.min())
        return self.allowed[rng.choice(nearest)].copy()

    def base_archs(self) -> list[Arch]:
        """The listed architectures, in list order."""
        return [self.base.decode(x) for x in self.allowed]

    @property
    def size(self) -> int:
        return len(self.allowed)

    # -- delegation -----------------------------------------------------------------------------
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return self.base.to_graph(arch)

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        return self.base.arch_id(arch)

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        return self.base.arch_hash(arch)

    def identify(self, arch: Mapping[str, Any]):
        return self.base.identify(arch)

    def describe(self) -> str:
        return f"{self.base.describe()}; restricted to {self.size:,} listed architectures"


def restrict(space: SearchSpace, spec: Any, where: str = "space.restrict") -> SubsetSpace:
    """The space restricted by a ``{file, column}`` spec: each value of the column (CSV or
    Parquet) is parsed with ``space.parse``. Raises :class:`ConfigError` naming the field."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table {{file = ..., column = ...}}, got {spec!r}")
    unknown = set(spec) - {"file", "column"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key; allowed: file, column")
    if "file" not in spec:
        raise ConfigError(f"{where}.file: missing required field")
    if not isinstance(space, Parsable):
        raise ConfigError(
            f"{where}: space {space.name!r} has no parse() to read architectures from a table"
        )
    parse = space.parse
    path = Path(str(spec["file"]))
    df = read_table(path, f"{where}.file", dtype=str)
    column = spec.get("column", "arch_str")
    require_columns(df, [(f"{where}.column", column)], str(path))
    require_filled(df, [column], f"{where}.file", str(path))
    archs = []
    for i, text in enumerate(df[column].astype(str)):
        try:
            archs.append(parse(text))
        except Exception as exc:  # noqa: BLE001 - a bad row is a config error naming the row
            raise ConfigError(
                f"{where}: row {i} of {path} ({text!r}) is not a {space.name} architecture: {exc}"
            ) from None
    return SubsetSpace(space, archs)
