"""The hypervolume a search has reached, updated batch by batch (progress bar, stagnation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dse.results.pareto import default_reference, hypervolume_minimised, nondominated_mask
from dse.results.record import PENALTY


@dataclass
class HypervolumeTracker:
    """Hypervolume of the feasible front so far, in minimised objective space.

    ``ref`` is the minimised reference point; entries that are NaN are fixed from the first
    batch with feasible points (:func:`default_reference`), so the value is comparable across
    batches of one run. ``improved_at`` is the proposal count at the last strict gain.
    """

    ref: np.ndarray
    value: float = 0.0
    improved_at: int = 0
    front: np.ndarray | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, feasible: np.ndarray, proposals: int) -> float:
        """Add the minimised objective rows of newly evaluated feasible designs."""
        feasible = np.asarray(feasible, dtype=float).reshape(-1, len(self.ref))
        feasible = feasible[np.all(np.isfinite(feasible) & (np.abs(feasible) < PENALTY), axis=1)]
        if len(feasible):
            if np.isnan(self.ref).any():
                self.ref = np.where(np.isnan(self.ref), default_reference(feasible), self.ref)
            pts = feasible if self.front is None else np.vstack([self.front, feasible])
            self.front = pts[nondominated_mask(pts)]
            hv = hypervolume_minimised(self.front, self.ref)
            if hv > self.value * (1 + 1e-12):
                self.value, self.improved_at = hv, proposals
        self.history.append((proposals, self.value))
        return self.value
