"""JSON round trip of architecture graphs.

The JSON holds only the defining attributes of each op; shapes and costs are re-inferred on
load, so a file edited by hand (or written by another tool) is checked, not trusted.
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

from dse.graph.analysis import infer_shapes, validate
from dse.graph.ops import GraphError, OpNode, make_op

FORMAT = "dse.graph/1"


def to_dict(g: nx.DiGraph) -> dict:
    """Plain-data form of a graph (JSON-serialisable)."""
    nodes = []
    for n, data in g.nodes(data=True):
        entry = {"id": n, **data["op"].spec()}
        if data.get("name"):
            entry["name"] = data["name"]
        nodes.append(entry)
    edges = [[u, v, d.get("port", 0)] for u, v, d in g.edges(data=True)]
    graph = {k: v for k, v in g.graph.items() if k != "meta"}
    return {
        "format": FORMAT,
        "graph": graph,
        "meta": g.graph.get("meta", {}),
        "nodes": nodes,
        "edges": edges,
    }


def to_json(g: nx.DiGraph, **kw) -> str:
    return json.dumps(to_dict(g), **kw)


def from_dict(data: dict) -> nx.DiGraph:
    """Rebuild a graph from :func:`to_dict` output; shapes and costs are re-inferred."""
    if data.get("format") != FORMAT:
        raise GraphError(f"format: expected {FORMAT!r}, got {data.get('format')!r}")
    g = nx.DiGraph()
    for entry in data["nodes"]:
        entry = dict(entry)
        node_id = entry.pop("id")
        name = entry.pop("name", None)
        kind = entry.pop("kind")
        attrs: dict[str, Any] = {k: _frozen(v) for k, v in entry.items()}
        # Placeholder op; its real shapes are inferred once all edges exist.
        placeholder = OpNode(kind, (), **attrs) if kind != "input" else make_op(kind, (), **attrs)
        g.add_node(node_id, op=placeholder, **({"name": name} if name else {}))
    for u, v, port in data["edges"]:
        if u not in g or v not in g:
            raise GraphError(f"edge {u!r} -> {v!r} names a node that does not exist")
        g.add_edge(u, v, port=port)
    g.graph.update(data.get("graph", {}))
    g.graph["meta"] = data.get("meta", {})
    infer_shapes(g)
    validate(g)
    return g


def _frozen(v: Any) -> Any:
    """JSON lists back to the (nested) tuples an OpNode holds."""
    return tuple(_frozen(x) for x in v) if isinstance(v, list) else v


def from_json(text: str) -> nx.DiGraph:
    return from_dict(json.loads(text))
