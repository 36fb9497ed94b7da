"""Evaluator: metric providers, cheap-first pruning, failures as records, constraints."""

from __future__ import annotations

import math

import dse_test_plugins  # noqa: F401 - registers slow_params and flaky, as a user plugin would
import numpy as np
import pytest

from dse.evaluate import Constraint, Evaluator, Objective
from dse.graph import GraphBuilder
from dse.provider import MetricProvider, PopulationProvider
from dse.proxies.analytic import AnalyticProxy
from dse.registry import PROXIES
from dse.search.problem import SearchProblem
from dse.space import Choice, SearchSpace
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str


class Counting(MetricProvider):
    """An expensive provider that counts its calls."""

    name = "counting"
    metrics = ("expensive",)
    cost = 10.0

    def __init__(self):
        self.calls = 0

    def evaluate(self, graph, arch, space):
        self.calls += 1
        return {"expensive": 1.0}


def test_evaluator_runs_cheap_first_and_prunes_on_violated_constraint():
    space = NasBench201Space()
    counting = Counting()
    ev = Evaluator(
        space,
        [counting, AnalyticProxy()],
        [Objective("expensive", "max")],
        [Constraint("params", max=200_000)],
    )
    assert [p.name for p in ev.providers] == ["analytic", "counting"]
    big = parse_arch_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    small = parse_arch_str(
        "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"
    )
    r_big, r_small = ev.evaluate(big), ev.evaluate(small)
    assert r_big.status == "pruned" and not r_big.feasible and "expensive" not in r_big.metrics
    assert r_big.violations["params"] == pytest.approx(r_big.metrics["params"] - 200_000)
    assert r_small.status == "ok" and r_small.feasible and r_small.metrics["expensive"] == 1.0
    assert counting.calls == 1


def test_failing_provider_is_recorded_not_raised():
    space = NasBench201Space()
    ev = Evaluator(space, [AnalyticProxy(), PROXIES.create("flaky")], [Objective("flaky_score")])
    arch = space.sample(np.random.default_rng(0))
    arch["1<-0"] = "none"  # the first variable's first value: flaky fails
    r = ev.evaluate(arch)
    assert r.status == "failed" and not r.feasible
    assert "flaky: RuntimeError: simulated crash" in r.error
    assert r.metrics["params"] > 0  # what finished before the failure is kept
    arch["1<-0"] = "skip_connect"
    assert ev.evaluate(arch).status == "ok"


def test_unknown_metric_in_objective_names_the_field():
    with pytest.raises(
        ValueError, match=r"objectives\[0\]\.metric: 'accuracy' is not produced.*params"
    ):
        Evaluator(NasBench201Space(), [AnalyticProxy()], [Objective("accuracy", "max")])
    with pytest.raises(ValueError, match=r"constraints\[0\]\.metric"):
        Evaluator(
            NasBench201Space(),
            [AnalyticProxy()],
            [Objective("params")],
            [Constraint("latency", max=1)],
        )


def test_constraint_violation_units():
    c = Constraint("x", max=10, min=2)
    assert c.violation(5) == 0 and c.violation(12) == 2 and c.violation(1) == 1
    assert math.isinf(c.violation(math.nan))
    assert Objective("acc", "max").minimised(0.9) == -0.9
    with pytest.raises(ValueError, match="direction"):
        Objective("acc", "up")


class CountingChain(SearchSpace):
    """A user-style space without a fast hash: a conv chain whose depth and width are decisions."""

    name = "counting_chain"
    variables = (Choice("depth", (1, 2, 3)), Choice("width", (8, 16)))

    def __init__(self):
        self.built = 0

    def to_graph(self, arch):
        self.built += 1
        b = GraphBuilder()
        x = b.input((3, 8, 8))
        for _ in range(arch["depth"]):
            x = b.act(b.conv(x, arch["width"], 3), "relu")
        b.classifier(x, 2)
        return b.build()


def test_default_hash_builds_each_new_graph_once_and_dedups():
    space = CountingChain()
    problem = SearchProblem.in_memory(
        Evaluator(space, [AnalyticProxy()], [Objective("params")]), run_id="r", driver="t"
    )
    X = np.array([[d, w] for d in range(3) for w in range(2)] * 2)  # six architectures, each twice
    F, G = problem.evaluate(X)
    assert space.built == 6  # hashing built the graph; the evaluator reused it
    assert problem.ledger.n_rows == 6 and problem.ledger.n_cached == 6
    assert F.shape == (12, 1) and np.array_equal(F[:6], F[6:]) and not G.any()


class BatchCounter(PopulationProvider):
    """Costs a population at once; raises for the whole population when any graph is 'bad'."""

    name = "pop"
    metrics = ("nodes",)
    cost = 5.0

    def __init__(self):
        self.population_calls = self.single_calls = 0

    def evaluate_population(self, graphs):
        self.population_calls += 1
        if any(g.graph.get("bad") for g in graphs):
            raise RuntimeError("one bad graph spoils the batch")
        return {"nodes": np.array([g.number_of_nodes() for g in graphs], dtype=float)}

    def evaluate(self, graph, arch, space):
        self.single_calls += 1
        if graph.graph.get("bad"):
            raise RuntimeError("bad graph")
        return {"nodes": float(graph.number_of_nodes())}


def test_batch_uses_evaluate_population_and_isolates_a_failing_candidate():
    space = NasBench201Space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    pop = BatchCounter()
    ev = Evaluator(
        space, [AnalyticProxy(), pop], [Objective("nodes")], [Constraint("params", max=1e9)]
    )
    results = ev.evaluate_batch(archs)
    assert pop.population_calls == 1 and pop.single_calls == 0
    assert [r.metrics["nodes"] for r in results] == [ev.evaluate(a).metrics["nodes"] for a in archs]
    assert all(r.status == "ok" and r.provider_s["pop"] > 0 for r in results)
    graphs = [space.to_graph(a) for a in archs]
    graphs[2].graph["bad"] = True
    results = ev.evaluate_batch(archs, graphs)
    assert [r.status for r in results] == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert "pop: RuntimeError: bad graph" in results[2].error and results[2].metrics["params"] > 0


def test_search_batches_reach_population_providers(tmp_path):
    import dse
    from dse.results import load

    cfg = {
        "run": {"name": "fpga-batch", "seed": 0},
        "space": {"name": "mbconv", "target": "fpga", "num_blocks": 6, "resolution": 64},
        "simulators": {"fpga": {"board": "ZC706", "architecture": "recursive"}},
        "objectives": [{"metric": "fpga_latency_ms"}, {"metric": "fpga_dsp"}],
        "search": {"driver": "random", "batch_size": 16, "max_evaluations": 32},
    }
    df = load(dse.run(cfg, output=tmp_path, progress=False).path)
    import json

    from dse.registry import SIMULATORS
    from dse.spaces.mbconv import MBConvChainSpace

    space = MBConvChainSpace(target="fpga", num_blocks=6, resolution=64)
    sim = SIMULATORS.create("fpga", board="ZC706", architecture="recursive")
    for arch, latency in zip(df.arch, df.fpga_latency_ms):  # batch results equal one-by-one results
        assert sim.evaluate(space.to_graph(json.loads(arch)), {}, space)[
            "fpga_latency_ms"
        ] == pytest.approx(latency)
