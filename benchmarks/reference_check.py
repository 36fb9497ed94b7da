"""Reproduce the reference figures (BENCHMARKS.md) for the graph IR's cost model.

* NAS-Bench-201: our parameter and FLOP counts against NASLib's for the 362 cells of
  ``nasbench201_naslib.csv``, on all three data sets (worst and median relative error).
* How well the analytic metrics rank validation accuracy on those cells (Spearman rho).
* The reference networks against their published parameter and MAC counts.
* TransNAS-Bench-101 micro: parameters and FLOPs against NASLib's for the 355 cells of
  ``transnas101_micro_naslib.csv`` on all seven tasks (FLOPs: the residual, NASLib's minus
  ours, which is one constant per task).

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
from dse.spaces.transnas101 import TASKS, TransNas101MicroSpace
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
    tnb = pd.read_csv(Path(args.data) / "transnas101_micro_naslib.csv", dtype=str)
    print(f"\nTransNAS-Bench-101 micro vs NASLib, {len(tnb)} cells (naslib_op_indices)")
    print(f"{'task':16s} {'params max err':>15s} {'FLOPs residual min':>19s} {'max':>10s}")
    for task in TASKS:
        space = TransNas101MicroSpace(task)
        t = [totals(space.to_graph(space.parse(i))) for i in tnb.naslib_op_indices]
        p_err = np.abs(np.array([x.params for x in t]) / tnb[f"naslib_params_{task}"].astype(float)
                       / 1e6 - 1)  # fmt: skip
        resid = tnb[f"naslib_flops_{task}"].astype(float) * 1e6 - [x.hook_flops for x in t]
        print(f"{task:16s} {p_err.max():15.2e} {resid.min():19,.0f} {resid.max():10,.0f}")


if __name__ == "__main__":
    main()
