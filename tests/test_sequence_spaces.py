"""The sgconv and hybrid spaces (dissertation 5.4), their tasks, trainer, layer mix and GPU cost."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dse.graph import totals
from dse.registry import PROXIES, SIMULATORS, SPACES
from dse.space import SpaceError
from dse.training.network import build_network
from dse.training.sequence_tasks import CLOSE, DIGIT0, OPERATORS, chars, listops, seqdigits
from dse.training.sequence_train import train_sequence


@pytest.mark.parametrize(
    "name, kw",
    [
        ("sgconv", {}),
        ("sgconv", {"task": "chars", "length": 64}),
        ("hybrid", {}),
        ("hybrid", {"task": "seqdigits", "sgconv_count": 2, "slots": 4, "window": 16}),
    ],
)
def test_the_irs_parameters_equal_the_torch_networks(name, kw):
    space = SPACES[name](**kw)
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = space.sample(rng)
        g = space.to_graph(arch)
        net = build_network(g, seed=0)
        assert sum(p.numel() for p in net.parameters()) == totals(g).params
        x = torch.randint(0, space.task.vocab, (2, space.task.length))
        want = (2, space.task.length, space.task.vocab) if space.task.classes == 0 else (2, 10)
        assert net(x).shape == want


def test_hybrid_orders_keep_their_sgconv_count():
    space = SPACES["hybrid"](sgconv_count=4)
    assert space.size == math.comb(8, 4)
    rng = np.random.default_rng(1)
    X = space.sample_encodings(rng, 50)
    assert (X.sum(axis=1) == 4).all()
    assert all(space.mutate_encoding(x, rng).sum() == 4 for x in X)
    bad = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    fixed = space.repair_encodings(bad[None])[0]
    assert fixed.sum() == 4 and (fixed == space.repair_encodings(bad[None])[0]).all()
    assert space.order(space.decode(bad)).count("C") == 4
    with pytest.raises(SpaceError, match="sgconv_count"):
        space.arch_hash({f"slot{i}": "C" for i in range(8)})
    mix = PROXIES.create("layer_mix")
    g = space.to_graph({f"slot{i}": "AAAACCCC"[i] for i in range(8)})
    assert mix.evaluate(g, {}, space) == {
        "sgconv_layers": 4.0,
        "attention_layers": 4.0,
        "sgconv_depth": (5 + 6 + 7 + 8) / 8,  # sum of idx_i / N_total, idx from 1
    }


def _evaluate(tokens: list[int]) -> int:
    """An independent reading of a ListOps token list (recursive descent)."""
    names = {v: k for k, v in OPERATORS.items()}

    def parse(i: int) -> tuple[int, int]:
        t = tokens[i]
        if DIGIT0 <= t < DIGIT0 + 10:
            return t - DIGIT0, i + 1
        op, args, i = names[t], [], i + 1
        while tokens[i] != CLOSE:
            v, i = parse(i)
            args.append(v)
        values = sorted(args)
        result = {
            "MAX": max(args),
            "MIN": min(args),
            "MED": values[len(values) // 2],
            "SM": sum(args) % 10,
        }[op]
        return result, i + 1

    return parse(0)[0]


def test_listops_labels_are_the_expressions_values_and_splits_are_disjoint():
    data = listops(n=300, length=200, seed=3, max_depth=4)
    for x, y in zip(data.train_x[:100], data.train_y[:100]):
        tokens = [int(t) for t in x if t]
        assert _evaluate(tokens) == int(y)
    train = {tuple(r.tolist()) for r in data.train_x}
    assert not train & {tuple(r.tolist()) for r in data.test_x}
    assert data.train_x.shape[1] == 200 and int(data.train_x.max()) < data.task.vocab
    again = listops(n=300, length=200, seed=3, max_depth=4)
    assert torch.equal(again.train_x, data.train_x)
    digits, permuted = seqdigits(), seqdigits(permuted=True)
    assert digits.train_x.shape[1] == 64 and int(digits.train_x.max()) <= 16
    assert torch.equal(digits.train_x.sort(1).values, permuted.train_x.sort(1).values)
    text = chars(length=32, n=50)
    assert torch.equal(text.train_x[:, 1:], text.train_y[:, :-1])


def test_listops_keeps_only_expressions_between_min_length_and_length():
    data = listops(n=200, length=256, min_length=64, max_depth=3, max_args=8, seed=1)
    lengths = (torch.cat([data.train_x, data.test_x]) > 0).sum(1)
    assert int(lengths.min()) >= 64 and int(lengths.max()) <= 256
    for x, y in zip(data.test_x[:20], data.test_y[:20]):
        assert _evaluate([int(t) for t in x if t]) == int(y)
    with pytest.raises(ValueError, match="min_length"):
        listops(n=10, length=100, min_length=101)


@pytest.mark.slow
def test_a_short_training_learns_seqdigits_and_is_seeded():
    space = SPACES["sgconv"](task="seqdigits")
    arch = {
        "layers": 2,
        "channels": 32,
        "d": 4,
        "decay": "alpha=0.5",
        "bidirectional": True,
        "prune": 0.0,
    }
    g = space.to_graph(arch)
    data = seqdigits(seed=0)
    assert train_sequence(g, data, steps=150, lr=1e-2).accuracy > 0.4  # ten classes: 0.1
    a, b = (train_sequence(g, data, steps=10, lr=1e-2) for _ in range(2))
    assert (a.accuracy, a.loss) == (b.accuracy, b.loss)
    provider = PROXIES.create("trained_accuracy", steps=10, sequence_lr=1e-2)
    scores = provider.evaluate(g, arch, space)
    assert scores == {"trained_accuracy": a.accuracy, "trained_loss": a.loss}
    with pytest.raises(Exception, match="64"):
        train_sequence(g, listops(n=20, length=100), steps=1)


def test_the_gpu_simulator_costs_attention_quadratically_and_sgconv_log_linearly():
    sim = SIMULATORS.create("gpu", device="A100-80GB-PCIe", batch_size=8)
    lat, mem = {}, {}
    for length in (1024, 2048, 4096):
        space = SPACES["hybrid"](length=length, channels=128)
        graphs = [space.to_graph({f"slot{i}": b for i in range(8)}) for b in "AC"]
        out = sim.evaluate_population(graphs)
        lat[length], mem[length] = out["gpu_latency_ms"], out["gpu_memory_gb"]
        # the attention net's memory holds one layer's scores and probabilities: 2 h L^2 fp32
        assert mem[length][0] * 1e9 >= 2 * 4 * length**2 * 8 * 4
    for a, b in ((1024, 2048), (2048, 4096)):
        growth = lat[b] / lat[a]
        assert growth[0] > 2.5 and growth[1] < 2.3  # attention ~L^2, SGConv ~L log L
        assert 3.5 < mem[b][0] / mem[a][0] < 4.1 and mem[b][1] / mem[a][1] < 2.2
