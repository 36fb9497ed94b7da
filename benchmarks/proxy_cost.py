"""CPU seconds per architecture for each zero-cost proxy on NAS-Bench-201 (batch 64), and for the
regression proxies Eproxy (10 steps, batch 16) and GenNAS (100 steps, batch 16), next to a plain
forward + backward pass of the same network as the baseline, measured in the same run.

    python benchmarks/proxy_cost.py [--archs 10] [--batch-size 64] [--threads 1] [--regression
    eproxy gennas]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from timing import sample_graphs

from dse.proxies.zero_cost import MEASURES, context_for, score
from dse.registry import PROXIES
from dse.spaces.nasbench201 import NasBench201Space
from dse.training.network import build_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--proxies", nargs="+", default=MEASURES.names())
    ap.add_argument(
        "--regression",
        nargs="*",
        default=["eproxy", "gennas"],
        help="registered regression proxies, at their default settings",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = NasBench201Space()
    graphs = sample_graphs(space, args.archs)
    ctx = context_for(graphs[0], args.batch_size, 0, "images")
    for g in graphs[:2]:  # warm-up: imports, allocator, kernels
        F.cross_entropy(build_network(g, seed=0)(ctx.inputs), ctx.targets).backward()

    t = time.perf_counter()
    for g in graphs:
        net = build_network(g, seed=0)
        F.cross_entropy(net(ctx.inputs), ctx.targets).backward()
    base = (time.perf_counter() - t) / len(graphs)
    print(f"{len(graphs)} NAS-Bench-201 cells, batch {args.batch_size}, {args.threads} thread(s)")
    print(f"{'proxy':12s} {'s/arch':>8s} {'x forward+backward':>19s}")
    print(f"{'baseline':12s} {base:8.3f} {1.0:19.2f}   (build + forward + backward)")
    for name in args.proxies:
        t = time.perf_counter()
        for g in graphs:
            score(name, g, ctx)
        per = (time.perf_counter() - t) / len(graphs)
        print(f"{name:12s} {per:8.3f} {per / base:19.2f}")
    for name in args.regression:
        proxy = (
            PROXIES.create(name, threads=args.threads, alpha=0.0)
            if name == "eproxy"
            else PROXIES.create(name, threads=args.threads)
        )
        t = time.perf_counter()
        for g in graphs:
            proxy.evaluate(g, {}, space)
        per = (time.perf_counter() - t) / len(graphs)
        print(f"{name:12s} {per:8.3f} {per / base:19.2f}")


if __name__ == "__main__":
    main()
