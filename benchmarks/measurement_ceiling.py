"""How well can any model of a cell's operators rank a device's measured NAS-Bench-201 cells?

``benchmarks/device_families.py`` calls a per-op lookup table fitted on 12,000 of a device's
cells "what the measurements themselves allow". This checks that claim: beside a one-hot table
(non-negative least squares over the operator of each of the six edges, ``device_families.lut``
on one-hot counts), gradient-boosted trees (scikit-learn's ``HistGradientBoostingRegressor`` on
log latency, the six edges as categorical features, depth 6: every interaction between edges a
table cannot express) fitted on the same 12,000 cells (seed 0's split) and scored on the other
3,263. Where the trees rank no better than the table, the measurements, not the table's form,
cap the ranking. (The one-hot table cannot say that a graph runtime drops an operator whose
output reaches nothing: the Pixel 3's TFLite; ``device_families.py``'s table, over the model's
own operator counts, can.)

    python benchmarks/measurement_ceiling.py        # about 5 s
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from device_families import CPUS, lut, score
from sklearn.ensemble import HistGradientBoostingRegressor
from timing import DATA

from dse.spaces.nasbench201 import NasBench201Space

#: NAS-Bench-201's operators, one index each
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SPLIT = 12000


def edge_ops(arch_strs) -> np.ndarray:
    """(cells x 6): each edge's operator index, in the space's edge order."""
    space = NasBench201Space()
    rows = [space.parse(a) for a in arch_strs]
    edges = sorted(rows[0])
    return np.array([[OPS.index(r[e]) for e in edges] for r in rows])


def main() -> None:
    df = pd.read_csv(DATA / "nasbench201_latency_devices.csv")
    ops = edge_ops(df["arch_str"])
    one_hot = np.zeros((len(ops), ops.shape[1] * len(OPS)))
    for j in range(ops.shape[1]):
        one_hot[np.arange(len(ops)), j * len(OPS) + ops[:, j]] = 1
    counts = np.column_stack([one_hot, np.ones(len(ops))])
    perm = np.random.default_rng(0).permutation(len(df))
    train, test = perm[:SPLIT], perm[SPLIT:]
    print(f"{'device':18s} one-hot table rho / median | boosted trees rho / median")
    for name, col in CPUS.items():
        y = df[f"{col}_ms"].to_numpy() * 1e-3
        table = lut(counts, y, train, test)
        trees = HistGradientBoostingRegressor(
            max_iter=600,
            learning_rate=0.05,
            max_depth=6,
            categorical_features=list(range(6)),
            random_state=0,
        )
        trees.fit(ops[train], np.log(y[train]))
        boosted = score(np.exp(trees.predict(ops[test])), y[test])
        print(
            f"{name:18s} {table[0]:.3f} / {table[1]:5.1%}           | "
            f"{boosted[0]:.3f} / {boosted[1]:5.1%}"
        )


if __name__ == "__main__":
    main()
