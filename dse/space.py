"""The search-space protocol: decision variables, sampling, mutation, integer encoding, graphs.

An architecture is a plain mapping from variable name to chosen value (JSON-serialisable).
Search drivers never see it: they see the integer vector of :meth:`SearchSpace.encode`, one
gene per variable holding the index of the chosen value, which is what pymoo and optuna
optimise. :meth:`SearchSpace.to_graph` turns an architecture into the graph IR that every
proxy and simulator reads.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import networkx as nx
import numpy as np

from dse.graph import canonical_hash

Arch = dict[str, Any]

#: The kind of graph most spaces make and most providers read: the op IR of :mod:`dse.graph`
#: (typed op nodes with shapes and costs). Other kinds are named by the plugins that make them
#: (``medusa_tree``, ``proxy_config``); a provider that reads no graph accepts :data:`ANY_GRAPH`.
OP_GRAPH = "ops"
ANY_GRAPH = "*"
#: a proxy configuration (the ``eproxy_config`` and ``gennas_task`` spaces): an empty graph
#: carrying the proxy's name and parameters, read by ``proxy_fitness``
PROXY_CONFIG_GRAPH = "proxy_config"


class SpaceError(ValueError):
    """An architecture or encoding that does not belong to the space; names the variable."""


@dataclass(frozen=True)
class Choice:
    """A categorical decision variable: one of ``choices`` (encoded as its index)."""

    name: str
    choices: tuple

    def __post_init__(self):
        if len(self.choices) < 1:
            raise ValueError(f"variable {self.name!r} needs at least one choice")
        object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def cardinality(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        try:
            return self.choices.index(value)
        except ValueError:
            raise SpaceError(
                f"{self.name}: {value!r} is not allowed; allowed values: {list(self.choices)}"
            ) from None

    def value(self, index: int) -> Any:
        if not 0 <= index < len(self.choices):
            raise SpaceError(f"{self.name}: index {index} out of range 0..{len(self.choices) - 1}")
        return self.choices[index]


@dataclass(frozen=True)
class IntRange:
    """An integer decision variable in ``[low, high]`` (inclusive), encoded as ``value - low``."""

    name: str
    low: int
    high: int

    def __post_init__(self):
        if self.high < self.low:
            raise ValueError(f"variable {self.name!r}: high {self.high} < low {self.low}")

    @property
    def cardinality(self) -> int:
        return self.high - self.low + 1

    def index(self, value: Any) -> int:
        if not isinstance(value, (int, np.integer)) or not self.low <= value <= self.high:
            raise SpaceError(
                f"{self.name}: {value!r} is not an integer in [{self.low}, {self.high}]"
            )
        return int(value) - self.low

    def value(self, index: int) -> int:
        if not 0 <= index < self.cardinality:
            raise SpaceError(f"{self.name}: index {index} out of range 0..{self.cardinality - 1}")
        return self.low + int(index)


Variable = Choice | IntRange


@runtime_checkable
class Parsable(Protocol):
    """A space that reads architectures from text (a benchmark table's key: NAS-Bench-201's
    ``arch_str``, a DARTS genotype), so tables can restrict it and sweeps can list archs."""

    def parse(self, text: str) -> Arch: ...


class SearchSpace(ABC):
    """Base class of every search space.

    Subclasses set ``name`` and ``variables`` and implement :meth:`to_graph`. Sampling, mutation,
    encoding and hashing have defaults that work from the variables; override them where the
    space knows better (a faster hash, a repair of invalid combinations, an exact size).
    """

    name: str = ""
    variables: tuple[Variable, ...] = ()
    #: what :meth:`to_graph` returns (see :data:`OP_GRAPH`); providers declare what they accept
    graph_kind: str = OP_GRAPH

    @abstractmethod
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The architecture as a graph of the IR."""

    # -- encoding ---------------------------------------------------------------------------
    @property
    def cardinalities(self) -> np.ndarray:
        """Number of values of each variable, in encoding order."""
        return np.array([v.cardinality for v in self.variables], dtype=np.int64)

    @property
    def size(self) -> int:
        """Number of distinct architectures (product of cardinalities unless overridden)."""
        return math.prod(int(c) for c in self.cardinalities)

    def encode(self, arch: Mapping[str, Any]) -> np.ndarray:
        """Integer vector of value indices, one per variable."""
        missing = [v.name for v in self.variables if v.name not in arch]
        if missing:
            raise SpaceError(f"architecture lacks variable(s) {missing} of space {self.name!r}")
        extra = set(arch) - {v.name for v in self.variables}
        if extra:
            raise SpaceError(f"unknown variable(s) {sorted(extra)} for space {self.name!r}")
        return np.array([v.index(arch[v.name]) for v in self.variables], dtype=np.int64)

    def decode(self, x: Sequence[int] | np.ndarray) -> Arch:
        """Architecture from an integer vector (the inverse of :meth:`encode`)."""
        if len(x) != len(self.variables):
            raise SpaceError(
                f"encoding has {len(x)} genes, space {self.name!r} has {len(self.variables)}"
            )
        return {v.name: v.value(int(i)) for v, i in zip(self.variables, x)}

    # -- gene-level capabilities (what drivers use) ----------------------------------------------
    def sample_encodings(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random encodings, shape (n, n_var)."""
        return rng.integers(0, self.cardinalities, size=(n, len(self.variables)))

    def mutate_encoding(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` with one gene moved to a different value (the REA mutation)."""
        x = np.array(x, dtype=np.int64)
        card = self.cardinalities
        movable = np.flatnonzero(card > 1)
        if len(movable):
            i = rng.choice(movable)
            x[i] = (x[i] + rng.integers(1, card[i])) % card[i]
        return x

    def repair_encodings(self, X: np.ndarray) -> np.ndarray:
        """Encodings mapped to the ones they decode to (identity unless the space restricts or
        repairs combinations); drivers keep repaired genes so their populations stay honest."""
        return np.asarray(X, dtype=np.int64)

    # -- sampling and mutation ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture."""
        return self.decode(rng.integers(0, self.cardinalities))

    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator, n: int = 1) -> Arch:
        """``arch`` with ``n`` randomly chosen variables set to a different value."""
        x = self.encode(arch)
        card = self.cardinalities
        movable = np.flatnonzero(card > 1)
        if len(movable) == 0:
            return dict(arch)
        for i in rng.choice(movable, size=min(n, len(movable)), replace=False):
            x[i] = (x[i] + rng.integers(1, card[i])) % card[i]
        return self.decode(x)

    # -- identity -----------------------------------------------------------------------------
    def arch_id(self, arch: Mapping[str, Any]) -> str:
        """Human-readable, unique string form of an architecture."""
        return json.dumps({v.name: arch[v.name] for v in self.variables}, separators=(",", ":"))

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """Equal for architectures that compute the same graph (duplicates are evaluated once).

        The default hashes the built graph; spaces that can tell duplicates apart from their
        decisions override it with something cheaper."""
        return canonical_hash(self.to_graph(arch))

    def identify(self, arch: Mapping[str, Any]) -> tuple[str, nx.DiGraph | None]:
        """``(arch_hash, graph)``: the graph when hashing had to build it (so evaluation can reuse
        it instead of building it again), else None."""
        if type(self).arch_hash is SearchSpace.arch_hash:
            graph = self.to_graph(arch)
            return canonical_hash(graph), graph
        return self.arch_hash(arch), None

    def describe(self) -> str:
        return f"{self.name}: {len(self.variables)} variables, {self.size:,} architectures"
