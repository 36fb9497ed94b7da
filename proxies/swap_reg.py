"""Regularised SWAP-Score (Peng et al., SWAP-NAS, ICLR 2024, section 3.3, eqs. 5 and 6).

SWAP counts distinct sample-wise activation patterns (the ``swap`` measure of
:mod:`dse.proxies.zero_cost`); it grows with width and depth, so the paper multiplies it by a
Gaussian of the model size, ``f(theta) = exp(-(theta - mu)^2 / sigma)`` (eq. 5), and ranks by
``SWAP * f(theta)`` (eq. 6). ``theta`` is the parameter count in thousands, as the authors' code
computes it (``count_parameters_in_MB * 1e3``); ``mu`` is the size the search is steered to and
``sigma`` how sharply.

The paper tunes ``mu`` and ``sigma`` per space and its sources here do not give the values, so
``mu`` and ``sigma`` are parameters, and :func:`fit_size_prior` picks them from a few labelled
architectures (the same at-most-20 DPS and the ensemble see) over a grid of quantiles of their
sizes: few-shot, like every other fitted proxy of dse. The defaults (830 and 5.3e5) are that fit
on NAS-Bench-201's 20 DPS cells for CIFAR-100 (``benchmarks/proxy_tasks.py nb201``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

import dse.proxies.zero_cost  # noqa: F401 - registers the swap provider this one wraps
from dse.graph import totals
from dse.provider import MetricProvider
from dse.registry import PROXIES
from dse.space import SearchSpace


def log_size_factor(params, mu: float, sigma: float):
    """The logarithm of eq. 5, ``-(theta - mu)^2 / sigma``, ``theta`` = parameters / 1000."""
    theta = np.asarray(params, dtype=float) / 1e3
    return -((theta - mu) ** 2) / sigma


def size_factor(params, mu: float, sigma: float):
    """Eq. 5: ``exp(-(theta - mu)^2 / sigma)`` (numpy-able)."""
    return np.exp(log_size_factor(params, mu, sigma))


def regularised(swap, params, mu: float, sigma: float):
    """Eq. 6: the SWAP-Score times the size factor; its logarithm, so that ranks survive the
    factor's underflow far from ``mu`` (log SWAP - (theta - mu)^2 / sigma)."""
    swap = np.maximum(np.asarray(swap, dtype=float), 1.0)
    return np.log(swap) + log_size_factor(params, mu, sigma)


def _spearman(a, b) -> float:
    return float(pd.Series(np.asarray(a)).corr(pd.Series(np.asarray(b)), method="spearman"))


def fit_size_prior(
    swap: Sequence[float], params: Sequence[float], truth: Sequence[float]
) -> tuple[float, float, float]:
    """(mu, sigma, Spearman rho on the given architectures) maximising the rank correlation of
    eq. 6 with ``truth``: ``mu`` over the 0, 10, ..., 100 % quantiles of ``theta`` and 1.5 times
    its maximum, ``sigma`` over ``(span * 2^k)^2`` for k = -3..4 (span: the range of theta).
    Ties go to the first, smallest setting, so the fit is deterministic."""
    theta = np.asarray(params, dtype=float) / 1e3
    span = max(float(theta.max() - theta.min()), 1e-9)
    mus = [*np.quantile(theta, np.linspace(0, 1, 11)), 1.5 * float(theta.max())]
    best = (float(mus[0]), span**2, -math.inf)
    for mu in mus:
        for k in range(-3, 5):
            sigma = (span * 2.0**k) ** 2
            rho = _spearman(regularised(swap, params, mu, sigma), truth)
            if rho > best[2] + 1e-12:
                best = (float(mu), float(sigma), rho)
    return best


@PROXIES.register("swap_reg")
class SwapRegularised(MetricProvider):
    """Regularised SWAP-Score (eq. 6, as a log): higher is better; ``mu`` and ``sigma`` in
    thousands of parameters."""

    name = "swap_reg"
    metrics = ("swap_reg",)
    units = {"swap_reg": "log score"}
    cost = 0.5

    def __init__(
        self,
        mu: float = 830.0,
        sigma: float = 5.3e5,
        batch_size: int = 64,
        seed: int = 0,
        data: str = "images",
        threads: int = 1,
    ):
        if sigma <= 0:
            raise ValueError(f"sigma: must be > 0 (thousands of parameters squared), got {sigma}")
        self.mu, self.sigma = float(mu), float(sigma)
        # the plain measure's provider: its batch, its checks, its thread count
        self._swap = PROXIES.create(
            "swap", batch_size=batch_size, seed=seed, data=data, threads=threads
        )

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        swap = self._swap.evaluate(graph, arch, space)["swap"]
        return {"swap_reg": float(regularised(swap, totals(graph).params, self.mu, self.sigma))}
