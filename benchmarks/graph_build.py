"""Architectures per second for building and costing graphs of the IR, on one core.

For NAS-Bench-201 and the EDD MBConv chain: build the graph (``space.to_graph``) and total its
costs (``dse.graph.totals``), for random architectures. The baseline, measured in the same run,
builds the same graphs the plain way: op by op, no fragment replay or wiring reuse, and one
``add_node``/``add_edge`` call per node and edge. Each case prints the best and the median of
several passes; the ratio compares best with best. Target: >= 10,000 NAS-Bench-201 architectures/s.

    python benchmarks/graph_build.py [--archs 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

import networkx as nx
import numpy as np
from timing import rate

import dse.spaces.mbconv as mbconv_mod
import dse.spaces.nasbench201 as nb201_mod
from dse.gcpolicy import search_gc
from dse.graph import GraphBuilder, canonical_hash, totals
from dse.proxies.analytic import AnalyticProxy


class PlainBuilder(GraphBuilder):
    """The baseline: the graph grown through the public networkx API, node by node."""

    def build(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for i, op in enumerate(self._ops):
            g.add_node(i, op=op)
        for u, v, port in zip(self._src, self._dst, self._port):
            g.add_edge(u, v, port=port)
        g.graph.update(
            name=self.name,
            inputs=list(self.inputs),
            outputs=[n for n in g if g.out_degree(n) == 0],
            stage_outputs=list(self.stage_outputs),
            block_outputs=list(self.block_outputs),
            meta=dict(self.meta),
        )
        return g


def plain_graph(space, arch) -> nx.DiGraph:
    """``space``'s graph of ``arch`` built op by op (NAS-Bench-201 without its wiring reuse)."""
    if isinstance(space, nb201_mod.NasBench201Space):
        ops = tuple(arch[nb201_mod.edge_name(*e)] for e in nb201_mod.EDGES)
        b = PlainBuilder("plain")
        space._build(b, ops)
        return b.build()
    return space.to_graph(arch)


@contextmanager
def plain_building(*modules):
    saved = [m.GraphBuilder for m in modules]
    for m in modules:
        m.GraphBuilder = PlainBuilder
    try:
        yield
    finally:
        for m, b in zip(modules, saved):
            m.GraphBuilder = b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(
            0, {int(os.environ.get("DSE_BENCH_CORE", max(os.sched_getaffinity(0))))}
        )  # one core
    rng = np.random.default_rng(0)
    print(
        f"{'case':44s} {'best/s':>8s} {'median/s':>9s} {'baseline best/median':>21s} {'ratio':>6s}"
    )
    for label, make in (
        ("nasbench201 cifar10: build + totals", lambda: nb201_mod.NasBench201Space()),
        ("mbconv fpga (20 blocks): build + totals", lambda: mbconv_mod.MBConvChainSpace()),
    ):
        space = make()
        archs = [space.sample(rng) for _ in range(args.archs)]
        fast = rate(lambda a, space=space: totals(space.to_graph(a)), archs, args.repeats)
        with plain_building(nb201_mod, mbconv_mod):
            plain_space = make()
            plain_space._fragments = None
            base = rate(lambda a, s=plain_space: totals(plain_graph(s, a)), archs, args.repeats)
        print(
            f"{label:44s} {fast[0]:8.0f} {fast[1]:9.0f} {base[0]:10.0f} /{base[1]:9.0f} "
            f"{fast[0] / base[0]:5.2f}x"
        )
        with search_gc():  # what a search loop sees (dse.gcpolicy)
            loop = rate(lambda a, space=space: totals(space.to_graph(a)), archs, args.repeats)
        print(f"{'  ... under the search loop GC policy':44s} {loop[0]:8.0f} {loop[1]:9.0f}")
    space = nb201_mod.NasBench201Space()
    archs = [space.sample(rng) for _ in range(args.archs // 4)]
    proxy = AnalyticProxy()
    for label, fn in (
        (
            "nasbench201: build + analytic proxy (all)",
            lambda a: proxy.evaluate(space.to_graph(a), a, space),
        ),
        ("nasbench201: space.arch_hash (cell digest)", space.arch_hash),
        (
            "nasbench201: build + canonical_hash (graph)",
            lambda a: canonical_hash(space.to_graph(a)),
        ),
    ):
        best, med = rate(fn, archs, args.repeats)
        print(f"{label:44s} {best:8.0f} {med:9.0f}")
    print("target: >= 10,000 NAS-Bench-201 architectures/s (build + totals, one core)")


if __name__ == "__main__":
    main()
