"""Our zero-cost proxies against NASLib's on the 362 NAS-Bench-201 cells of nasbench201_naslib.csv
(``--space nasbench101``: the 250 NAS-Bench-101 cells of nasbench101_naslib.csv, CIFAR-10).

For each data set (CIFAR-10, CIFAR-100, ImageNet16-120) and proxy it prints:

* ``vs NASLib``: Spearman rho between our score and NASLib's column for the same proxy (target
  >= 0.95 for synflow, params and FLOPs: the same measure, implemented independently);
* ``ours`` / ``NASLib``: Spearman rho of our score and of NASLib's score against the validation
  accuracy on the same cells, and their difference (target: within 0.05 for nwot, jacob_cov,
  snip and grad_norm on CIFAR-10).

Scores go to ``--out`` (Parquet) so a rerun can skip the scoring with ``--reuse``.

    python benchmarks/proxy_reference.py [--datasets cifar10] [--limit 0] [--batch-size 64]
    [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timing import DATA

from dse.proxies.report_card import evaluate_proxies
from dse.spaces.nasbench101 import NasBench101Space
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str

NASLIB = {
    "params": "params",
    "flops": "flops",
    "synflow": "synflow",
    "nwot": "nwot",
    "jacob_cov": "jacov",
    "snip": "snip",
    "grasp": "grasp",
    "fisher": "fisher",
    "grad_norm": "grad_norm",
    "l2_norm": "l2_norm",
}
TARGET = {
    "cifar10": "val_acc_cifar10",
    "cifar100": "val_acc_cifar100",
    "imagenet16_120": "val_acc_imagenet16_120",
}


def rho(a, b) -> float:
    return float(
        pd.Series(np.asarray(a, dtype=float)).corr(
            pd.Series(np.asarray(b, dtype=float)), method="spearman"
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--datasets", nargs="+", default=list(TARGET))
    ap.add_argument("--proxies", nargs="+", default=list(NASLIB) + ["zico", "zen"])
    ap.add_argument(
        "--limit", type=int, default=0, help="only this many cells (seeded sample; 0: all 362)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/proxy_reference")
    ap.add_argument("--reuse", action="store_true", help="read scores written by an earlier run")
    ap.add_argument("--space", default="nasbench201", choices=["nasbench201", "nasbench101"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    nb101 = args.space == "nasbench101"
    if nb101:
        args.datasets = ["cifar10"]
    table = "nasbench101_naslib.csv" if nb101 else "nasbench201_naslib.csv"
    df = pd.read_csv(Path(args.data) / table, dtype={"adjacency_7x7": str})
    if args.limit:
        df = df.sample(n=args.limit, random_state=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        path = out / f"scores_{args.space}_{dataset}.parquet"
        if args.reuse and path.exists():
            scores = pd.read_parquet(path)
        else:
            t = time.perf_counter()
            if nb101:
                space = NasBench101Space()
                archs = [space.parse(a, o) for a, o in zip(df.adjacency_7x7, df.ops)]
            else:
                space = NasBench201Space(dataset)
                archs = [parse_arch_str(a) for a in df.arch_str]
            card = evaluate_proxies(
                space,
                archs,
                df[TARGET[dataset]].to_numpy(),
                args.proxies,
                batch_size=args.batch_size,
                seed=0,
            )
            scores = card.scores
            scores.to_parquet(path, index=False)
            print(f"{dataset}: scored {len(df)} cells in {time.perf_counter() - t:.0f} s")
        truth = df[TARGET[dataset]].to_numpy()
        print(
            f"\n{args.space} {dataset} ({len(df)} cells)      vs NASLib   ours vs acc   NASLib vs "
            "acc   difference   s/arch"
        )
        for p in args.proxies:
            ours = scores[p].to_numpy()
            col = f"naslib_{NASLIB[p]}_{dataset}" if p in NASLIB else None
            theirs = df[col].to_numpy() if col in df.columns else None
            same = f"{rho(ours, theirs):10.3f}" if theirs is not None else f"{'-':>10s}"
            mine = rho(ours, truth)
            ref = rho(theirs, truth) if theirs is not None else float("nan")
            print(
                f"  {p:18s} {same}   {mine:11.3f}   {ref:13.3f}   {mine - ref:+10.3f}   "
                f"{scores[f'{p}_s'].mean():6.2f}"
            )


if __name__ == "__main__":
    main()
