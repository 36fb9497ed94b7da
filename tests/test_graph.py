"""Graph IR: shapes, costs, validation, canonical hash, JSON round trip."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest

from dse.graph import (
    GraphBuilder,
    GraphError,
    canonical_hash,
    from_json,
    infer_shapes,
    make_op,
    peak_activation_bytes,
    to_json,
    totals,
    validate,
)
from dse.graph.builder import FragmentCache


def small_net(kernel: int = 3, bits: int = 32) -> nx.DiGraph:
    b = GraphBuilder("small", weight_bits=bits, act_bits=bits)
    x = b.input((3, 32, 32))
    y = b.conv(x, 16, kernel, 2)
    y = b.norm(y)
    y = b.act(y, "relu")
    z = b.dwconv(y, 3)
    y = b.sum(y, z)
    b.classifier(y, 10)
    return b.build()


def test_conv_shapes_and_costs_by_hand():
    op = make_op("conv2d", [(3, 32, 32)], channels=16, kernel=3, stride=2)
    assert op.out_shape == (16, 16, 16)
    assert op.macs == 16 * 16 * 16 * 3 * 3 * 3  # outputs x (k*k*Cin)
    assert op.params == 16 * 3 * 3 * 3
    assert op.flops == 2 * op.macs
    # bytes at 8-bit weights, 16-bit activations
    op8 = make_op(
        "conv2d", [(3, 32, 32)], channels=16, kernel=3, stride=2, weight_bits=8, act_bits=16
    )
    assert op8.bytes_read == 3 * 32 * 32 * 2 + 432
    assert op8.bytes_written == 16 * 16 * 16 * 2


def test_depthwise_grouped_linear_matmul_pool_costs():
    dw = make_op("dwconv2d", [(32, 14, 14)], kernel=5)
    assert dw.out_shape == (32, 14, 14) and dw.macs == 32 * 14 * 14 * 25 and dw.params == 32 * 25
    g = make_op("conv2d", [(32, 8, 8)], channels=64, kernel=1, groups=4)
    assert g.params == 64 * 8 and g.macs == 64 * 64 * 8
    fc = make_op("linear", [(128, 512)], channels=1000, bias=True)
    assert (
        fc.out_shape == (128, 1000)
        and fc.macs == 128 * 512 * 1000
        and fc.params == 512 * 1000 + 1000
    )
    qk = make_op("matmul", [(8, 128, 64), (8, 128, 64)], transpose_b=True)  # Q K^T per head
    assert qk.out_shape == (8, 128, 128) and qk.macs == 8 * 128 * 128 * 64
    pool = make_op("pool", [(16, 32, 32)], mode="avg", kernel=3, stride=1)
    assert pool.out_shape == (16, 32, 32) and pool.ops == 16 * 32 * 32 * 9
    emb = make_op("embedding", [(128,)], vocab=32000, channels=4096)
    assert emb.out_shape == (128, 4096) and emb.params == 32000 * 4096


@pytest.mark.parametrize(
    "kind, shapes, attrs, message",
    [
        ("conv2d", [(3, 8, 8)], {"channels": 4, "groups": 2}, "divisible by groups"),
        ("add", [(4, 8, 8), (4, 4, 4)], {}, "equal shapes"),
        ("matmul", [(4, 5), (6, 7)], {}, "inner dimensions"),
        ("pool", [(4, 8, 8)], {"mode": "median"}, "pool mode must be one of"),
        ("activation", [(4,)], {"mode": "relu7"}, "activation mode must be one of"),
        ("conv2d", [(3, 8, 8), (3, 8, 8)], {"channels": 4}, "takes 1 inputs"),
        ("warp", [(3, 8, 8)], {}, "unknown op kind"),
        ("conv2d", [(3, 8, 8)], {"channels": 4, "dilation_rate": 2}, "unknown op attribute"),
    ],
)
def test_bad_ops_name_the_problem(kind, shapes, attrs, message):
    with pytest.raises(GraphError, match=message):
        make_op(kind, shapes, **attrs)


def test_validate_catches_cycles_dangling_nodes_and_shape_mismatch():
    g = small_net()
    validate(g)
    cyc = g.copy()
    cyc.add_edge(max(cyc.nodes), 1, port=1)
    with pytest.raises(GraphError, match="cycle"):
        validate(cyc)
    dangling = g.copy()
    dangling.add_node(999, op=make_op("activation", [(16, 16, 16)], mode="relu"))
    with pytest.raises(GraphError, match="dangling node 999.*no inputs"):
        validate(dangling)
    unused = g.copy()
    unused.add_node(998, op=make_op("activation", [(16, 16, 16)], mode="relu"))
    unused.add_edge(2, 998, port=0)
    with pytest.raises(GraphError, match="dangling node 998.*never used"):
        validate(unused)
    mismatch = g.copy()
    conv = next(n for n, d in mismatch.nodes(data=True) if d["op"].kind == "conv2d")
    mismatch.nodes[conv]["op"] = make_op("conv2d", [(3, 32, 32)], channels=8, kernel=3, stride=2)
    with pytest.raises(GraphError, match="shape mismatch"):
        validate(mismatch)


def test_infer_shapes_propagates_an_edit_downstream():
    g = small_net()
    conv = next(n for n, d in g.nodes(data=True) if d["op"].kind == "conv2d")
    g.nodes[conv]["op"] = make_op("conv2d", [(3, 32, 32)], channels=24, kernel=3, stride=1)
    infer_shapes(g)
    validate(g)
    fc = next(n for n, d in g.nodes(data=True) if d["op"].kind == "linear")
    assert g.nodes[fc]["op"].in_shapes == ((24,),)
    assert g.nodes[fc]["op"].params == 24 * 10 + 10


def test_canonical_hash_ignores_node_ids_and_order_but_not_structure():
    g = small_net()
    h = canonical_hash(g)
    ids = list(g.nodes)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    relabelled = nx.relabel_nodes(g, {a: f"n{b}" for a, b in zip(ids, shuffled)})
    reordered = nx.DiGraph()
    reordered.add_nodes_from(sorted(relabelled.nodes(data=True), key=lambda t: t[0], reverse=True))
    reordered.add_edges_from(relabelled.edges(data=True))
    assert canonical_hash(relabelled) == h
    assert canonical_hash(reordered) == h
    assert canonical_hash(small_net(kernel=5)) != h
    assert canonical_hash(small_net(bits=8)) != h


def test_canonical_hash_commutative_vs_ordered_inputs():
    def two_branch(kind: str, swap: bool) -> nx.DiGraph:
        b = GraphBuilder()
        x = b.input((8, 4, 4))
        a = b.conv(x, 8, 1)
        c = b.pool(x, "max", 3)
        b.add(kind, (c, a) if swap else (a, c))
        return b.build()

    assert canonical_hash(two_branch("add", False)) == canonical_hash(two_branch("add", True))
    assert canonical_hash(two_branch("concat", False)) != canonical_hash(two_branch("concat", True))


def test_json_round_trip_preserves_everything():
    g = small_net(bits=8)
    g2 = from_json(to_json(g))
    assert canonical_hash(g2) == canonical_hash(g)
    assert totals(g2) == totals(g)
    assert g2.graph["outputs"] == g.graph["outputs"]
    assert {n: d["op"] for n, d in g2.nodes(data=True)} == {
        n: d["op"] for n, d in g.nodes(data=True)
    }


def test_json_with_inconsistent_shapes_is_rejected():
    import json

    data = json.loads(to_json(small_net()))
    for node in data["nodes"]:
        if node["kind"] == "linear":
            node["channels"] = 0
    with pytest.raises(GraphError, match="linear needs channels"):
        from_json(json.dumps(data))


def test_totals_and_hook_flops_convention():
    g = small_net()
    t = totals(g)
    ops = [d["op"] for _, d in g.nodes(data=True)]
    assert t.macs == sum(o.macs for o in ops)
    assert t.params == sum(o.params for o in ops)
    assert t.flops == 2 * t.macs + sum(o.ops for o in ops)
    adds = sum(o.ops for o in ops if o.kind == "add")
    assert adds > 0
    assert t.hook_flops == t.macs + sum(o.ops for o in ops) - adds  # functional adds not counted


def test_peak_activation_bytes_of_a_chain_and_a_branch():
    b = GraphBuilder(act_bits=8)
    x = b.input((1, 10, 10))  # 100 B
    y = b.act(x, "relu")  # 100 B, x freed after
    b.act(y, "relu")
    assert peak_activation_bytes(b.build()) == 200
    b = GraphBuilder(act_bits=8)
    x = b.input((1, 10, 10))
    y1 = b.act(x, "relu")
    y2 = b.act(x, "relu")  # x, y1, y2 alive together
    b.sum(y1, y2)
    assert peak_activation_bytes(b.build()) == 300


def test_fragment_replay_builds_the_same_graph():
    def net(cache):
        b = GraphBuilder()
        x = b.input((4, 8, 8))
        for _ in range(3):
            x = b.block(
                cache, "res", (x,), lambda bb, xx: bb.sum(xx, bb.act(bb.conv(xx, 4, 3), "relu"))
            )
        b.classifier(x, 2)
        return b.build()

    plain, replayed = net(None), net(FragmentCache())
    assert canonical_hash(plain) == canonical_hash(replayed)
    assert sorted(plain.edges(data="port")) == sorted(replayed.edges(data="port"))
    validate(replayed)


def test_fast_build_matches_networkx_api_graph():
    g = small_net()
    slow = nx.DiGraph()
    slow.add_nodes_from(g.nodes(data=True))
    slow.add_edges_from(g.edges(data=True))
    slow.graph.update(g.graph)
    assert nx.utils.graphs_equal(g, slow)
    assert list(g.predecessors(max(g.nodes))) == list(slow.predecessors(max(g.nodes)))
    g.add_edge(0, max(g.nodes), port=1)  # the built graph stays an ordinary mutable DiGraph
    assert g.has_edge(0, max(g.nodes)) and 0 in g.pred[max(g.nodes)]


def _peak_by_brute_force(g: nx.DiGraph) -> int:
    order = list(nx.topological_sort(g))
    pos = {n: i for i, n in enumerate(order)}
    size = {
        n: (
            g.nodes[n]["op"].out_shape
            and (int(np.prod(g.nodes[n]["op"].out_shape)) * g.nodes[n]["op"].act_bits + 7) // 8
        )
        for n in order
    }
    last = {n: max([pos[s] for s in g.successors(n)], default=pos[n]) for n in order}
    return max(sum(size[n] for n in order[: i + 1] if last[n] >= i) for i in range(len(order)))


@pytest.mark.parametrize("name", ["resnet18", "mnasnet_a1", "vgg16"])
def test_peak_activation_matches_brute_force_in_any_node_order(name):
    from dse.spaces.zoo import build

    g = build(name, resolution=64)
    expected = _peak_by_brute_force(g)
    assert peak_activation_bytes(g) == expected
    ids = list(g.nodes)
    random.Random(1).shuffle(ids)
    shuffled = nx.DiGraph()
    shuffled.add_nodes_from(
        (f"n{i}", g.nodes[i]) for i in ids
    )  # insertion order no longer topological
    shuffled.add_edges_from((f"n{u}", f"n{v}", d) for u, v, d in g.edges(data=True))
    assert peak_activation_bytes(shuffled) == expected


def test_block_reading_a_non_input_node_is_built_but_not_recorded():
    cache = FragmentCache()
    b = GraphBuilder()
    x = b.input((4, 8, 8))
    other = b.act(x, "relu")
    y = b.block(cache, "leaky", (x,), lambda bb, xx: bb.sum(xx, other))  # reads `other`
    assert len(cache) == 0 and set(b.build().predecessors(y)) == {x, other}
    z = b.block(
        cache, "named", (y,), lambda bb, yy: bb.mark_stage(bb.act(yy, "relu", name="kept?"))
    )
    g = b.build()
    assert len(cache) == 1 and "name" not in g.nodes[z] and g.graph["stage_outputs"] == []


def test_pickled_ops_are_reinterned_where_they_land():
    """Graphs travel to Dask workers by pickle: an op must come back as the local interned op
    (same uid as make_op gives there), never carrying a uid that names a different local op."""
    import pickle
    import subprocess
    import sys

    from dse.graph.ops import make_op

    op = make_op("conv2d", [(16, 8, 8)], channels=32, kernel=3, weight_bits=8)
    assert op.uid > 0 and pickle.loads(pickle.dumps(op)) is op
    blob = pickle.dumps(op).hex()
    code = (
        "import pickle; from dse.graph.ops import make_op; "
        "other = make_op('pool', [(4, 8, 8)], mode='avg', kernel=3); "
        f"op = pickle.loads(bytes.fromhex('{blob}')); "
        "same = make_op('conv2d', [(16, 8, 8)], channels=32, kernel=3, weight_bits=8); "
        "print(op is same, op.uid != other.uid, op.params)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", str(op.params)]
