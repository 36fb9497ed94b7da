"""The fast graph paths give exactly the graphs and numbers of the plain ones: columnar graphs
(adjacency made on first read), NAS-Bench-201's wiring reuse, chained fragment replays, and the
population analysis behind the analytic proxy."""

from __future__ import annotations

import copy
import pickle

import networkx as nx
import numpy as np
import pytest

from dse.graph import GraphBuilder, peak_activation_bytes, totals, validate
from dse.graph.builder import FragmentCache
from dse.graph.columnar import ColumnarDiGraph, edge_columns
from dse.graph.population import TOTALS_COLUMNS, PopulationAnalysis
from dse.proxies.analytic import AnalyticProxy
from dse.registry import SPACES
from dse.spaces.nasbench201 import EDGE_NAMES, NasBench201Space


def _grown(g: nx.DiGraph) -> nx.DiGraph:
    """The same graph grown through networkx's public API from its unread edge columns."""
    src, dst, port = g.__dict__["_edge_columns"]
    slow = nx.DiGraph()
    slow.add_nodes_from(g.nodes(data=True))
    slow.add_edges_from((u, v, {"port": p}) for u, v, p in zip(src, dst, port))
    slow.graph.update(g.graph)
    return slow


def _is_lazy(g: nx.DiGraph) -> bool:
    return "_edge_columns" in g.__dict__


def _plain_nb201(space: NasBench201Space, arch) -> nx.DiGraph:
    """NAS-Bench-201's graph built op by op: no fragment cache, no wiring reuse."""
    b = GraphBuilder("plain", weight_bits=space.weight_bits, act_bits=space.act_bits)
    x = b.mark_block(space._stem(b, b.input((3, space.resolution, space.resolution))))
    ops = tuple(arch[e] for e in EDGE_NAMES)
    c = space.channels
    for stage in range(3):
        if stage:
            c *= 2
            x = b.mark_block(space._reduction(b, x, c))
        for _ in range(space.cells_per_stage):
            saved, space._fragments = space._fragments, None
            x = b.mark_block(space._cell(b, x, ops, c))
            space._fragments = saved
        b.mark_stage(x)
    space._head(b, x)
    return b.build()


def test_columnar_graph_reads_edit_and_pickles_like_a_digraph():
    g = NasBench201Space().to_graph(NasBench201Space().sample(np.random.default_rng(0)))
    assert isinstance(g, ColumnarDiGraph) and _is_lazy(g)
    before = pickle.loads(pickle.dumps(g))  # travels unread, is read where it lands
    deep = copy.deepcopy(g)
    assert totals(g).num_nodes == len(g) and _is_lazy(g)  # node reads make no adjacency
    slow = _grown(g)
    assert nx.utils.graphs_equal(g, slow) and not _is_lazy(g)  # edges read: made once
    assert [list(g.pred[n]) for n in g] == [list(slow.pred[n]) for n in slow]
    assert nx.utils.graphs_equal(before, slow) and nx.utils.graphs_equal(deep, slow)
    last = max(g)
    fresh = NasBench201Space().to_graph(NasBench201Space().sample(np.random.default_rng(0)))
    fresh.add_edge(0, last, port=9)  # an edit on an unread graph keeps every other edge
    assert fresh.number_of_edges() == slow.number_of_edges() + 1 and fresh.has_edge(0, last)
    assert set(edge_columns(fresh)[0]) == set(u for u, _ in fresh.edges)
    replaced = NasBench201Space().to_graph(NasBench201Space().sample(np.random.default_rng(0)))
    replaced._adj, replaced._pred = {n: {} for n in replaced}, {n: {} for n in replaced}
    assert replaced.number_of_edges() == 0 and edge_columns(replaced) == ([], [])
    validate(g)


def test_nasbench201_graphs_equal_op_by_op_builds_for_new_and_reused_wirings():
    space = NasBench201Space()
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(150)]  # covers most of the 64 wirings, twice
    for arch in archs:
        g, want = space.to_graph(arch), _plain_nb201(space, arch)
        assert [g.nodes[n]["op"] for n in g] == [want.nodes[n]["op"] for n in want]
        assert list(g.edges(data="port")) == list(want.edges(data="port"))
        assert g.graph["outputs"] == want.graph["outputs"]
        assert g.graph["stage_outputs"] == want.graph["stage_outputs"]
        assert g.graph["block_outputs"] == want.graph["block_outputs"]
        assert totals(g) == totals(want)
    assert 30 < len(space._wirings) <= 64


def test_chained_replays_equal_one_block_per_copy():
    def net(chained: bool) -> nx.DiGraph:
        b = GraphBuilder()
        x = b.input((4, 8, 8))

        def cell(bb, xx):
            return bb.sum(xx, bb.norm(bb.conv(bb.act(xx, "relu"), 4, 3)))

        cache = FragmentCache()
        if chained:
            x = b.chain(cache, "cell", x, cell, 4, mark_blocks=True)
        else:
            for _ in range(4):
                x = b.mark_block(b.block(cache, "cell", (x,), cell))
        b.classifier(x, 3)
        return b.build()

    a, b = net(True), net(False)
    assert [a.nodes[n]["op"] for n in a] == [b.nodes[n]["op"] for n in b]
    assert list(a.edges(data="port")) == list(b.edges(data="port"))
    assert a.graph["block_outputs"] == b.graph["block_outputs"]
    assert len(a.graph["block_outputs"]) == 4
    with pytest.raises(ValueError, match="copies"):
        GraphBuilder().chain(None, "k", 0, lambda bb, xx: xx, 0)


@pytest.mark.parametrize("name", ["nasbench201", "mbconv", "nasbench101", "darts"])
def test_population_analysis_equals_the_per_graph_functions(name):
    space = SPACES[name]()
    rng = np.random.default_rng(5)
    graphs = [space.to_graph(space.sample(rng)) for _ in range(12)]
    graphs[2].number_of_edges()  # one with its adjacency made
    shuffled = nx.relabel_nodes(graphs[3], {n: f"n{n}" for n in graphs[3]})  # string ids
    reversed_ids = nx.DiGraph()  # insertion order not topological
    reversed_ids.add_nodes_from(reversed(list(graphs[4].nodes(data=True))))
    reversed_ids.add_edges_from(graphs[4].edges(data=True))
    n = len(graphs[5])  # ids 0..n-1 in order, but every edge points back
    backward = nx.DiGraph()
    backward.add_nodes_from((i, graphs[5].nodes[n - 1 - i]) for i in range(n))
    backward.add_edges_from((n - 1 - u, n - 1 - v, d) for u, v, d in graphs[5].edges(data=True))
    graphs += [shuffled, reversed_ids, backward]
    rows, peaks = PopulationAnalysis().analyse(graphs)
    want = [[getattr(totals(g), c) for c in TOTALS_COLUMNS] for g in graphs]
    assert rows.tolist() == want
    assert peaks.tolist() == [peak_activation_bytes(g) for g in graphs]
    proxy = AnalyticProxy()
    together = proxy.evaluate_population(graphs)
    for i, g in enumerate(graphs):
        assert proxy.evaluate(g, {}, space) == {m: v[i] for m, v in together.items()}


@pytest.mark.parametrize("space", ["nasbench201", "nasbench101"])  # arch_hash, canonical hash
def test_a_search_builds_each_new_architecture_graph_once(tmp_path, monkeypatch, space):
    import dse

    built: list[str] = []
    cls = type(SPACES[space]())
    plain = cls.to_graph

    def counted(self, arch):
        built.append(self.arch_id(arch))
        return plain(self, arch)

    monkeypatch.setattr(cls, "to_graph", counted)
    cfg = {
        "run": {"name": "once", "seed": 0},
        "space": {"name": space},
        "proxies": {"analytic": {}},
        "objectives": [{"metric": "params", "direction": "min"}, {"metric": "hook_flops"}],
        "search": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 20, "max_evaluations": 200},
    }
    result = dse.run(cfg, output=tmp_path, progress=False)
    assert result.proposals == 200 and len(built) == result.rows  # cached repeats build none
    assert len(set(built)) == len(built)
