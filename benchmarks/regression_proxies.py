"""Regression proxies (Eproxy, GenNAS, a saved DPS configuration) on the NAS-Bench-201 (or -101)
cells of the reference tables: Spearman rho against each data set's validation accuracy, with
seconds per architecture on this CPU.

The proxies are task-agnostic (one batch of images, synthetic targets, classifier removed), so one
score per cell serves every data set, as in the dissertation (4.2: "a single batch of CIFAR-10
images throughout all the experiments").

    python benchmarks/regression_proxies.py [--proxy eproxy|gennas] [--limit N] \
        [--space nasbench101]
        [--exclude-saved NAME] [--shard K/N] [--out DIR] [key=value ...]
    python benchmarks/regression_proxies.py --combine
    results/regression_proxies/nasbench201_gennas_scores*.parquet

Extra ``key=value`` pairs are the proxy's parameters (``c_mid=64 lr=1.0 barrier=false``,
``preset=single``, ``saved=my-dps``). ``--exclude-saved NAME`` leaves out the architectures a saved
DPS configuration was searched on. Scores are written every 25 cells; a rerun with the same
arguments continues where the last one stopped. ``--combine FILES`` reports rho over shard files.
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import numpy as np
import pandas as pd
from timing import DATA

from dse.registry import PROXIES, SPACES

TABLES = {
    "nasbench201": (
        "nasbench201_naslib.csv",
        ["val_acc_cifar10", "val_acc_cifar100", "val_acc_imagenet16_120"],
    ),
    "nasbench101": ("nasbench101_naslib.csv", ["val_acc_cifar10"]),
}


def _value(text: str):
    """``key=value`` values: Python literals (numbers, lists, true/false), else the string."""
    try:
        return ast.literal_eval(text.capitalize() if text.lower() in ("true", "false") else text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", default="eproxy", help="eproxy, gennas or any registered proxy")
    ap.add_argument("--space", default="nasbench201", choices=sorted(TABLES))
    ap.add_argument("--exclude-saved", default=None, metavar="NAME")
    ap.add_argument("--limit", type=int, default=None, help="evenly spaced subset of the cells")
    ap.add_argument("--out", default="results/regression_proxies")
    ap.add_argument(
        "--shard", default=None, metavar="K/N", help="score only rows K, K+N, ... (parallel runs)"
    )
    ap.add_argument(
        "--combine", nargs="+", default=None, metavar="FILE", help="report rho over score files"
    )
    ap.add_argument("params", nargs="*", help="proxy parameters as key=value")
    args = ap.parse_args()
    if args.combine:
        out = pd.concat([pd.read_parquet(f) for f in args.combine])
        targets = [t for _, ts in TABLES.values() for t in ts if t in out.columns]
        report(out, sorted(set(targets), key=targets.index), f"{len(args.combine)} score files")
        return
    params = {k: _value(v) for k, v in (p.split("=", 1) for p in args.params)}
    file, targets = TABLES[args.space]
    df = pd.read_csv(DATA / file, dtype=str)
    if args.exclude_saved:
        from dse.proxies.saved import load_proxy

        fitted = set(load_proxy(args.exclude_saved)["provenance"]["archs"])
        key = df.arch_str if args.space == "nasbench201" else df.adjacency_7x7 + "|" + df.ops
        df = df[~key.isin(fitted)]
    if args.limit:
        df = df.iloc[np.linspace(0, len(df) - 1, args.limit).astype(int)]
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        df = df.iloc[k::n]
    space = SPACES.create(args.space)
    proxy = PROXIES.create(args.proxy, **params)
    metric = proxy.metrics[0]
    tag = "".join(f"_{k}-{v}" for k, v in sorted(params.items()))
    shard = f"_shard{args.shard.replace('/', 'of')}" if args.shard else ""
    limit = f"_limit{args.limit}" if args.limit else ""
    path = Path(args.out) / f"{args.space}_{args.proxy}{tag}{limit}_scores{shard}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = pd.read_parquet(path) if path.exists() else df.iloc[:0].assign(score=[], seconds=[])
    scores, seconds = list(done.score), list(done.seconds)
    if scores:
        print(f"continuing {path}: {len(scores)} of {len(df)} cells already scored")
    for i, row in enumerate(df.iloc[len(scores) :].itertuples(), start=len(scores)):
        arch = (
            space.parse(row.arch_str)
            if args.space == "nasbench201"
            else space.parse(row.adjacency_7x7, row.ops)
        )
        t = time.perf_counter()
        scores.append(proxy.evaluate(space.to_graph(arch), arch, space)[metric])
        seconds.append(time.perf_counter() - t)
        if (i + 1) % 25 == 0 or i + 1 == len(df):
            df.iloc[: len(scores)].assign(score=scores, seconds=seconds).to_parquet(path)
            print(f"  {i + 1}/{len(df)} cells, {np.mean(seconds):.2f} s/cell", flush=True)
    report(
        df.assign(score=scores, seconds=seconds), targets, f"{args.proxy} ({params or 'defaults'})"
    )
    print(f"scores: {path}")


def report(scored: pd.DataFrame, targets: list[str], label: str) -> None:
    print(f"{label} on {len(scored)} cells: {scored.seconds.mean():.2f} s per cell")
    for t in targets:
        rho = scored.score.corr(scored[t].astype(float), method="spearman")
        print(f"  Spearman rho vs {t}: {rho:.3f}")


if __name__ == "__main__":
    main()
