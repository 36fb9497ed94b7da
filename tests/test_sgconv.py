"""SGConv (dissertation 5.3): the FFT convolution, the eq. 5.1 / 5.2 kernels and their parameter
count, kernel pruning, and the IR's sequence ops (costs, round trip, torch lowering)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dse.graph import GraphBuilder, GraphError, from_json, make_op, to_json, totals
from dse.graph.sequence_ops import sgconv_kernel_length, sgconv_scales
from dse.training.network import build_network
from dse.training.sequence import Attention, SGConv, direct_conv, fft_conv, prune_sgconv


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fft_convolution_equals_the_direct_convolution(dtype, tol, bidirectional):
    gen = torch.Generator().manual_seed(0)
    for length, channels in ((1, 1), (7, 3), (64, 5), (257, 2)):
        x = torch.randn(2, channels, length, generator=gen, dtype=dtype)
        k = torch.randn(2 * channels if bidirectional else channels, length, generator=gen)
        k = k.to(dtype) / math.sqrt(length)
        want = direct_conv(x, k, bidirectional)
        got = fft_conv(x, k, bidirectional)
        assert torch.allclose(got, want, atol=tol, rtol=0), (length, channels)


def test_causal_outputs_never_read_the_future():
    layer = SGConv(4, 32, 2)
    x = torch.randn(1, 32, 4)
    later = x.clone()
    later[:, 20:] += 5.0
    assert torch.allclose(layer(x)[:, :20], layer(later)[:, :20], atol=1e-5)
    both = SGConv(4, 32, 2, bidirectional=True)
    assert not torch.allclose(both(x)[:, :20], both(later)[:, :20], atol=1e-3)


@pytest.mark.parametrize(
    "causal, window, seen",
    [
        (True, 0, lambda i, j: j <= i),
        (True, 3, lambda i, j: i - 3 < j <= i),
        (False, 0, lambda i, j: True),
        (False, 4, lambda i, j: abs(i - j) <= 2),
    ],
)
def test_attention_is_softmax_over_the_keys_its_mask_allows(causal, window, seen):
    b, length, heads, dh = 2, 9, 2, 3
    qkv = torch.randn(b, length, 3 * heads * dh, dtype=torch.float64)
    q, k, v = qkv.view(b, length, 3, heads, dh).unbind(2)
    want = torch.zeros(b, length, heads, dh, dtype=torch.float64)
    for i in range(length):
        keys = [j for j in range(length) if seen(i, j)]
        w = torch.einsum("bhd,bkhd->bhk", q[:, i], k[:, keys]).div(math.sqrt(dh)).softmax(-1)
        want[:, i] = torch.einsum("bhk,bkhd->bhd", w, v[:, keys])
    got = Attention(heads, window, causal)(qkv)
    assert torch.allclose(got, want.reshape(b, length, heads * dh), atol=1e-10)


@pytest.mark.parametrize("length, d", [(1024, 1), (1000, 4), (512, 32), (16, 16), (8, 32)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parameters_are_eq_5_1s_n_d_per_channel(length, d, bidirectional):
    n = sgconv_scales(length, d)
    assert n == (1 if length <= d else math.ceil(math.log2(length / d)) + 1)
    assert sgconv_kernel_length(length, d) >= length
    layer = SGConv(8, length, d, bidirectional=bidirectional)
    per_channel = n * d * (2 if bidirectional else 1)
    assert sum(p.numel() for p in layer.weights) == 8 * per_channel
    assert sum(p.numel() for p in layer.parameters()) == 8 * per_channel + 8  # + D
    op = make_op(
        "sgconv",
        [(length, 8)],
        kernel=d,
        mode="bidirectional" if bidirectional else "causal",
        bias=True,
    )
    assert op.params == 8 * per_channel + 8
    assert layer.kernel().shape == (8 * (2 if bidirectional else 1), length)


def test_kernels_start_at_unit_norm_and_decay():
    torch.manual_seed(0)
    alpha = SGConv(512, 1024, 8, rate=0.5)
    full = alpha._concatenated() / alpha.z  # listing 5.1 normalises before truncating
    assert torch.allclose(full.norm(dim=-1), torch.ones(512), atol=1e-5)
    k = alpha.kernel().detach().abs().mean(dim=0)
    # scale i covers positions [2^(i-1) d, 2^i d) and carries alpha^i: each scale's mean
    # magnitude is about half the previous one's (interpolation shrinks it a little more)
    means = [float(k[2 ** (i - 1) * 8 : 2**i * 8].mean()) for i in range(1, 8)]
    assert all(0.3 < b / a < 0.6 for a, b in zip(means, means[1:]))
    power = SGConv(512, 1024, 8, decay="power", rate=1.0)
    assert torch.allclose(power.kernel().norm(dim=-1), torch.ones(512), atol=1e-5)
    flat = SGConv(512, 1024, 8, decay="power", rate=0.0)  # t = 0: no decay (fig. 5.4's worst)
    kp, kf = power.kernel().detach().abs().mean(0), flat.kernel().detach().abs().mean(0)
    assert kp[:64].mean() / kp[-256:].mean() > 20 > kf[:64].mean() / kf[-256:].mean()


def test_pruning_masks_a_copy_by_magnitude_or_tail():
    torch.manual_seed(1)
    layer = SGConv(6, 100, 4)
    x = torch.randn(2, 100, 6)
    before = layer(x)
    by_size = prune_sgconv(layer, 0.3)
    k, full = by_size.kernel().detach(), layer.kernel().detach().abs()
    assert abs(float((k == 0).float().mean()) - 0.3) < 0.01
    assert float(full[k == 0].max()) <= float(full[k != 0].min())  # the smallest went
    tail = prune_sgconv(layer, 0.9, "tail")
    assert (tail.kernel()[:, 10:] == 0).all() and (tail.kernel()[:, :10] != 0).all()
    assert torch.equal(layer(x), before)  # the trained model is untouched
    assert not torch.allclose(tail(x), before, atol=1e-3)
    assert torch.allclose(prune_sgconv(layer, 0.0)(x), before)
    with pytest.raises(ValueError, match="method"):
        prune_sgconv(layer, 0.5, "random")
    with pytest.raises(ValueError, match="ratio"):
        prune_sgconv(layer, 1.0)


def _sequence_net(length=128, channels=16, mode="causal"):
    b = GraphBuilder("seq")
    x = b.input((length,), "tokens")
    h = b.position(b.embedding(x, 20, channels))
    y = b.sgconv(b.norm(h, "layer"), 4, mode, decay="power", rate=1.0, prune=0.2)
    h = b.sum(h, b.linear(b.act(y, "gelu"), channels))
    y = b.attention(b.linear(b.norm(h, "layer"), 3 * channels), heads=4, window=32, mode=mode)
    h = b.sum(h, b.linear(y, channels))
    b.linear(b.seq_pool(h), 10)
    return b.build()


def test_sequence_graphs_cost_round_trip_and_lower_to_torch():
    g = _sequence_net()
    net = build_network(g, seed=0)
    assert sum(p.numel() for p in net.parameters()) == totals(g).params
    assert net(torch.randint(0, 20, (3, 128))).shape == (3, 10)
    again = from_json(to_json(g))
    assert totals(again) == totals(g)
    sg = next(d["op"] for _, d in again.nodes(data=True) if d["op"].kind == "sgconv")
    assert sg.option("prune") == 0.2 and sg.option("decay") == "power"
    n = 2 * 128
    assert sg.ops == round(
        4 * 16 * sgconv_kernel_length(128, 4)
        + 3 * 16 * 2.5 * n * math.log2(n)
        + 6 * 16 * (n // 2 + 1)
        + 2 * 128 * 16
    )
    att = make_op("attention", [(1024, 192)], groups=4)
    assert att.out_shape == (1024, 64) and att.macs == 2 * 1024 * 1024 * 64
    assert att.transient == 2 * 4 * 1024 * 1024  # the scores and probabilities, L^2 per head
    local = make_op("attention", [(1024, 192)], groups=4, options={"window": 128})
    assert local.transient == 2 * 4 * 1024 * 128
    with pytest.raises(GraphError, match="divisible"):
        make_op("attention", [(16, 90)], groups=4)
    with pytest.raises(GraphError, match="mode"):
        make_op("sgconv", [(16, 8)], kernel=2, mode="sideways")


def test_sgconv_cost_grows_about_2x_per_doubling_and_attention_4x():
    flops = np.array(
        [
            make_op("sgconv", [(n, 128)], kernel=8, mode="causal").flops
            for n in (1024, 2048, 4096, 8192)
        ],
        dtype=float,
    )
    attn = np.array(
        [make_op("attention", [(n, 384)], groups=4).flops for n in (1024, 2048, 4096, 8192)],
        dtype=float,
    )
    assert np.all((flops[1:] / flops[:-1] > 2.0) & (flops[1:] / flops[:-1] < 2.3))
    assert np.allclose(attn[1:] / attn[:-1], 4.0)
