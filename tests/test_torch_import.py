"""dse.graph.from_torch: a PyTorch network into the IR (the door for a user's own model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dse.graph import GraphError, from_torch, totals
from dse.registry import SIMULATORS, SPACES
from dse.training.network import build_network, graph_io


class SmallCnn(nn.Module):
    """A user's network, written in plain PyTorch: conv-bn-relu, a depthwise block with a
    residual, pooling, a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.pw = nn.Conv2d(16, 32, 1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + torch.nn.functional.relu6(self.dw(x))
        x = self.pool(self.pw(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_a_plain_pytorch_network_imports_with_its_own_parameter_count():
    net = SmallCnn()
    g = from_torch(net, (torch.randn(2, 3, 16, 16),))
    t = totals(g)
    assert t.params == sum(p.numel() for p in net.parameters())
    kinds = [d["op"].kind for _, d in g.nodes(data=True)]
    assert kinds.count("conv2d") == 2 and kinds.count("dwconv2d") == 1
    assert {"norm", "activation", "pool", "linear", "add", "reshape"} <= set(kinds)
    # MACs: 3x3x3->16 at 16x16, depthwise 3x3 at 16x16, 1x1 16->32 at 16x16, fc 32->10
    assert t.macs == 27 * 16 * 256 + 9 * 16 * 256 + 16 * 32 * 256 + 32 * 10
    assert SIMULATORS.create("gpu").evaluate_population([g])["gpu_latency_ms"][0] > 0


class Unmapped(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1) + torch.erf(x)


def test_an_unmapped_op_is_one_error_naming_every_op_and_its_source_line():
    with pytest.raises(GraphError) as err:
        from_torch(Unmapped(), (torch.randn(2, 4),))
    text = str(err.value)
    assert "cumsum" in text and "erf" in text and "test_torch_import.py" in text
    assert "unknown='elementwise'" in text


def test_unknown_elementwise_costs_unmapped_ops_and_warns():
    with pytest.warns(UserWarning) as caught:
        g = from_torch(Unmapped(), (torch.randn(2, 4),), unknown="elementwise")
    messages = " ".join(str(w.message) for w in caught)
    assert "costed as elementwise: cumsum" in messages and "erf" in messages
    modes = [d["op"].mode for _, d in g.nodes(data=True) if d["op"].kind == "activation"]
    assert modes.count("elementwise") == 2


def _round_trip(g):
    net = build_network(g, seed=0)
    inputs, _ = graph_io(g)
    xs = [torch.randn(2, *g.nodes[n]["op"].out_shape) for n in inputs]
    return from_torch(net, xs)


@pytest.mark.slow
def test_every_zoo_network_and_sampled_cells_round_trip_through_torch():
    """IR -> build_network -> from_torch: the same params and MACs (exactly) and the same GPU
    and FPGA latency (1e-9 relative) as the original graph."""
    gpu = SIMULATORS.create("gpu", device="A100-80GB-PCIe")
    fpga = SIMULATORS.create("fpga", board="ZCU102")
    zoo = SPACES.create("zoo")
    (variable,) = zoo.variables
    graphs = {f"zoo:{v}": zoo.to_graph({variable.name: v}) for v in variable.choices}
    rng = np.random.default_rng(0)
    for name in ("nasbench201", "nasbench101", "darts"):
        space = SPACES.create(name)
        for i in range(3):
            graphs[f"{name}:{i}"] = space.to_graph(space.sample(rng))
    for label, g in graphs.items():
        h = _round_trip(g)
        a, b = totals(g), totals(h)
        assert (a.params, a.macs) == (b.params, b.macs), label
        for sim, metric in ((gpu, "gpu_latency_ms"), (fpga, "fpga_latency_ms")):
            want, got = (sim.evaluate_population([x])[metric][0] for x in (g, h))
            assert got == pytest.approx(want, rel=1e-9), (label, metric)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with a residual, batch first throughout."""

    def __init__(self, d: int = 64, heads: int = 4):
        super().__init__()
        self.heads, self.norm = heads, nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, length, d = x.shape
        y = self.norm(x)
        q, k, v = (
            f(y).reshape(b, length, self.heads, d // self.heads).transpose(1, 2)
            for f in (self.q, self.k, self.v)
        )
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.o(a.transpose(1, 2).reshape(b, length, d))


class TinyLm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 64)
        self.blocks = nn.Sequential(SelfAttention(), SelfAttention())
        self.head = nn.Linear(64, 100)

    def forward(self, tokens):
        return self.head(self.blocks(self.embed(tokens)))


def test_an_attention_stack_imports_with_its_params_and_attention_products():
    """Linear layers, layer norms, embeddings and scaled_dot_product_attention (its q k^T and
    p v products counted, which fvcore leaves out): 16 tokens, 4 heads of 16."""
    net = TinyLm()
    t = totals(from_torch(net, (torch.randint(0, 100, (2, 16)),)))
    assert t.params == sum(p.numel() for p in net.parameters())
    linears = 4 * 16 * 64 * 64
    products = 2 * 4 * 16 * 16 * 16
    assert t.macs == 2 * (linears + products) + 16 * 64 * 100


def test_a_permute_of_the_batch_dimension_is_refused_by_name():
    class Mixer(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2) * 2.0

    with pytest.raises(GraphError, match="permute.default at .* moves the batch dimension"):
        from_torch(Mixer(), (torch.randn(2, 3, 4),))
