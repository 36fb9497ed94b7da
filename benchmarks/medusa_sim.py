"""Medusa: simulated decode steps/s, greedy sparse trees/s, and the chapter-6 figures.

Prints, and draws as PNG under ``--out`` (default results/medusa):

* figure 6.20: acceleration (0.477 log q), overhead and speedup against candidate tokens q for
  Llama-7B on A100-80GB-PCIe, batch 1, sequence 1024 (table 6.3's simplified block, as 6.4.3.3);
* figure 6.21: speedup against batch size at sequence 1024, at 64 candidates and at the best q;
* table 6.1: the full verification step's overhead for Vicuna-7B/13B/33B and Zephyr-7B against
  the table (one efficiency fitted to Vicuna-7B), and figure 6.22's trend over sequence length;
* figure 6.6a: expected acceptance of greedy sparse trees against every dense tree up to 256
  nodes (Vicuna-7B's Medusa-1 head accuracies);
* speculative decoding with a draft model, for comparison;
* speed: discrete-event decode steps/s (greedy and typical acceptance) and sparse trees/s.

    python benchmarks/medusa_sim.py [--out results/medusa]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from dse.catalogs.llms import LlmConfig, get_llm
from dse.catalogs.medusa_heads import load_head_accuracy
from dse.catalogs.medusa_trees import (
    dense_tree,
    dense_tree_nodes,
    expected_acceptance,
    sparse_tree,
)
from dse.simulators.gpu.llm import LlmWorkload
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.medusa.acceptance import Acceptance
from dse.simulators.medusa.decode import (
    TABLE_6_1,
    VERIFY_LINEAR_EFFICIENCY,
    Speculative,
    SpeedupModel,
    fit_linear_efficiency,
    log_acceleration,
    simulate_decoding,
    speculative_speedup,
)
from dse.simulators.medusa.verify import TreeShape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/medusa")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a100 = GpuCostModel.create("A100-80GB-PCIe")
    block = SpeedupModel(LlmWorkload(get_llm("llama-7b"), a100, simplified=True), heads=0)
    full = SpeedupModel(LlmWorkload(get_llm("llama-7b"), a100), heads=5)

    q = np.unique(np.round(np.geomspace(1, 1024, 61)).astype(int))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    print("figure 6.20: Llama-7B, A100-80GB-PCIe, batch 1, sequence 1024")
    for label, m in (("simplified block (6.4.3.3)", block), ("whole model + 5 heads", full)):
        r = m.sweep(q, 1, 1024)
        peak = int(q[r["speedup"].argmax()])
        at = {
            int(x): round(float(s), 2)
            for x, s in zip(q, r["speedup"])
            if x in (16, 32, 64, 128, 256, 512)
        }
        print(
            f"  {label}: speedup peaks at q = {peak} ({r['speedup'].max():.2f}x); speedup at q: "
            f"{at}"
        )
        ax[0].semilogx(q, r["speedup"], label=f"speedup, {label}")
        ax[0].semilogx(q, r["overhead"], "--", label=f"overhead, {label}")
    ax[0].semilogx(q, log_acceleration(q), ":", label="acceleration 0.477 ln q")
    ax[0].set(xlabel="candidate tokens q", ylabel="x", title="Llama-7B, A100, b=1, s=1024")
    ax[0].legend(fontsize=7)

    batches = np.array([1, 2, 4, 8, 16, 32, 64, 128])
    grid = block.sweep(q[:, None], batches[None, :], 1024)
    best, best_q = grid["speedup"].max(axis=0), q[grid["speedup"].argmax(axis=0)]
    at64 = block.sweep(64, batches, 1024)["speedup"]
    print("figure 6.21: Llama-7B simplified block, sequence 1024")
    for b, s64, sb, qb in zip(batches, at64, best, best_q):
        print(f"  batch {b:4d}: speedup {s64:.2f}x at q = 64; best {sb:.2f}x at q = {qb}")
    ax[1].semilogx(batches, at64, "o-", label="q = 64")
    ax[1].semilogx(batches, best, "s-", label="best q")
    ax[1].axhline(1.0, color="grey", lw=0.5)
    ax[1].set(xlabel="batch size", ylabel="speedup", title="Llama-7B, A100, s=1024")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "medusa_fig_6_20_6_21.png", dpi=120)

    vic = SpeedupModel(LlmWorkload(get_llm("vicuna-7b"), a100), heads=5)
    acc = load_head_accuracy("vicuna-7b-v1.3")
    tree64 = sparse_tree(acc, 63)
    shape64 = TreeShape.of(tree64)
    fitted = fit_linear_efficiency(vic, shape64, TABLE_6_1["vicuna-7b"][1])
    print(
        f"table 6.1 (A100, batch 1, sequence 1024, the 64-candidate sparse tree, 5 heads): one "
        f"parameter, the linear layers' memory efficiency at q rows, fitted to Vicuna-7B's 1.22: "
        f"{fitted:.3f} (shipped: {VERIFY_LINEAR_EFFICIENCY})"
    )
    print(
        f"  {'model':11s} {'overhead':>8s} {'table':>6s} {'gap':>6s}   {'bare':>5s} "
        f"{'speedup':>7s} {'table':>6s}"
    )
    for name, (rate, table_over, table_speedup) in TABLE_6_1.items():
        m = SpeedupModel(LlmWorkload(get_llm(name), a100), heads=5, tree=shape64)
        over = float(m.overhead(shape64.candidates, 1, 1024))
        bare = float(m.with_linear_efficiency(1.0).overhead(shape64.candidates, 1, 1024))
        print(
            f"  {name:11s} {over:8.3f} {table_over:6.2f} {over / table_over - 1:+6.1%}   "
            f"{bare:5.3f} {rate / over:7.2f} {table_speedup:6.2f}"
        )
    print(
        "  (bare: the same kernels without the fitted efficiency; speedup: the table's "
        "acceleration rate over our overhead)"
    )
    print("figure 6.22 trend, Vicuna-7B, batch 4, 64 candidates: overhead by sequence length")
    seqs = [256, 512, 1024, 2048, 4096]
    print("  " + ", ".join(f"s={s}: {float(vic.overhead(64, 4, s)):.3f}" for s in seqs))

    sparse = {n: expected_acceptance(sparse_tree(acc, n), acc) for n in (16, 32, 64, 128, 256)}
    dense = [
        (dense_tree_nodes(s), expected_acceptance(dense_tree(s), acc), s)
        for k in range(1, 6)
        for s in itertools.product(range(1, 6), repeat=k)
        if dense_tree_nodes(s) <= 256
    ]
    best_dense = max(dense, key=lambda t: t[1])
    print(
        "figure 6.6a (Vicuna-7B Medusa-1 head accuracies, greedy): sparse trees {nodes: "
        "tokens/step} "
        f"{ {n: round(v, 3) for n, v in sparse.items()} }; best of {len(dense)} dense trees up to "
        "256 nodes: "
        f"{best_dense[1]:.3f} with {best_dense[0]} nodes (top-s per head {list(best_dense[2])}); "
        f"64-node sparse / best dense: {sparse[64] / best_dense[1]:.3f}"
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([d[0] for d in dense], [d[1] for d in dense], s=6, label="dense (Cartesian) trees")
    ax.plot(list(sparse), list(sparse.values()), "r*-", label="greedy sparse trees")
    ax.set(
        xscale="log",
        xlabel="tree nodes",
        ylabel="expected tokens per step",
        title="Vicuna-7B heads",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "medusa_fig_6_6a.png", dpi=120)

    # a 2-layer, 68M-parameter draft in the Llama vocabulary (the size SpecInfer-style drafts use)
    draft = LlmWorkload(
        LlmConfig(
            "draft-68m",
            layers=2,
            hidden=768,
            intermediate=3072,
            heads=12,
            kv_heads=12,
            head_dim=64,
            vocab=32000,
        ),
        a100,
    )
    vicuna = LlmWorkload(get_llm("vicuna-7b"), a100)
    for gamma, alpha in ((3, 0.6), (4, 0.7), (5, 0.8)):
        s = float(speculative_speedup(vicuna, Speculative(draft, gamma, alpha), 1, 1024))
        print(
            f"speculative decoding, Vicuna-7B with a 68M draft, gamma {gamma}, alpha {alpha}: "
            f"speedup {s:.2f}x "
            f"(table 6.1: 1.47x)"
        )
    print(
        "Medusa on Vicuna-7B, 64-token tree, Medusa-1 heads "
        f"({expected_acceptance(tree64, acc):.2f} tokens/step): "
        f"speedup {expected_acceptance(tree64, acc) / over:.2f}x"
    )

    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < 2.0:
        sparse_tree(acc, 63)
        n += 1
    print(
        "greedy sparse-tree construction (63 nodes, 5 heads x 5 ranks): "
        f"{n / (time.perf_counter() - t):,.0f} trees/s"
    )
    rng = np.random.default_rng(0)
    reqs = [(float(x), 512, 256) for x in np.cumsum(rng.exponential(0.25, 64))]
    for rule in (Acceptance(), Acceptance("typical", 0.7, 0.09, 0.3)):
        simulate_decoding(
            vic, reqs[:2], tree=tree64, acc=acc, batch=8, acceptance=rule
        )  # warm caches
        t = time.perf_counter()
        r = simulate_decoding(vic, reqs, tree=tree64, acc=acc, batch=8, acceptance=rule)
        wall = time.perf_counter() - t
        s = r.summary
        print(
            f"decode DES, Vicuna-7B, {rule.scheme}, batch 8, 64 requests: {s['steps'] / wall:,.0f} "
            "steps/s "
            f"({s['steps']:.0f} steps in {wall:.2f} s); acceleration {s['acceleration_rate']:.2f}, "
            f"overhead {s['overhead']:.2f}, speedup {s['speedup']:.2f}, {s['tokens_per_s']:,.0f} "
            "tokens/s"
        )
    one = [(0.0, 512, 512)]
    runs = {
        "vanilla": simulate_decoding(vic, one, tree=None),
        "Medusa (greedy, 64-token tree)": simulate_decoding(vic, one, tree=tree64, acc=acc),
        "speculative (68M draft, gamma 4, alpha 0.7)": simulate_decoding(
            vic, one, tree=None, speculative=Speculative(draft, gamma=4, alpha=0.7)
        ),
    }
    for name, r in runs.items():
        s = r.summary
        print(
            f"decode DES, Vicuna-7B, one request of 512 tokens, {name}: {s['tokens_per_s']:,.1f} "
            "tokens/s, "
            f"acceleration {s['acceleration_rate']:.2f}, overhead {s['overhead']:.2f}, speedup "
            f"{s['speedup']:.2f}"
        )
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
