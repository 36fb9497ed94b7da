"""Proxy report card: how well each proxy ranks a space's architectures against ground truth.

For every architecture of a benchmark table (e.g. NAS-Bench-201 cells with their validation
accuracy) each proxy scores a freshly initialised network on the same batch. The card reports,
per proxy: Spearman rho, Kendall tau, top-10% retrieval (the share of the truly best 10% that
the proxy also puts in its best 10%) and seconds per architecture. ``params`` and ``flops`` come
from the analytic proxy; ``ensemble`` is the mean of the other proxies' ranks, a rank-averaging
ensemble. This is how users decide which proxy to trust on their space.

    dse proxy-eval --truth data/nasbench201_naslib.csv --target val_acc_cifar10 \\
        --proxies synflow nwot jacob_cov snip grad_norm --limit 50 --out results/proxy_card
    dse proxy-eval --space nasbench101 --truth data/nasbench101_naslib.csv \\
        --arch-column adjacency_7x7 --ops-column ops --proxies params synflow --limit 20
    dse proxy-eval --truth ... --proxies eproxy gennas eproxy@my-dps   # a saved DPS configuration

Any registered proxy provider can be scored (eproxy, gennas, a user's); ``name@saved`` loads a
configuration saved by ``dse dps --name`` and leaves out the architectures it was searched on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dse.graph import totals
from dse.proxies.saved import load_proxy
from dse.space import SearchSpace

ANALYTIC = {"params": lambda g: float(totals(g).params), "flops": lambda g: float(totals(g).flops)}


@dataclass
class ReportCard:
    scores: (
        pd.DataFrame
    )  # one row per architecture: arch_id, <proxy>, <proxy>_s, one column per target
    summary: (
        pd.DataFrame
    )  # one row per proxy (and target): spearman, kendall, top10_retrieval, seconds_per_arch, n


def top_retrieval(score: np.ndarray, truth: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the truly best ``fraction`` that the score also ranks in its best ``fraction``."""
    k = max(1, math.ceil(fraction * len(truth)))
    best_truth = set(np.argsort(-truth, kind="stable")[:k])
    best_score = set(np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")[:k])
    return len(best_truth & best_score) / k


def summarise(
    scores: pd.DataFrame, proxies: Sequence[str], targets: Sequence[str] = ("truth",)
) -> pd.DataFrame:
    """One row per proxy and ground-truth column: rank correlations, retrieval, seconds."""
    rows = []
    for target in targets:
        truth = scores[target].to_numpy(dtype=float)
        for p in proxies:
            s = scores[p].to_numpy(dtype=float)
            known = np.isfinite(truth)  # a proxy's NaN (failure) counts as a miss in retrieval
            finite = np.isfinite(s) & known
            rows.append(
                {
                    "proxy": p,
                    **({"target": target} if list(targets) != ["truth"] else {}),
                    "spearman": float(
                        pd.Series(s[finite]).corr(pd.Series(truth[finite]), method="spearman")
                    ),
                    "kendall": float(
                        pd.Series(s[finite]).corr(pd.Series(truth[finite]), method="kendall")
                    ),
                    "top10_retrieval": top_retrieval(s[known], truth[known]),
                    "seconds_per_arch": float(scores[f"{p}_s"].mean())
                    if f"{p}_s" in scores
                    else 0.0,
                    "n": int(finite.sum()),
                }
            )
    return pd.DataFrame(rows)


class ProxyScorer:
    """Scores one architecture with every measured proxy: a row of values and seconds.

    Built once per process (in-process, or on each Dask worker from plain data), so providers
    keep their caches (image batches, built networks) across the architectures it scores."""

    def __init__(
        self,
        space: SearchSpace,
        proxies: Sequence[str],
        batch_size: int = 64,
        seed: int = 0,
        data: str = "images",
    ):
        from dse.proxies.zero_cost import MEASURES
        from dse.registry import PROXIES

        # any other registered proxy (eproxy, gennas, a user's) runs as a provider with its
        # defaults;
        # "eproxy@name" uses the configuration saved as "name" (dse dps --name)
        self.providers = {
            p: PROXIES.create(
                p.partition("@")[0], **({"saved": p.partition("@")[2]} if "@" in p else {})
            )
            for p in proxies
            if p not in MEASURES
            and p not in ANALYTIC
            and p != "ensemble"
            and p.partition("@")[0] in PROXIES.names()
        }
        unknown = [
            p
            for p in proxies
            if p not in MEASURES
            and p not in ANALYTIC
            and p != "ensemble"
            and p not in self.providers
        ]
        if unknown:
            raise ValueError(
                f"proxies: {unknown} not allowed; allowed values: "
                f"{sorted({*MEASURES.names(), *ANALYTIC, 'ensemble', *PROXIES.names()})}"
            )
        self.space, self.batch_size, self.seed, self.data = space, batch_size, seed, data
        self.measured = [p for p in proxies if p != "ensemble"]
        self.contexts: dict = {}

    def score(self, arch: dict) -> dict:
        """``{"arch_id", <proxy>: value, <proxy>_s: seconds}``; a failing proxy scores NaN."""
        return self.score_graph(self.space.to_graph(arch), arch)

    def score_graph(self, graph, arch: dict) -> dict:
        """:meth:`score` of an architecture whose graph is already built."""
        from dse.proxies.zero_cost import context_for, io_shapes, score

        row: dict = {"arch_id": self.space.arch_id(arch)}
        key = io_shapes(graph)
        for p in self.measured:
            t = time.perf_counter()
            try:
                if p in ANALYTIC:
                    row[p] = ANALYTIC[p](graph)
                elif p in self.providers:
                    row[p] = float(
                        self.providers[p].evaluate(graph, arch, self.space)[
                            self.providers[p].metrics[0]
                        ]
                    )
                else:
                    if key not in self.contexts:
                        self.contexts[key] = context_for(
                            graph, self.batch_size, self.seed, self.data
                        )
                    row[p] = score(p, graph, self.contexts[key], self.seed)
            except Exception:  # noqa: BLE001 - a failing network scores NaN, the card goes on
                row[p] = math.nan
            row[f"{p}_s"] = time.perf_counter() - t
        return row


def truth_frame(truth) -> pd.DataFrame:
    """Ground truth as named columns: a DataFrame or mapping as given, a 1-D sequence as
    ``truth``."""
    if isinstance(truth, pd.DataFrame):
        return truth.reset_index(drop=True)
    if isinstance(truth, Mapping):
        return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in truth.items()})
    return pd.DataFrame({"truth": np.asarray(truth, dtype=float)})


def card_from_rows(rows: pd.DataFrame, truth, proxies: Sequence[str]) -> ReportCard:
    """The card from scored rows (in the order of ``truth``'s rows) and the ground truth."""
    targets = truth_frame(truth)
    scores = pd.concat([rows.reset_index(drop=True), targets.astype(float)], axis=1)
    measured = [p for p in proxies if p != "ensemble"]
    if "ensemble" in proxies:
        scores["ensemble"] = scores[measured].rank(pct=True).mean(axis=1)
        scores["ensemble_s"] = scores[[f"{p}_s" for p in measured]].sum(axis=1)
    return ReportCard(scores, summarise(scores, list(proxies), list(targets.columns)))


def evaluate_proxies(
    space: SearchSpace,
    archs: Sequence[dict],
    truth,
    proxies: Sequence[str],
    batch_size: int = 64,
    seed: int = 0,
    data: str = "images",
) -> ReportCard:
    """Score every architecture with every proxy (see the module docstring). ``truth`` is one
    sequence of ground-truth values, or named columns (a DataFrame or mapping) for several."""
    scorer = ProxyScorer(space, proxies, batch_size, seed, data)
    columns = ["arch_id", *[c for p in scorer.measured for c in (p, f"{p}_s")]]
    rows = pd.DataFrame([scorer.score(a) for a in archs], columns=columns)
    return card_from_rows(rows, truth, proxies)


def fitted_on(proxies: Sequence[str]) -> set[str]:
    """Table keys of the architectures that saved proxies (``name@saved``) were searched on."""
    keys: set[str] = set()
    for p in proxies:
        if "@" in p:
            keys.update(load_proxy(p.partition("@")[2]).get("provenance", {}).get("archs", []))
    return keys
