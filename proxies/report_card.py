"""Proxy report card: how well each proxy ranks a space's architectures against ground truth.

For every architecture of a benchmark table (e.g. NAS-Bench-201 cells with their validation
accuracy) each proxy scores a freshly initialised network on the same batch. The card reports,
per proxy: Spearman rho, Kendall tau, top-10% retrieval (the share of the truly best 10% that
the proxy also puts in its best 10%) and seconds per architecture. ``params`` and ``flops`` come
from the analytic proxy; ``ensemble`` is the mean of the other proxies' ranks, a rank-averaging
ensemble. This is how users decide which proxy to trust on their space.

    dse proxy-eval --truth ../shared/data/nasbench201_naslib.csv --target val_acc_cifar10 \\
        --proxies synflow nwot jacob_cov snip grad_norm --limit 50 --out results/proxy_card
    dse proxy-eval --space nasbench101 --truth ../shared/data/nasbench101_naslib.csv \\
        --arch-column adjacency_7x7 --ops-column ops --proxies params synflow --limit 20
    dse proxy-eval --truth ... --proxies eproxy gennas eproxy@my-dps   # a saved DPS configuration

Any registered proxy provider can be scored (eproxy, gennas, a user's); ``name@saved`` loads a
configuration saved by ``dse dps --name`` and leaves out the architectures it was searched on.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dse.graph import totals
from dse.registry import COMMANDS, SPACES
from dse.space import SearchSpace

ANALYTIC = {"params": lambda g: float(totals(g).params), "flops": lambda g: float(totals(g).flops)}


@dataclass
class ReportCard:
    scores: pd.DataFrame  # one row per architecture: arch_id, truth, <proxy>, <proxy>_s
    summary: pd.DataFrame  # one row per proxy: spearman, kendall, top10_retrieval, seconds_per_arch, n


def top_retrieval(score: np.ndarray, truth: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the truly best ``fraction`` that the score also ranks in its best ``fraction``."""
    k = max(1, math.ceil(fraction * len(truth)))
    best_truth = set(np.argsort(-truth, kind="stable")[:k])
    best_score = set(np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")[:k])
    return len(best_truth & best_score) / k


def summarise(scores: pd.DataFrame, proxies: Sequence[str]) -> pd.DataFrame:
    rows = []
    truth = scores["truth"].to_numpy(dtype=float)
    for p in proxies:
        s = scores[p].to_numpy(dtype=float)
        finite = np.isfinite(s)
        rows.append({
            "proxy": p,
            "spearman": float(pd.Series(s[finite]).corr(pd.Series(truth[finite]), method="spearman")),
            "kendall": float(pd.Series(s[finite]).corr(pd.Series(truth[finite]), method="kendall")),
            "top10_retrieval": top_retrieval(s, truth),
            "seconds_per_arch": float(scores[f"{p}_s"].mean()) if f"{p}_s" in scores else 0.0,
            "n": int(finite.sum()),
        })
    return pd.DataFrame(rows)


def evaluate_proxies(space: SearchSpace, archs: Sequence[dict], truth: Sequence[float], proxies: Sequence[str],
                     batch_size: int = 64, seed: int = 0, data: str = "images") -> ReportCard:
    """Score every architecture with every proxy (see the module docstring)."""
    from dse.registry import PROXIES
    from dse.proxies.zero_cost import MEASURES, context_for, io_shapes, score

    # any other registered proxy (eproxy, gennas, a user's) runs as a provider with its defaults;
    # "eproxy@name" uses the configuration saved as "name" (dse dps --name)
    providers = {p: PROXIES.create(p.partition("@")[0], **({"saved": p.partition("@")[2]} if "@" in p else {}))
                 for p in proxies if p not in MEASURES and p not in ANALYTIC and p != "ensemble"
                 and p.partition("@")[0] in PROXIES.names()}
    unknown = [p for p in proxies if p not in MEASURES and p not in ANALYTIC and p != "ensemble" and p not in providers]
    if unknown:
        raise ValueError(f"proxies: {unknown} not allowed; allowed values: "
                         f"{sorted([*MEASURES, *ANALYTIC, 'ensemble', *PROXIES.names()])}")
    measured = [p for p in proxies if p != "ensemble"]
    rows, contexts = [], {}
    for arch, y in zip(archs, truth):
        graph = space.to_graph(arch)
        row = {"arch_id": space.arch_id(arch), "truth": float(y)}
        key = io_shapes(graph)
        for p in measured:
            t = time.perf_counter()
            if p in ANALYTIC:
                row[p] = ANALYTIC[p](graph)
            elif p in providers:
                try:
                    row[p] = float(providers[p].evaluate(graph, arch, space)[providers[p].metrics[0]])
                except Exception:  # noqa: BLE001
                    row[p] = math.nan
            else:
                if key not in contexts:
                    contexts[key] = context_for(graph, batch_size, seed, data)
                try:
                    row[p] = score(p, graph, contexts[key], seed)
                except Exception:  # noqa: BLE001 - a failing network scores NaN, the card goes on
                    row[p] = math.nan
            row[f"{p}_s"] = time.perf_counter() - t
        rows.append(row)
    scores = pd.DataFrame(rows)
    if "ensemble" in proxies:
        scores["ensemble"] = scores[measured].rank(pct=True).mean(axis=1)
        scores["ensemble_s"] = scores[[f"{p}_s" for p in measured]].sum(axis=1)
    return ReportCard(scores, summarise(scores, list(proxies)))


def fitted_on(proxies: Sequence[str]) -> set[str]:
    """Table keys of the architectures that saved proxies (``name@saved``) were searched on."""
    from dse.proxies.dps import load_proxy

    keys: set[str] = set()
    for p in proxies:
        if "@" in p:
            keys.update(load_proxy(p.partition("@")[2]).get("provenance", {}).get("archs", []))
    return keys


@COMMANDS.register("proxy-eval")
class ProxyEvalCommand:
    """Proxy report card: Spearman, Kendall, top-10% retrieval and seconds per architecture."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--space", default="nasbench201", help="space name (default nasbench201)")
        p.add_argument("--dataset", default=None, help="space dataset, e.g. cifar10, cifar100, imagenet16_120")
        p.add_argument("--truth", required=True, help="CSV with an architecture column and a ground-truth column")
        p.add_argument("--arch-column", default="arch_str", help="column parsed by the space (default arch_str)")
        p.add_argument("--ops-column", default=None,
                       help="second column joined as 'ARCH|OPS' (nasbench101: --arch-column adjacency_7x7 --ops-column ops)")
        p.add_argument("--target", default="val_acc_cifar10", help="ground-truth column (default val_acc_cifar10)")
        p.add_argument("--proxies", nargs="+", default=["params", "flops", "synflow", "nwot", "jacob_cov", "snip",
                                                         "grad_norm", "ensemble"])
        p.add_argument("--limit", type=int, default=0, help="score only this many rows (random, seeded; 0: all)")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--data", default="images", help="images (shipped photographs) or synthetic")
        p.add_argument("--out", default=None, help="folder for scores.parquet and report_card.parquet")

    def run(self, args: argparse.Namespace) -> int:
        df = pd.read_csv(args.truth, dtype={args.arch_column: str})  # keeps leading zeros of bit strings
        for column in (args.arch_column, args.target, *([args.ops_column] if args.ops_column else [])):
            if column not in df.columns:
                raise ValueError(f"{column!r} is not a column of {args.truth}; columns: {list(df.columns)}")
        if args.limit:
            df = df.sample(n=min(args.limit, len(df)), random_state=args.seed)
        space = SPACES.create(args.space, **({"dataset": args.dataset} if args.dataset else {}))
        if not hasattr(space, "parse"):
            raise ValueError(f"space {args.space!r} cannot parse architecture strings (no parse method)")
        texts = df[args.arch_column] if not args.ops_column else df[args.arch_column] + "|" + df[args.ops_column]
        fitted = fitted_on(args.proxies)
        if fitted:  # score every proxy on the architectures the searched ones never saw
            keep = ~texts.isin(fitted)
            print(f"excluding {int((~keep).sum())} architectures a saved proxy was searched on")
            df, texts = df[keep.to_numpy()], texts[keep]
        archs = [space.parse(a) for a in texts]
        card = evaluate_proxies(space, archs, df[args.target].to_numpy(dtype=float), args.proxies,
                                args.batch_size, args.seed, args.data)
        print(f"{len(archs)} architectures of {args.space}, ground truth {args.target}")
        print(card.summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            card.scores.to_parquet(out / "scores.parquet", index=False)
            card.summary.to_parquet(out / "report_card.parquet", index=False)
            print(f"written: {out / 'scores.parquet'}, {out / 'report_card.parquet'}")
        return 0
