"""Objectives and constraints: a metric to optimise, declared once with its direction, and a
bound a metric must keep. Configs, drivers, the ledger, the Pareto helpers and the reports all
read these two dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["min", "max"]
DIRECTIONS: tuple[Direction, ...] = ("min", "max")


def check_direction(direction: Any, where: str) -> Direction:
    """``direction`` if it is one of :data:`DIRECTIONS`; else a ValueError naming ``where``.

    The one check of an objective's direction: configs, the Pareto helpers and report options
    all call it, so every refusal reads the same."""
    if direction not in DIRECTIONS:
        raise ValueError(f"{where}: {direction!r} is not allowed; allowed values: 'min', 'max'")
    return direction


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, declared once with its direction."""

    metric: str
    direction: Direction = "min"
    #: hypervolume reference value in the metric's units (a worst acceptable value: an upper
    #: bound for ``min``, a lower bound for ``max``); None lets the run fix one from its first
    #: feasible batch
    ref: float | None = None

    def __post_init__(self):
        check_direction(self.direction, f"objective {self.metric!r}: direction")

    def to_dict(self) -> dict[str, Any]:
        """The TOML/manifest form: only the fields that are set."""
        return _set_fields(self)

    def minimised(self, value: float) -> float:
        """The value in minimisation form (what drivers see)."""
        return value if self.direction == "min" else -value


@dataclass(frozen=True)
class Constraint:
    """``min <= metric <= max``; violation is the distance outside the bounds, in metric units."""

    metric: str
    max: float | None = None
    min: float | None = None

    def __post_init__(self):
        if self.max is None and self.min is None:
            raise ValueError("max: a constraint needs 'max' and/or 'min'")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min: {self.min} is greater than max {self.max}")

    def to_dict(self) -> dict[str, Any]:
        """The TOML/manifest form: only the fields that are set."""
        return _set_fields(self)

    def violation(self, value: float) -> float:
        if value is None or math.isnan(value):
            return math.inf
        v = 0.0
        if self.max is not None and value > self.max:
            v += value - self.max
        if self.min is not None and value < self.min:
            v += self.min - value
        return v


def _set_fields(item: Objective | Constraint) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(item).items() if v is not None}
