"""Reproduce the reference figures (BENCHMARKS.md) for the graph IR's cost model.

* NAS-Bench-201: our parameter and FLOP counts against NASLib's for the 362 cells of
  ``nasbench201_naslib.csv``, on all three data sets (worst and median relative error).
* How well the analytic metrics rank validation accuracy on those cells (Spearman rho).
* The reference networks against their published parameter and MAC counts.

    python benchmarks/reference_check.py [--data data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from timing import DATA

from dse.graph import totals
from dse.spaces.nasbench201 import NasBench201Space, from_naslib_indices
from dse.spaces.zoo import PUBLISHED, build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    df = pd.read_csv(Path(args.data) / "nasbench201_naslib.csv")
    print(f"NAS-Bench-201 vs NASLib, {len(df)} cells")
    print(
        f"{'dataset':16s} {'params max err':>15s} {'FLOPs max err':>14s} {'FLOPs median':>13s} "
        f"{'rho(FLOPs,acc)':>15s} {'rho(params,acc)':>16s}"
    )
    for ds in ("cifar10", "cifar100", "imagenet16_120"):
        space = NasBench201Space(ds)
        t = [totals(space.to_graph(from_naslib_indices(i))) for i in df.naslib_op_indices]
        params = np.array([x.params for x in t]) / 1e6
        flops = np.array([x.hook_flops for x in t]) / 1e6
        p_err = np.abs(params / df[f"naslib_params_{ds}"] - 1)
        f_err = np.abs(flops / df[f"naslib_flops_{ds}"] - 1)
        acc = df[f"val_acc_{ds}"]
        rho_f = pd.Series(flops).corr(acc, method="spearman")
        rho_p = pd.Series(params).corr(acc, method="spearman")
        print(
            f"{ds:16s} {p_err.max():15.4%} {f_err.max():14.4%} {np.median(f_err):13.4%} "
            f"{rho_f:15.3f} {rho_p:16.3f}"
        )
    print("\nreference networks at 224x224 vs published")
    print(f"{'network':18s} {'params':>10s} {'diff':>8s} {'MACs':>10s} {'diff':>8s}  source")
    for name, ref in PUBLISHED.items():
        t = totals(build(name))
        macs = "n/a" if ref.macs is None else f"{t.macs / ref.macs - 1:+8.2%}"
        print(
            f"{name:18s} {t.params / 1e6:9.3f}M {t.params / ref.params - 1:+8.2%} "
            f"{t.macs / 1e6:9.1f}M {macs:>8s}  {ref.source}"
        )


if __name__ == "__main__":
    main()
