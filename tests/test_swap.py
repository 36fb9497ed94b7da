"""SWAP-Score: the packed count equals a plain count of distinct sign patterns."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from dse.proxies.zero_cost import context_for, score, swap  # noqa: E402
from dse.spaces.nasbench201 import NasBench201Space  # noqa: E402
from dse.training.network import build_network  # noqa: E402

CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


def _plain_swap(net, inputs) -> tuple[int, int]:
    """(distinct columns, columns) of the (samples x neurons) sign matrix of the ReLU inputs."""
    feats = []
    hooks = [
        m.register_forward_hook(lambda _m, i, _o: feats.append(torch.sign(i[0].flatten(1))))
        for m in net.modules()
        if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        net(inputs)
    for h in hooks:
        h.remove()
    signs = torch.cat(feats, 1)
    return torch.unique(signs.T, dim=0).shape[0], signs.shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [8, 70])  # one and two 64-sample code words
def test_swap_counts_distinct_sample_wise_patterns(batch):
    space = NasBench201Space()
    graph = space.to_graph(space.parse(CELL))
    ctx = context_for(graph, batch, seed=0, data="synthetic")
    torch.manual_seed(0)
    net = build_network(graph, seed=0)
    value = swap(net, ctx)
    distinct, neurons = _plain_swap(net, ctx.inputs)
    assert value == distinct
    assert 1 < value < neurons  # many neurons share a pattern; some do not
    assert score("swap", graph, ctx) == score("swap", graph, ctx)  # seeded, deterministic
