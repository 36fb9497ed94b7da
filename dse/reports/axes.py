"""How every report axis shows a metric: its unit in the label, and a log scale when the data
span more than two decades (a front from 0.1 ms to 100 ms is unreadable on a linear axis)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def axis_label(metric: str, direction: str, units: Mapping[str, str]) -> str:
    """``metric [unit] (higher is better)``: the label of a metric axis."""
    unit = units.get(metric, "")
    better = "higher" if direction == "max" else "lower"
    return f"{metric}{f' [{unit}]' if unit else ''} ({better} is better)"


def use_log(values: np.ndarray) -> bool:
    """Whether an axis is drawn on a log scale: all values positive, spanning > 2 decades."""
    v = values[np.isfinite(values)]
    return bool(len(v)) and bool((v > 0).all()) and v.max() / v.min() > 100.0
