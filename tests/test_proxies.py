"""Zero-cost proxies: torch networks from the graph IR, the input batch, every measure, NASLib
reference values, and the proxy report card (small batches so the suite stays fast)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import reference_data

from dse.graph import totals
from dse.proxies.report_card import evaluate_proxies, top_retrieval
from dse.proxies.zero_cost import MEASURES, context_for, score
from dse.registry import PROXIES
from dse.spaces.mbconv import MBConvChainSpace
from dse.spaces.nasbench201 import NasBench201Space, parse_arch_str
from dse.spaces.zoo import build
from dse.training.data import image_batch
from dse.training.network import build_network

CELL = (
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|"
    "+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: NasBench201Space().to_graph(parse_arch_str(CELL)),
        lambda: NasBench201Space("imagenet16_120").to_graph(parse_arch_str(CELL)),
        lambda: (lambda s: s.to_graph(s.sample(np.random.default_rng(0))))(
            MBConvChainSpace(num_blocks=6, resolution=64)
        ),
        lambda: build("mobilenet_v2", resolution=64),
    ],
)
def test_network_matches_the_graph(make):
    g = make()
    net, again = build_network(g, seed=0), build_network(g, seed=0)
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values())
    )
    assert sum(p.numel() for p in net.parameters()) == totals(g).params
    shape = g.nodes[g.graph["inputs"][0]]["op"].out_shape
    out, stages = net(torch.randn(2, *shape), stages=True)
    assert tuple(out.shape[1:]) == g.nodes[g.graph["outputs"][0]]["op"].out_shape
    assert [tuple(s.shape[1:]) for s in stages] == [
        g.nodes[n]["op"].out_shape for n in g.graph["stage_outputs"]
    ]


def test_image_batch_is_real_deterministic_and_normalised():
    a, b = image_batch(8, (3, 32, 32), seed=1), image_batch(8, (3, 32, 32), seed=1)
    assert torch.equal(a, b) and a.shape == (8, 3, 32, 32)
    assert not torch.equal(a, image_batch(8, (3, 32, 32), seed=2))
    assert torch.allclose(a.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert image_batch(4, (3, 16, 16)).shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="data: 'web' is not allowed"):
        image_batch(4, (3, 8, 8), source="web")


def test_synflow_and_params_reproduce_naslib_values():
    """NASLib's synflow (log scale) and parameter counts for the first cells of the reference table;
    tolerance 0.5% for synflow (independent random initialisation), exact for params."""
    df = pd.read_csv(reference_data("nasbench201_naslib.csv")).head(4)
    space = NasBench201Space()
    for arch, ref, params in zip(df.arch_str, df.naslib_synflow_cifar10, df.naslib_params_cifar10):
        g = space.to_graph(parse_arch_str(arch))
        assert score("synflow", g, context_for(g, 2, 0, "images")) == pytest.approx(ref, rel=5e-3)
        assert totals(g).params / 1e6 == pytest.approx(params, abs=1e-9)


def test_every_measure_scores_cells_and_separates_empty_from_convolutional():
    space = NasBench201Space(channels=4, cells_per_stage=1)  # a small skeleton keeps the test fast
    conv = space.to_graph(
        parse_arch_str(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        )
    )
    light = space.to_graph(parse_arch_str(CELL))
    ctx = context_for(conv, 8, 0, "images")
    scores = {name: (score(name, conv, ctx), score(name, light, ctx)) for name in MEASURES.names()}
    assert all(np.isfinite(a) and np.isfinite(b) for a, b in scores.values()), scores
    assert score("snip", conv, ctx) == scores["snip"][0]  # deterministic
    for name in ("synflow", "snip", "grad_norm", "l2_norm", "nwot"):
        assert scores[name][0] > scores[name][1], name  # more capacity scores higher
    p = PROXIES.create("synflow", batch_size=4)
    assert set(p.evaluate(light, {}, space)) == {"synflow"}
    with pytest.raises(ValueError, match="batch_size: must be >= 2"):
        PROXIES.create("nwot", batch_size=1)


def test_top_retrieval_and_report_card():
    truth = np.arange(20.0)
    assert top_retrieval(truth, truth) == 1.0 and top_retrieval(-truth, truth) == 0.0
    df = pd.read_csv(reference_data("nasbench201_naslib.csv")).sample(n=8, random_state=0)
    small = NasBench201Space(channels=4, cells_per_stage=1)  # a small skeleton keeps the test fast
    card = evaluate_proxies(
        small,
        [parse_arch_str(a) for a in df.arch_str],
        df.val_acc_cifar10,
        ["params", "synflow", "nwot", "ensemble"],
        batch_size=4,
    )
    assert list(card.summary.proxy) == ["params", "synflow", "nwot", "ensemble"]
    assert card.summary.spearman.between(-1, 1).all() and (card.summary.n == 8).all()
    assert (card.scores["synflow_s"] > 0).all()
    with pytest.raises(ValueError, match=r"proxies: \['magic'\] not allowed"):
        evaluate_proxies(NasBench201Space(), [], [], ["magic"])


@pytest.mark.slow
def test_proxy_eval_command_writes_the_card(tmp_path, subprocess_env):
    out = tmp_path / "card"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "proxy-eval",
            "--truth",
            str(reference_data("nasbench201_naslib.csv")),
            "--limit",
            "4",
            "--batch-size",
            "4",
            "--proxies",
            "params",
            "synflow",
            "jacob_cov",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "spearman" in r.stdout and "jacob_cov" in r.stdout
    card = pd.read_parquet(out / "report_card.parquet")
    assert (
        set(card.proxy) == {"params", "synflow", "jacob_cov"}
        and len(pd.read_parquet(out / "scores.parquet")) == 4
    )


@pytest.mark.slow
def test_proxy_eval_scores_several_targets_checkpoints_and_resumes_on_dask(
    tmp_path, subprocess_env
):
    base = [
        sys.executable,
        "-m",
        "dse.cli",
        "proxy-eval",
        "--truth",
        str(reference_data("nasbench201_naslib.csv")),
        "--limit",
        "9",
        "--proxies",
        "params",
        "flops",
        "--chunk-size",
        "3",
        "--out",
        str(tmp_path),
        "--target",
        "val_acc_cifar10",
        "val_acc_imagenet16_120",
    ]
    r = subprocess.run(base, capture_output=True, text=True, env=subprocess_env, timeout=600)
    assert r.returncode == 0, r.stderr
    card = pd.read_parquet(tmp_path / "report_card.parquet")
    assert set(zip(card.proxy, card.target)) == {
        (p, t) for p in ("params", "flops") for t in ("val_acc_cifar10", "val_acc_imagenet16_120")
    }
    full = pd.read_parquet(tmp_path / "scores.parquet")
    df = pd.read_csv(reference_data("nasbench201_naslib.csv")).set_index("arch_str")
    assert list(full.val_acc_imagenet16_120) == list(df.loc[full.arch_id, "val_acc_imagenet16_120"])
    # a run that died after one chunk: only the missing six are scored, on a two-worker LocalCluster
    checkpoint = tmp_path / "scored.parquet"
    pd.read_parquet(checkpoint).iloc[:3].to_parquet(checkpoint, index=False)
    r = subprocess.run(
        base + ["--resume", "--workers", "2"],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "3 of 9 architectures already scored" in r.stdout
    resumed = pd.read_parquet(tmp_path / "scores.parquet")
    pd.testing.assert_frame_equal(
        resumed.drop(columns=["params_s", "flops_s"]), full.drop(columns=["params_s", "flops_s"])
    )
    r = subprocess.run(
        base[:-3] + ["--seed", "1", "--resume"],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=600,
    )
    assert r.returncode != 0 and "scored with other settings (archs, seed)" in r.stderr


def test_tabular_proxy_looks_up_listed_cells_and_fails_unlisted_ones():
    from dse.evaluate import Evaluator, Objective

    csv = reference_data("nasbench201_naslib.csv")
    table = pd.read_csv(csv)
    space = NasBench201Space()
    ev = Evaluator(
        space,
        [PROXIES.create("tabular", file=str(csv), column="val_acc_cifar10")],
        [Objective("accuracy", "max")],
    )
    listed = [parse_arch_str(a) for a in table.arch_str[:5]]
    for arch, acc in zip(listed, table.val_acc_cifar10[:5]):
        r = ev.evaluate(arch)
        assert r.status == "ok" and r.metrics["accuracy"] == pytest.approx(acc)
    rng = np.random.default_rng(0)
    unlisted = next(
        a
        for a in (space.sample(rng) for _ in range(100))
        if space.arch_id(a) not in set(table.arch_str)
    )
    r = ev.evaluate(unlisted)
    assert r.status == "failed" and "is not in" in r.error
    with pytest.raises(ValueError, match="column/key: \\['acc'\\] not in"):
        PROXIES.create("tabular", file=str(csv), column="acc")


@pytest.mark.slow
def test_proxy_eval_reads_nasbench101_tables(tmp_path, subprocess_env):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "proxy-eval",
            "--space",
            "nasbench101",
            "--truth",
            str(reference_data("nasbench101_naslib.csv")),
            "--arch-column",
            "adjacency_7x7",
            "--ops-column",
            "ops",
            "--proxies",
            "params",
            "flops",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    card = pd.read_parquet(tmp_path / "report_card.parquet").set_index("proxy")
    df = pd.read_csv(reference_data("nasbench101_naslib.csv"))
    naslib = df.naslib_params_cifar10.corr(df.val_acc_cifar10, method="spearman")
    assert card.loc["params", "n"] == 250
    assert card.loc["params", "spearman"] == pytest.approx(
        naslib, abs=0.01
    )  # params equal NASLib's exactly


def test_a_new_op_kind_runs_in_torch_through_its_registered_lowering():
    """An op kind registered with its shape, cost and torch lowering builds into networks with
    nothing else changed; a kind without a lowering is one error naming it."""
    from dse.graph import GraphBuilder, OpCost, register_op_kind
    from dse.graph.lowering import TORCH_LOWERINGS, register_torch_lowering
    from dse.graph.ops import OP_KINDS

    def same(node):
        return node.in_shapes[0]

    register_op_kind("twice", same, lambda n, out: OpCost(ops=int(np.prod(out))))
    register_op_kind("thrice", same, lambda n, out: OpCost(ops=int(np.prod(out))))
    try:
        register_torch_lowering("twice", inline=lambda op, xs: 2 * xs[0])
        b = GraphBuilder()
        x = b.input((3, 4, 4))
        b.add("twice", [b.conv(x, 3, 3)])
        net = build_network(b.build(), seed=0)
        inp = torch.randn(2, 3, 4, 4)
        conv = next(iter(net.layers.values()))
        assert torch.allclose(net(inp), 2 * conv(inp))
        b = GraphBuilder()
        b.add("thrice", [b.input((3, 4, 4))])
        with pytest.raises(ValueError, match="no torch lowering for op kind 'thrice'"):
            build_network(b.build())
    finally:
        for kind in ("twice", "thrice"):
            OP_KINDS.remove(kind)
            TORCH_LOWERINGS.remove(kind)
