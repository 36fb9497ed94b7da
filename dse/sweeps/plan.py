"""Sweep plans: which config values a sweep varies and the points it evaluates.

``[sweep.parameters]`` maps a dotted config path to the values it takes:

* ``"simulators.gpu.batch_size" = [1, 8, 64]``: a list of values (any config value: a
  simulator's or proxy's parameter, ``space.<param>``);
* ``"simulators.fpga.dsp_budget" = {low = 200, high = 2520, integer = true}``: a range, with
  ``log = true`` for a log scale; grids need ``num = N`` (evenly spaced values);
* ``"arch" = "all"``: every decision variable of the space at every value (a grid enumerates the
  whole space; random, LHS and Sobol draw each variable); ``"arch.<variable>" = [...]`` sweeps
  one variable; ``"arch" = ["<arch string>", ...]`` or ``{file = ..., column = ...}`` lists
  architectures to parse.

Methods: ``grid`` (the Cartesian product, in order), ``random`` (independent uniform draws),
``lhs`` (Latin hypercube) and ``sobol`` (scrambled Sobol sequence), the last three with
``points = N``. Each point is a flat mapping from parameter name to value; the plan is a pure
function of the config and seed, which is what makes a sweep resumable chunk by chunk.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.params import ConfigError
from dse.space import Parsable, SpaceError

METHODS = ("grid", "random", "lhs", "sobol")
ARCH = "arch"


@dataclass(frozen=True)
class Parameter:
    """One swept dimension: either a list of ``values`` or a numeric range."""

    name: str
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    num: int | None = None

    def grid_values(self) -> tuple:
        if self.values is not None:
            return self.values
        if self.num is None:
            raise ConfigError(
                f"sweep.parameters.{self.name}: a grid needs a list of values or num = N for a "
                "range"
            )
        low, high = self.bounds
        v = np.geomspace(low, high, self.num) if self.log else np.linspace(low, high, self.num)
        return tuple(int(round(x)) for x in v) if self.integer else tuple(float(x) for x in v)

    def at(self, u: np.ndarray) -> list:
        """Values at unit coordinates ``u`` in [0, 1)."""
        if self.values is not None:
            idx = np.minimum((u * len(self.values)).astype(np.int64), len(self.values) - 1)
            return [self.values[i] for i in idx]
        low, high = self.bounds
        if self.log:
            v = np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
            return [int(round(x)) for x in v] if self.integer else [float(x) for x in v]
        if self.integer:  # uniform over the integers low..high
            return [int(x) for x in np.minimum(low + np.floor(u * (high - low + 1)), high)]
        return [float(x) for x in low + u * (high - low)]

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a range parameter."""
        if self.low is None or self.high is None:
            raise ConfigError(f"sweep.parameters.{self.name}: a range needs low and high")
        return self.low, self.high

    @property
    def column_type(self) -> str:
        """``int``, ``float`` or ``string``: the Parquet type of its column."""
        if self.values is None:
            return "int" if self.integer else "float"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in self.values):
            return "int"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values):
            return "float"
        return "string"


def listed_archs(space, spec: dict | list, where: str) -> dict[str, dict]:
    """``arch = [...]`` (strings the space parses) or ``{file, column}``: arch_id -> decisions."""
    if isinstance(spec, dict):
        from dse.subset import restrict

        archs = restrict(space, spec, where).base_archs()
    else:
        if not isinstance(space, Parsable):
            raise ConfigError(f"{where}: space {space.name!r} cannot parse architecture strings")
        try:
            archs = [space.parse(str(a)) for a in spec]
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{where}: {exc}") from None
    return {space.arch_id(a): a for a in archs}


def parse_parameter(name: str, spec: Any, space=None) -> list[Parameter]:
    """Parameters for one ``[sweep.parameters]`` entry (``arch = "all"`` gives one per variable)."""
    where = f"sweep.parameters.{name}"
    if name == ARCH:
        if space is None:
            raise ConfigError(f"{where}: needs the space")
        if spec == "all":
            return [Parameter(f"{ARCH}.{v.name}", tuple(_choices(v))) for v in space.variables]
        if isinstance(spec, (dict, list)):
            return [Parameter(ARCH, tuple(listed_archs(space, spec, where)))]
        raise ConfigError(
            f'{where}: expected "all", a list of architecture strings or {{file, column}}, got '
            f"{spec!r}"
        )
    if name.startswith(ARCH + "."):
        var = name.split(".", 1)[1]
        names = [v.name for v in space.variables] if space is not None else []
        if var not in names:
            raise ConfigError(f"{where}: unknown variable {var!r}; allowed values: {names}")
        variable = space.variables[names.index(var)]
        if spec == "all":
            return [Parameter(name, tuple(_choices(variable)))]
        values = spec if isinstance(spec, list) else [spec]  # a single value fixes the variable
        for value in values:
            try:
                variable.index(value)
            except SpaceError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if not values:
            raise ConfigError(f"{where}: the list of values is empty")
        return [Parameter(name, tuple(values))]
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: the list of values is empty")
        return [Parameter(name, tuple(spec))]
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "integer", "num"}
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]}: unknown key; allowed: low, high, log, integer, num"
            )
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except KeyError as exc:
            raise ConfigError(f"{where}.{exc.args[0]}: missing required field") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: low and high must be numbers, got {spec!r}") from None
        if high < low:
            raise ConfigError(f"{where}.high: {high} is below low {low}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(f"{where}.low: a log range needs low > 0, got {low}")
        num = spec.get("num")
        if num is not None and (not isinstance(num, int) or num < 1):
            raise ConfigError(f"{where}.num: must be an integer >= 1, got {num!r}")
        return [Parameter(name, None, low, high, log, bool(spec.get("integer", False)), num)]
    raise ConfigError(f"{where}: expected a list of values or a range {{low, high}}, got {spec!r}")


def _choices(variable) -> list:
    return [variable.value(i) for i in range(variable.cardinality)]


def unit_samples(method: str, n: int, d: int, seed: int) -> np.ndarray:
    """(n, d) coordinates in [0, 1) for ``random``, ``lhs`` or ``sobol``."""
    from scipy.stats import qmc

    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=np.random.default_rng(seed)).random(n)
    with warnings.catch_warnings():  # any n is fine for a sweep; balance is best at powers of two
        warnings.simplefilter("ignore", UserWarning)
        return qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed)).random(n)


class Points(Sequence):
    """A sweep's points in their fixed order, made on demand: a grid's by mixed-radix
    decoding, random and Sobol points by generating exactly the rows asked for (the random
    generator advanced, the Sobol sequence fast-forwarded: the same values as generating them
    all), so a million-point sweep never holds a million dicts. Latin hypercube samples are
    drawn all at once (their strata span every point): ``n x d`` floats."""

    def __init__(self, parameters: Sequence[Parameter], method: str, n: int, seed: int):
        self.parameters, self.method, self.n, self.seed = tuple(parameters), method, n, seed
        self.names = [p.name for p in parameters]
        self._grid = [p.grid_values() for p in parameters] if method == "grid" else None
        self._u = unit_samples(method, n, len(parameters), seed) if method == "lhs" else None

    def __len__(self) -> int:
        return self.n

    def _unit_rows(self, start: int, stop: int) -> np.ndarray:
        from scipy.stats import qmc

        d = len(self.parameters)
        if self._u is not None:
            return self._u[start:stop]
        if self.method == "random":
            bits = np.random.PCG64(self.seed)  # what default_rng(seed) draws from
            bits.advance(start * d)  # one 64-bit draw per double
            return np.random.Generator(bits).random((stop - start, d))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sobol = qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(self.seed))
            if start:
                sobol.fast_forward(start)
            return sobol.random(stop - start)

    def rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Points ``start`` to ``stop`` (exclusive)."""
        start, stop = max(start, 0), min(stop, self.n)
        if stop <= start:
            return []
        if self._grid is not None:
            sizes = [len(v) for v in self._grid]
            out = []
            for i in range(start, stop):
                combo, rest = [], i
                for values, size in zip(reversed(self._grid), reversed(sizes), strict=True):
                    rest, j = divmod(rest, size)
                    combo.append(values[j])
                out.append(dict(zip(self.names, reversed(combo), strict=True)))
            return out
        u = self._unit_rows(start, stop)
        columns = [p.at(u[:, j]) for j, p in enumerate(self.parameters)]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*columns, strict=True)]

    def __iter__(self):
        for start in range(0, self.n, 4096):
            yield from self.rows(start, start + 4096)

    def __eq__(self, other) -> bool:
        if not isinstance(other, (list, tuple, Points)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self.n)
            if step != 1:
                return self.rows(start, stop)[::step]
            return self.rows(start, stop)
        i = index + self.n if index < 0 else index
        if not 0 <= i < self.n:
            raise IndexError(index)
        return self.rows(i, i + 1)[0]


def make_points(
    parameters: Sequence[Parameter],
    method: str,
    n: int | None,
    seed: int,
    max_points: int = 10_000_000,
) -> Points:
    """The sweep's points, in a fixed order (:class:`Points`: made on demand)."""
    if method not in METHODS:
        raise ConfigError(
            f"sweep.method: {method!r} is not allowed; allowed values: {', '.join(METHODS)}"
        )
    if not parameters:
        raise ConfigError("sweep.parameters: at least one parameter is required")
    if method == "grid":
        total = math.prod(len(p.grid_values()) for p in parameters)
        if total > max_points:
            raise ConfigError(
                f"sweep.parameters: the grid has {total:,} points, more than {max_points:,}; "
                f'use method = "random", "lhs" or "sobol" with points = N'
            )
        return Points(parameters, method, total, seed)
    if n is None or n < 1:
        raise ConfigError(f"sweep.points: method {method!r} needs points = N (>= 1), got {n!r}")
    if n > max_points:  # checked before a single array is allocated
        raise ConfigError(
            f"sweep.points: {n:,} is more than {max_points:,}; allowed: 1..{max_points}"
        )
    return Points(parameters, method, n, seed)
