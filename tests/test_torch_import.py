"""dse.graph.from_torch: a PyTorch network into the IR (the door for a user's own model)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import reference_networks
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


def _reference_networks():
    from conftest import example_module

    return example_module("torch_networks")


@pytest.mark.parametrize(
    "name", reference_networks(("resnet18", "mobilenet_v3_large", "efficientnet_b0"))
)
@pytest.mark.slow
def test_reference_networks_match_their_own_tensors_fvcore_and_the_published_counts(name):
    """The peer check: parameters equal the module's own ``sum(p.numel())`` exactly; MACs equal
    fvcore's convolution, linear and matmul count plus the attention products within 1%; both
    within 2% of the original's published figures (examples/torch_networks.py)."""
    pytest.importorskip("fvcore.nn")
    networks = _reference_networks()
    published = networks.PUBLISHED[name]
    net = getattr(networks, name)().eval()
    x = torch.randn(1, *published.input_shape)
    t = totals(from_torch(net, (x,)))
    assert t.params == sum(p.numel() for p in net.parameters())
    assert t.macs == pytest.approx(networks.fvcore_macs(name, net, x), rel=0.01)
    assert t.params == pytest.approx(published.params, rel=0.02)
    if published.macs is not None:
        assert t.macs == pytest.approx(published.macs, rel=0.02)


class Shared(nn.Module):
    """A language model whose output layer reads the embedding's weights (tied, as GPT-2's)."""

    def __init__(self):
        super().__init__()
        self.embed, self.norm = nn.Embedding(100, 32), nn.LayerNorm(32)
        self.head = nn.Linear(32, 100, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(self.norm(self.embed(tokens)))


def test_tied_weights_are_counted_once_and_still_read():
    net = Shared()
    g = from_torch(net, (torch.randint(0, 100, (1, 8)),))
    assert totals(g).params == sum(p.numel() for p in net.parameters()) == 100 * 32 + 64
    (head,) = [g.nodes[n]["op"] for n in g if g.nodes[n]["op"].kind == "linear"]
    assert head.params == 0 and head.option("tied")
    assert head.bytes_read == 4 * (8 * 32 + 100 * 32)  # its input and the tied weights (read once)


class Pieces(nn.Module):
    """A dilated convolution, a group norm, chunk/split/unbind pieces, a class token and a
    learned position table read directly, x[:, 0] and a scale."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.norm = nn.GroupNorm(2, 8)
        self.cls = nn.Parameter(torch.zeros(1, 1, 2))
        self.pos = nn.Parameter(torch.zeros(1, 65, 2))

    def forward(self, x):
        a, b = self.norm(self.conv(x)).chunk(2, dim=1)  # 2 x (4, 8, 8)
        tokens = (a * b).flatten(2).transpose(1, 2)  # (64, 4)
        p, q = tokens.split(2, dim=2)  # 2 x (64, 2)
        y = torch.cat([self.cls.expand(x.shape[0], -1, -1), p + q], dim=1) + self.pos
        return y[:, 0] * 0.5, y.unbind(dim=2)[1]  # (2,), (65,)


def test_dilation_group_norm_pieces_and_learned_tensors_import_with_their_costs():
    net = Pieces()
    g = from_torch(net, (torch.randn(2, 3, 8, 8),))
    ops = [g.nodes[n]["op"] for n in g]
    kinds = [op.kind for op in ops]
    assert totals(g).params == sum(p.numel() for p in net.parameters()) == 224 + 16 + 2 + 130
    (conv,) = [op for op in ops if op.kind == "conv2d"]
    assert (conv.dilation, conv.out_shape, conv.macs) == (2, (8, 8, 8), 8 * 64 * 27)
    (norm,) = [op for op in ops if op.kind == "norm"]
    assert (norm.mode, norm.groups, norm.params) == ("group", 2, 16)
    assert kinds.count("constant") == 2 and kinds.count("slice") == 6  # 2 + 2 + x[:, 0] + 1 read
    assert [op.out_shape for op in ops if op.kind == "slice"][-2:] == [(2,), (65,)]
    assert kinds.count("activation") == 1  # the scale: one elementwise op
    gpu = SIMULATORS.create("gpu", device="A100-80GB-PCIe")
    assert gpu.evaluate_population([g])["gpu_latency_ms"][0] > 0
    h = from_torch(build_network(g, seed=0), (torch.randn(1, 3, 8, 8),))
    assert totals(h).macs == totals(g).macs


class Functional(nn.Module):
    """Functional forms with keyword arguments, which fx records as written (not as ATen
    calls): convolution, pools, linear, chunk and mean by keyword, a layer norm without
    weights."""

    def __init__(self):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.randn(8, 3, 3, 3)), nn.Parameter(torch.zeros(8))
        self.bn, self.fc = nn.BatchNorm2d(8), nn.Linear(8, 4)
        self.ln = nn.LayerNorm(4, elementwise_affine=False)

    def forward(self, x):
        y = nn.functional.conv2d(x, self.w, self.b, stride=2, padding=1)
        y = nn.functional.relu(self.bn(y), inplace=True)
        y = nn.functional.avg_pool2d(nn.functional.max_pool2d(y, 2), kernel_size=2, stride=1)
        a, b = y.chunk(2, dim=1)
        y = torch.flatten(torch.cat([a, b], dim=1).mean(dim=(2, 3), keepdim=True), 1)
        y = self.ln(nn.functional.linear(y, self.fc.weight, self.fc.bias))
        return nn.functional.softmax(y, dim=-1) * 2 + torch.sigmoid(y)


class Iterating(nn.Module):
    """Iterates the pieces of a split: torch.fx cannot (a Proxy is not iterable)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        total = 0
        for piece in self.fc(x).split(4, dim=1):
            total = total + piece.relu()
        return total


class InPlace(nn.Module):
    """In-place arithmetic and activations (``+=``, ``relu_``, ``add_``)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        y = nn.functional.relu(self.a(x), inplace=True)
        z = self.b(y)
        z += y
        z.relu_().add_(y)
        return z.mean((2, 3))


class Fpn(nn.Module):
    """A two-level feature pyramid: the coarse level upsampled (nearest) onto the fine one's
    lateral, then the sum resized bilinearly to twice the input."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, 2, 1)
        self.lateral, self.top, self.up = (
            nn.Conv2d(16, 8, 1),
            nn.Conv2d(32, 8, 1),
            nn.Upsample(scale_factor=2),
        )

    def forward(self, x):
        a = nn.functional.relu(self.c1(x))
        p = self.lateral(a) + self.up(self.top(nn.functional.relu(self.c2(a))))
        return nn.functional.interpolate(p, size=(32, 32), mode="bilinear", align_corners=False)


def test_upsampling_imports_as_the_irs_upsample_with_fvcores_cost():
    """nn.Upsample and F.interpolate (nearest, bilinear; by scale or by size): the IR's
    ``upsample`` at the traced shape, one operation per output element for nearest and four
    for bilinear (fvcore's count), no MACs; every simulator prices it; it lowers back to torch."""
    net, x = Fpn(), torch.randn(1, 3, 16, 16)
    g = from_torch(net, (x,))
    ups = [g.nodes[n]["op"] for n in g if g.nodes[n]["op"].kind == "upsample"]
    assert [(op.mode, op.out_shape) for op in ups] == [
        ("nearest", (8, 16, 16)),
        ("bilinear", (8, 32, 32)),
    ]
    assert [op.ops for op in ups] == [8 * 16 * 16, 4 * 8 * 32 * 32] and not any(
        op.macs for op in ups
    )
    t = totals(g)
    assert t.params == sum(p.numel() for p in net.parameters())
    assert t.macs == 27 * 16 * 256 + 144 * 32 * 64 + 16 * 8 * 256 + 32 * 8 * 64
    for sim in (
        SIMULATORS.create("gpu", device="A100-80GB-PCIe"),
        SIMULATORS.create("cpu", device="Pixel-3"),
        SIMULATORS.create("fpga", board="ZC706"),
        SIMULATORS.create("asic"),
    ):
        assert all(v[0] > 0 for k, v in sim.evaluate_population([g]).items() if "latency" in k)
    h = from_torch(build_network(g, seed=0), (x,))
    assert (totals(h).params, totals(h).macs) == (t.params, t.macs)


def _tracer_cases(name: str):
    """(module, example input) of one case of :data:`TRACER_CASES`."""
    if name in ("resnet18", "mobilenet_v3_large"):
        return getattr(_reference_networks(), name)(), torch.randn(1, 3, 224, 224)
    if name == "gpt2_blocks":
        return _reference_networks().gpt2_blocks(), torch.randn(1, 32, 768)
    return {
        "functional": lambda: (Functional(), torch.randn(2, 3, 32, 32)),
        "small_cnn": lambda: (SmallCnn(), torch.randn(2, 3, 16, 16)),
        "pieces": lambda: (Pieces(), torch.randn(2, 3, 8, 8)),
        "tied": lambda: (Shared(), torch.randint(0, 100, (1, 8))),
        "tiny_lm": lambda: (TinyLm(), torch.randint(0, 100, (2, 16))),
        "iterating": lambda: (Iterating(), torch.randn(2, 8)),  # fx cannot: eager only
        "in_place": lambda: (InPlace(), torch.randn(2, 3, 8, 8)),
        "fpn": lambda: (Fpn(), torch.randn(2, 3, 16, 16)),
    }[name]()


TRACER_CASES = ("functional", "small_cnn", "pieces", "tied", "tiny_lm", "iterating", "in_place")
TRACER_CASES += ("fpn", "resnet18", "mobilenet_v3_large", "gpt2_blocks")
#: torch.fx cannot trace these (it falls back on export: the next test)
FX_CANNOT = ("iterating", "gpt2_blocks", "in_place")


@pytest.mark.parametrize(
    "name, tracer",
    [
        pytest.param(n, t, marks=[pytest.mark.slow] if n == "gpt2_blocks" else [])
        for n in TRACER_CASES
        for t in ("fx", "eager")
        if t != "fx" or n not in FX_CANNOT
    ],
)
@pytest.mark.slow
def test_every_tracer_gives_torch_exports_graph(name, tracer):
    """``tracer="fx"`` and ``"eager"`` (what a TorchSpace search uses) read their calls as the
    ATen calls ``torch.export`` writes: the same ops, shapes and edges, without a fallback
    (fx cannot iterate a traced tensor, nor trace the attention stack's unpacking)."""
    from dse.graph import to_dict

    net, x = _tracer_cases(name)
    exported = from_torch(net, (x,), tracer="export")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the tracer itself, no fallback
        traced = from_torch(net, (x,), tracer=tracer)
    assert to_dict(traced) == to_dict(exported)
    assert totals(traced).params == sum(p.numel() for p in net.parameters())


def test_a_module_one_tracer_cannot_trace_falls_back_to_the_other_with_a_warning():
    from dse.graph import to_dict
    from dse.graph.tracers import TracerFallback

    x = torch.randn(2, 8)
    with pytest.warns(TracerFallback, match="Iterating: traced with export") as caught:
        g = from_torch(Iterating(), (x,), tracer="fx")
    assert caught[0].message.tracer == "export"
    assert to_dict(g) == to_dict(from_torch(Iterating(), (x,), tracer="export"))
    # fx records no dependency through z.relu_(): the module goes to export, which follows it
    net, y = InPlace(), torch.randn(1, 3, 8, 8)
    with pytest.warns(TracerFallback, match="relu_ \\(in place, under torch.fx\\)"):
        g = from_torch(net, (y,), tracer="fx")
    assert to_dict(g) == to_dict(from_torch(net, (y,), tracer="export"))
    with pytest.raises(GraphError, match="tracer: expected one of export, fx, eager, got 'jit'"):
        from_torch(Iterating(), (x,), tracer="jit")


@pytest.mark.parametrize("tracer", ["fx", "eager"])
def test_an_unmapped_op_traced_by_fx_or_eager_names_its_source_line_too(tracer):
    with pytest.raises(GraphError) as err:
        from_torch(Unmapped(), (torch.randn(2, 4),), tracer=tracer)
    text = str(err.value)
    assert "cumsum" in text and "erf" in text and "test_torch_import.py" in text


@pytest.mark.parametrize("tracer", ["export", "fx", "eager"])
def test_import_traces_in_eval_mode_and_leaves_each_layers_mode_and_statistics_as_they_were(
    tracer,
):
    """A network mid-training with one batch norm frozen (eval) comes back exactly so: every
    layer's mode, and no running statistic moved by the traced pass."""
    net = SmallCnn().train()
    net.stem[1].eval()  # frozen by the user
    modes = [m.training for m in net.modules()]
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    g = from_torch(net, (torch.randn(2, 3, 16, 16),), tracer=tracer)
    assert totals(g).params == sum(p.numel() for p in net.parameters())
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(v, stats[k]) for k, v in net.state_dict().items())


def test_the_eager_tracer_leaves_every_layer_as_it_found_it():
    """It records a layer by giving it a forward for the run: gone after the run, after a run
    that fails too, and a forward the user set on a layer is theirs again."""
    net = SmallCnn()
    own = net.head.forward  # the user's own instance attribute (a wrapper, say)
    net.head.forward = lambda x: own(x)
    user = net.head.forward
    g = from_torch(net, (torch.randn(2, 3, 16, 16),), tracer="eager")
    assert totals(g).params == sum(p.numel() for p in net.parameters())
    assert net.head.__dict__["forward"] is user
    layers = [m for m in net.modules() if m is not net.head]
    assert not [m for m in layers if "forward" in m.__dict__]
    with pytest.raises(RuntimeError, match="to have 3 channels"):  # PyTorch's own error
        from_torch(net, (torch.randn(2, 4, 16, 16),), tracer="eager")
    assert not [m for m in layers if "forward" in m.__dict__]
    assert net.head.__dict__["forward"] is user
