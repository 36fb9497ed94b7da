"""The channel shuffle (``shuffle``): FBNet's grouped blocks and ShuffleNet V2 copy every element
of a tensor to its new channel, which GPUs and CPUs pay for and views do not."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import toy_cpu

from dse.catalogs.devices import get_device
from dse.graph import GraphBuilder, GraphError, totals
from dse.registry import SIMULATORS, SPACES
from dse.simulators.cpu.calibration import CpuCalibration
from dse.simulators.cpu.model import CpuCostModel
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import GpuCostModel
from dse.spaces.fbnet import FBNetSpace
from dse.training.network import build_network

SHAPE = (32, 16, 16)


def conv_then(shuffled: bool):
    """A 1x1 grouped convolution, then (``shuffled``) a shuffle of its 32 x 16 x 16 output."""
    b = GraphBuilder("shuffled" if shuffled else "plain")
    y = b.conv(b.input((16, 16, 16)), SHAPE[0], 1, groups=2)
    if shuffled:
        b.shuffle(y, 2)
    return b.build()


def test_every_fbnet_grouped_block_shuffles_its_expanded_channels_at_no_flops():
    space = FBNetSpace()
    grouped = space.to_graph({f"l{i:02d}": "k3_e1_g2" for i in range(22)})
    plain = space.to_graph({f"l{i:02d}": "k3_e1" for i in range(22)})
    ops = [d["op"] for _, d in grouped.nodes(data=True)]
    shuffles = [op for op in ops if op.kind == "shuffle"]
    assert len(shuffles) == 22 and {op.groups for op in shuffles} == {2}
    assert all(op.in_shapes[0] == op.out_shape for op in shuffles)
    assert not any(d["op"].kind == "shuffle" for _, d in plain.nodes(data=True))
    assert sum(op.flops + op.params for op in shuffles) == 0
    # the grouped 1x1s halve those MACs; the shuffles add none
    assert totals(grouped).macs < totals(plain).macs


def test_shufflenet_v2_shuffles_after_each_of_its_16_units():
    space = SPACES.create("zoo")
    (variable,) = space.variables
    graph = space.to_graph({variable.name: "shufflenet_v2"})
    shuffles = [d["op"] for _, d in graph.nodes(data=True) if d["op"].kind == "shuffle"]
    assert len(shuffles) == 4 + 8 + 4 and {op.groups for op in shuffles} == {2}
    assert sorted({op.out_shape[0] for op in shuffles}) == [116, 232, 464]


def test_a_shuffle_costs_a_copy_on_gpus_and_cpus_and_nothing_on_fpgas_and_asics(tmp_path):
    plain, shuffled = conv_then(False), conv_then(True)
    elements = SHAPE[0] * SHAPE[1] * SHAPE[2]
    # GPU: one more kernel, reading and writing the fp32 tensor once
    coster = GraphCoster(GpuCostModel(get_device("Titan-RTX")), batch_size=4)
    a, b = coster.cost([plain]), coster.cost([shuffled])
    assert b.kernels[0] - a.kernels[0] == 1
    assert b.bytes[0] - a.bytes[0] == pytest.approx(4 * 2 * elements * 4)
    assert b.seconds[0] > a.seconds[0]
    # CPU: an elementwise op of no arithmetic: its overhead plus the copy at the L2 rate, also
    # in a fused runtime (a TRANSPOSE folds into nothing)
    device = toy_cpu(tmp_path)
    for runtime in ("eager", "fused"):
        model = CpuCostModel(
            replace(device, runtime=runtime), CpuCalibration(memory_efficiency=0.8)
        )
        extra = model.seconds([shuffled])[0] - model.seconds([plain])[0]
        assert extra == pytest.approx(7e-6 + 2 * elements * 4 / (4 * 2e9 * 32 * 0.8), rel=1e-9)
    # FPGA and ASIC: addressing in the buffers, the same cost as without it
    for sim in (SIMULATORS.create("fpga", board="ZC706"), SIMULATORS.create("asic")):
        want, got = sim.evaluate_population([plain]), sim.evaluate_population([shuffled])
        for metric in want:
            assert got[metric][0] == pytest.approx(want[metric][0], rel=1e-12), metric


def test_the_built_network_shuffles_channels_as_shufflenet_does():
    b = GraphBuilder("shuffle")
    b.shuffle(b.input((6, 2, 2)), 2)
    net = build_network(b.build(), seed=0)
    x = torch.arange(6.0).reshape(1, 6, 1, 1).expand(1, 6, 2, 2)
    # channel i of group g goes to i * groups + g: groups (0 1 2) and (3 4 5) interleave
    assert net(x)[0, :, 0, 0].tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


@pytest.mark.parametrize("groups", [1, 4])
def test_a_shuffle_whose_groups_do_not_divide_the_channels_is_named(groups):
    b = GraphBuilder("bad")
    x = b.input((6, 2, 2))
    with pytest.raises(GraphError, match="shuffle needs groups >= 2 dividing the 6 channels"):
        b.shuffle(x, groups)


class ShuffleAfterConv(torch.nn.Module):
    """A grouped 1x1 convolution and a channel shuffle written one of the two usual ways."""

    def __init__(self, permute: bool, back: tuple[int, ...] | None = None):
        super().__init__()
        self.conv, self.permute, self.back = torch.nn.Conv2d(4, 8, 1, groups=2), permute, back

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        z = y.view(n, 2, c // 2, h, w)
        if self.permute:  # torchvision's ShuffleNet V2
            return z.permute(0, 2, 1, 3, 4).contiguous().view(self.back or (n, c, h, w))
        return z.transpose(1, 2).reshape(self.back or (n, c, h, w))  # examples/fbnet_torch.py


@pytest.mark.parametrize("permute", [False, True])
def test_both_importers_read_a_channel_shuffle_as_one(permute):
    import io
    import warnings

    from dse.graph import from_onnx, from_torch

    onnx = pytest.importorskip("onnx")
    x = torch.randn(1, 4, 6, 6)

    def kinds(module):
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (x,), buffer, dynamo=False)
        graphs = from_torch(module, (x,)), from_onnx(onnx.load_from_string(buffer.getvalue()))
        return [[d["op"].kind for _, d in g.nodes(data=True) if d["op"].kind != "reshape"]
                for g in graphs]  # fmt: skip

    shuffled = ShuffleAfterConv(permute)
    assert kinds(shuffled) == [["input", "conv2d", "shuffle"]] * 2
    for tracer in ("fx", "eager"):  # what a TorchSpace search traces with: the same graph
        graph = from_torch(shuffled, (x,), tracer=tracer)
        assert [d["op"].kind for _, d in graph.nodes(data=True)].count("shuffle") == 1, tracer
    # the same split and swap flattened instead of read back as channels: views, no shuffle
    flat = ShuffleAfterConv(permute, back=(1, 8 * 6 * 6))
    assert kinds(flat) == [["input", "conv2d"]] * 2
    # the built network of the imported graph shuffles as the module does
    graph = from_torch(shuffled, (x,))
    net = build_network(graph, seed=0)
    with torch.no_grad():
        net.get_submodule("layers.1").load_state_dict(shuffled.conv.state_dict())
        assert torch.allclose(net(x), shuffled(x))
