"""A few-shot proxy ensemble: cheap proxies combined with weights learnt from a few labelled
architectures (the same at-most-20 that DPS sees), saved and reused like a DPS configuration.

Each component is any proxy ``dse proxy-eval`` scores (a zero-cost measure, ``params``,
``flops``, ``swap_reg``, ``eproxy@nb201-dps``, a user's provider). Its score ``s`` is put on a
common scale, ``z = (g(s) - centre) / scale`` with ``g`` the logarithm where every fitting score
is positive and spans more than a factor of ten (parameter counts, FLOPs, pattern counts) and the
identity elsewhere, centre and scale the median and interquartile range over the fitting
architectures, clipped to +-3. The ensemble is ``w . z``; with the centre and scale stored, an
architecture is scored on its own, not against a population.

The weights minimise a rank loss, not a regression one: over every pair (i, j) of fitting
architectures with ``truth_i > truth_j``, the logistic loss ``log(1 + exp(-(w . (z_i - z_j))))``
(RankNet's objective, Burges et al. 2005) plus ``l2 * |w|^2``; it is convex, so the fit is
deterministic. ``l2`` is chosen by leave-one-out over the fitting architectures (each left-out
one's rank among the others), from ``L2_GRID``. RoBoT (He et al., 2024) searches the weights by
Bayesian optimisation instead; with 20 architectures and a convex loss a direct fit needs no
search.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import networkx as nx
import numpy as np

from dse.provider import MetricProvider
from dse.proxies.saved import saved_params
from dse.registry import PROXIES
from dse.space import SearchSpace

#: standardised scores are clipped to +-CLIP: a degenerate network's extreme score (jacob_cov of
#: a cell without a path) should not outweigh the other components
CLIP = 3.0
#: candidate L2 strengths of the rank loss, chosen among by leave-one-out
L2_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: the components ``dse proxy-fit`` combines unless told otherwise: about 3 CPU-s a NAS-Bench-201
#: cell (SWAP, 1.5 s, adds nothing to them on the 342 held-out cells; BENCHMARKS.md)
DEFAULT_COMPONENTS = (
    "nwot",
    "synflow",
    "jacob_cov",
    "params",
    "flops",
    "meco",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
)


@dataclass(frozen=True)
class EnsembleWeights:
    """A fitted ensemble: per component its transform (``log``), centre, scale and weight."""

    components: tuple[str, ...]
    log: tuple[bool, ...]
    centre: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    l2: float

    def __post_init__(self):
        n = len(self.components)
        for name in ("log", "centre", "scale", "weights"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name}: needs one value per component ({n}), got {len(getattr(self, name))}"
                )
        if any(not isinstance(v, (bool, np.bool_)) for v in self.log):
            raise ValueError(f"log: needs true/false per component, got {list(self.log)}")
        object.__setattr__(self, "components", tuple(map(str, self.components)))
        object.__setattr__(self, "log", tuple(map(bool, self.log)))
        for field in ("centre", "scale", "weights"):
            object.__setattr__(self, field, tuple(map(float, getattr(self, field))))
        object.__setattr__(self, "l2", float(self.l2))

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Scores (architectures x components, in component order) -> ``z`` (clipped to
        +-CLIP); a NaN (a failed proxy) becomes 0, the fitting architectures' median."""
        v = np.asarray(values, dtype=float)
        logs = np.asarray(self.log)
        g = np.where(logs, np.log(np.maximum(v, 1e-300)), v)
        z = (g - np.asarray(self.centre)) / np.asarray(self.scale)
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=CLIP, neginf=-CLIP), -CLIP, CLIP)

    def combine(self, values: np.ndarray) -> np.ndarray:
        """The ensemble score of each row of ``values`` (higher is better)."""
        return self.standardise(np.atleast_2d(values)) @ np.asarray(self.weights)

    def to_params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _transforms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log flag, centre, scale) per column of the fitting scores."""
    logs, centres, scales = [], [], []
    for col in values.T:
        finite = col[np.isfinite(col)]
        use_log = bool(len(finite) and finite.min() > 0 and finite.max() > 10 * finite.min())
        g = np.log(finite) if use_log else finite
        centre = float(np.median(g)) if len(g) else 0.0
        q75, q25 = np.percentile(g, [75, 25]) if len(g) else (1.0, 0.0)
        scale = float(q75 - q25) or float(np.std(g)) or 1.0
        logs.append(use_log)
        centres.append(centre)
        scales.append(scale)
    return np.array(logs), np.array(centres), np.array(scales)


def _pairs(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.nonzero(truth[:, None] > truth[None, :])
    return i, j


def rank_fit(z: np.ndarray, truth: np.ndarray, l2: float) -> np.ndarray:
    """Weights minimising the pairwise logistic rank loss (mean over pairs) + ``l2 |w|^2``."""
    from scipy.optimize import minimize  # here: half a second of every command's start-up
    from scipy.special import expit

    i, j = _pairs(truth)
    if not len(i):
        return np.zeros(z.shape[1])
    d = z[i] - z[j]

    def loss(w):
        m = d @ w
        value = np.logaddexp(0.0, -m).mean() + l2 * (w @ w)
        grad = -(d * expit(-m)[:, None]).mean(0) + 2 * l2 * w
        return value, grad

    return minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x


def _loo_rank_error(z: np.ndarray, truth: np.ndarray, l2: float) -> float:
    """Leave-one-out: the mean share of the other architectures a held-out one is misordered
    against, the weights fitted without it."""
    errors = []
    for k in range(len(truth)):
        keep = np.arange(len(truth)) != k
        w = rank_fit(z[keep], truth[keep], l2)
        s = z @ w
        others = np.nonzero(keep)[0]
        wrong = np.sign(s[k] - s[others]) != np.sign(truth[k] - truth[others])
        errors.append(wrong.mean())
    return float(np.mean(errors))


def fit_ensemble(
    components: Sequence[str], values: np.ndarray, truth: Sequence[float], l2: float | None = None
) -> EnsembleWeights:
    """Fit the ensemble on scores ``values`` (architectures x components) with ground truth
    ``truth`` (higher is better); ``l2=None`` picks it from :data:`L2_GRID` by leave-one-out."""
    v = np.asarray(values, dtype=float)
    t = np.asarray(truth, dtype=float)
    if v.ndim != 2 or v.shape != (len(t), len(components)):
        raise ValueError(
            f"values: expected {len(t)} architectures x {len(components)} components, "
            f"got shape {v.shape}"
        )
    if len(t) < 3:
        raise ValueError(f"truth: needs at least 3 labelled architectures, got {len(t)}")
    logs, centre, scale = _transforms(v)
    partial = EnsembleWeights(tuple(components), logs, centre, scale, (0.0,) * len(logs), 0.0)
    z = partial.standardise(v)
    if l2 is None:
        errors = [_loo_rank_error(z, t, c) for c in L2_GRID]
        l2 = L2_GRID[int(np.argmin(errors))]
    w = rank_fit(z, t, l2)
    return EnsembleWeights(tuple(components), logs, centre, scale, tuple(map(float, w)), l2)


@PROXIES.register("proxy_ensemble")
class ProxyEnsemble(MetricProvider):
    """The few-shot ensemble as a metric provider (higher is better): ``saved = "name"`` (what
    ``dse proxy-fit --name`` writes), or the fitted fields given directly."""

    name = "proxy_ensemble"
    kind = "proxy_ensemble"
    metrics = ("proxy_ensemble",)
    units = {"proxy_ensemble": "score"}
    cost = 2.0

    def __init__(
        self,
        saved: str | None = None,
        components: list[str] | None = None,
        log: list[bool] | None = None,
        centre: list[float] | None = None,
        scale: list[float] | None = None,
        weights: list[float] | None = None,
        l2: float = 0.0,
        batch_size: int = 64,
        seed: int = 0,
        data: str = "images",
        metric: str = "proxy_ensemble",
    ):
        if saved is not None:
            params = saved_params(saved, self.kind)
            batch_size = params.get("batch_size", batch_size)
            seed, data = params.get("seed", seed), params.get("data", data)
            fields = {k: params[k] for k in ("components", "log", "centre", "scale", "weights")}
            self.weights = EnsembleWeights(**fields, l2=params.get("l2", 0.0))
        else:
            if not components or weights is None:
                raise ValueError("proxy_ensemble: give saved = NAME, or components and weights")
            n = len(components)
            self.weights = EnsembleWeights(
                tuple(components),
                tuple(log or (False,) * n),
                tuple(centre or (0.0,) * n),
                tuple(scale or (1.0,) * n),
                tuple(weights),
                l2,
            )
        if any(c == self.name or c.startswith(f"{self.name}@") for c in self.weights.components):
            raise ValueError("components: an ensemble cannot contain an ensemble")
        self.batch_size, self.seed, self.data = batch_size, seed, data
        self.metrics = (metric,)
        self.units = {metric: "score"}
        self._scorers: dict[int, Any] = {}

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        from dse.proxies.report_card import ProxyScorer

        scorer = self._scorers.get(id(space))
        if scorer is None:
            scorer = ProxyScorer(
                space, self.weights.components, self.batch_size, self.seed, self.data
            )
            self._scorers[id(space)] = scorer
        row = scorer.score_graph(graph, arch)
        values = np.array([[row[c] for c in self.weights.components]], dtype=float)
        value = float(self.weights.combine(values)[0])
        return {self.metrics[0]: value if math.isfinite(value) else math.nan}
