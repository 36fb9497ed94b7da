"""``trained_accuracy``: a short seeded training of any image classifier graph on the digits."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from dse.graph import GraphBuilder, GraphError, totals  # noqa: E402
from dse.proxies.trained import TrainedAccuracy, small_graph, train_and_test  # noqa: E402
from dse.registry import PROXIES  # noqa: E402
from dse.spaces.nasbench201 import NasBench201Space  # noqa: E402
from dse.spaces.zoo import build  # noqa: E402


def test_small_graph_keeps_the_network_and_resizes_input_and_classes():
    g = build("mobilenet_v2")
    small = small_graph(g, 32, 10)
    kinds = [g.nodes[n]["op"].kind for n in g]
    assert [small.nodes[n]["op"].kind for n in small] == kinds
    assert small.nodes[0]["op"].out_shape == (3, 32, 32)
    last = max(n for n in small if small.nodes[n]["op"].kind == "linear")
    assert small.nodes[last]["op"].out_shape == (10,)
    # same weights but the classifier's; far fewer MACs at 32x32
    fc = 1280 * (1000 - 10)  # the classifier's weights saved (its 990 biases too)
    assert totals(g).params - totals(small).params == fc + 990
    assert totals(small).macs < totals(g).macs / 40
    assert g.nodes[0]["op"].out_shape == (3, 224, 224)  # the original is untouched


def test_small_graph_refuses_what_is_not_an_image_classifier():
    b = GraphBuilder("seq")
    b.linear(b.input((16,)), 4)
    with pytest.raises(GraphError, match="one \\(C, H, W\\) input"):
        small_graph(b.build(), 16, 10)


@pytest.mark.slow
def test_training_is_seeded_and_learns():
    space = NasBench201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|"
        "nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    g = space.to_graph(arch)
    a = train_and_test(g, epochs=2, resolution=8, seed=1)
    b = train_and_test(g, epochs=2, resolution=8, seed=1)
    assert a == b
    assert a > 0.3  # ten classes: chance is 0.1
    provider = PROXIES.create("trained_accuracy", epochs=2, resolution=8, seed=1)
    scores = provider.evaluate(g, arch, space)
    assert scores["trained_accuracy"] == a and 0 < scores["trained_loss"] < np.log(10)
    with pytest.raises(ValueError, match="resolution"):
        TrainedAccuracy(resolution=4)
    assert np.isfinite(a)
