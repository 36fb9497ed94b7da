"""AZ-NAS's measures: block marks in the IR, the entropy and Jacobian estimates against closed
forms, and the measures' ranking of shipped NAS-Bench-201 cells."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import reference_data
from scipy.stats import spearmanr

from dse.graph import GraphBuilder, from_json, to_json
from dse.proxies.az_nas import BLOCK_MEASURES, jacobian_norm, rank_aggregate, spectral_entropy
from dse.proxies.zero_cost import MEASURES, context_for, score
from dse.registry import SPACES
from dse.spaces.nasbench201 import NasBench201Space

AZ = list(BLOCK_MEASURES)


def test_nasbench201_marks_stem_cells_and_reductions_as_blocks():
    space = NasBench201Space()
    g = space.to_graph(space.sample(np.random.default_rng(0)))
    blocks = g.graph["block_outputs"]
    assert len(blocks) == 1 + 3 * 5 + 2  # stem, 15 cells, 2 reduction blocks
    channels = [g.nodes[n]["op"].out_shape[0] for n in blocks]
    assert channels == [16] * 6 + [32] * 6 + [64] * 6
    assert blocks[5] == g.graph["stage_outputs"][0]
    assert from_json(to_json(g)).graph["block_outputs"] == blocks


@pytest.mark.parametrize("name", ["nasbench101", "darts", "mbconv", "transnas101_micro"])
def test_cell_spaces_mark_their_blocks_in_order(name):
    space = SPACES[name]()
    g = space.to_graph(space.sample(np.random.default_rng(1)))
    blocks = g.graph["block_outputs"]
    assert len(blocks) >= 5 and blocks == sorted(blocks)
    assert set(g.graph["stage_outputs"]) - {blocks[0]} <= set(blocks)


def test_spectral_entropy_is_log_channels_for_white_features_and_zero_for_one_direction():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(64, 8, 16, 16, generator=gen)
    assert spectral_entropy(white) == pytest.approx(math.log(8), abs=0.01)
    one = torch.randn(64, 1, 16, 16, generator=gen) * torch.arange(1.0, 9.0).view(1, 8, 1, 1)
    assert spectral_entropy(one) < 1e-4
    tokens = torch.randn(32, 50, 4, generator=gen)  # a sequence batch: (batch, tokens, channels)
    assert spectral_entropy(tokens) == pytest.approx(math.log(4), abs=0.01)


def test_jacobian_norm_estimates_a_linear_blocks_spectral_norm():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, generator=gen)
    # the estimate J^T (g g^T averaged over n positions) overshoots by at most
    # (1 + sqrt(channels / n))^2, under 5% at n = 32 x 16 x 16
    x = torch.randn(32, 4, 16, 16, generator=gen, requires_grad=True)
    y = torch.einsum("oc,bchw->bohw", w, x)  # a 1x1 convolution
    sigma = jacobian_norm(y, x, gen)
    assert sigma == pytest.approx(float(torch.linalg.matrix_norm(w, 2)), rel=0.06)
    z = torch.nn.functional.avg_pool2d(x, 2)  # halved resolution: folded into channels
    assert jacobian_norm(z, x, gen) == pytest.approx(0.5, rel=0.06)  # |(1/4, 1/4, 1/4, 1/4)|
    assert jacobian_norm(x * 1.0, x, gen) is None  # passes its input through


@pytest.mark.slow
def test_az_measures_rank_shipped_nasbench201_cells():
    table = pd.read_csv(reference_data("nasbench201_naslib.csv")).iloc[:12]
    space = NasBench201Space()
    ctx = context_for(space.to_graph(space.parse(table.arch_str[0])), 64, 0, "images")
    values = {m: [] for m in AZ}
    for arch_str in table.arch_str:
        g = space.to_graph(space.parse(arch_str))
        for m in AZ:
            values[m].append(score(m, g, ctx))
    rho = spearmanr(values["az_expressivity"], table.val_acc_cifar10)[0]
    assert rho > 0.6, rho  # 0.80 over all 362 cells
    again = score("az_trainability", space.to_graph(space.parse(table.arch_str[3])), ctx)
    assert again == values["az_trainability"][3]  # seeded: the same score twice
    identity = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # cell output = input
    assert score("az_trainability", space.to_graph(space.parse(identity)), ctx) == -math.inf
    assert all(math.isfinite(v) for v in values["az_expressivity"])


def test_az_measures_read_stage_outputs_where_no_block_is_marked():
    b = GraphBuilder("two stages")
    x = b.input((3, 16, 16))
    x = b.mark_stage(b.act(b.norm(b.conv(x, 8, 3)), "relu"))
    x = b.mark_stage(b.act(b.norm(b.conv(x, 16, 3, 2)), "relu"))
    b.classifier(x, 10)
    g = b.build()
    assert g.graph["block_outputs"] == []
    ctx = context_for(g, 16, 0, "images")
    assert all(math.isfinite(score(m, g, ctx)) for m in AZ)
    assert set(AZ) <= set(MEASURES.available())
    b = GraphBuilder("one stage")
    b.classifier(b.mark_stage(b.conv(b.input((3, 16, 16)), 8, 3)), 10)
    with pytest.raises(ValueError, match="two or more block outputs"):
        score("az_expressivity", b.build(), ctx)


def test_rank_aggregate_sums_log_ranks_and_ranks_missing_scores_lowest():
    values = np.array([[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]])
    want = np.log(np.array([[1, 2], [2, 1], [3, 3]]) / 3).sum(axis=1)
    assert np.allclose(rank_aggregate(values), want)
    assert np.argmax(rank_aggregate(values)) == 2
    with pytest.raises(ValueError, match="candidates x measures"):
        rank_aggregate(np.ones(3))


def test_transnas_task_networks_share_their_encoder_blocks_and_az_scores():
    table = pd.read_csv(
        reference_data("transnas101_micro_naslib.csv"), dtype={"naslib_op_indices": str}
    )
    code = table.naslib_op_indices[7]
    scores = []
    for task in ("class_scene", "autoencoder"):
        space = SPACES.create("transnas101_micro", task=task, resolution=32)
        g = space.to_graph(space.parse(code))
        ctx = context_for(g, 8, 0, "images")
        scores.append([score(m, g, ctx) for m in AZ[:2]])
    assert scores[0] == scores[1]
