"""ONNX models into the IR: the same totals and simulator figures as the torch path on the same
networks, folded batch norms told apart, unmapped operators named."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from conftest import reference_networks

from dse.graph import GraphError, from_onnx, from_torch, totals
from dse.registry import SIMULATORS, SPACES
from dse.training.network import build_network

onnx = pytest.importorskip("onnx")


class Plain(torch.nn.Module):
    """A network with a plain ``forward(x)`` (the TorchScript exporter passes keyword-only
    arguments positionally)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def exported(module: torch.nn.Module, shape, keep_norms: bool = True):
    """``torch.onnx.export`` (TorchScript path) of ``module`` on one sample of ``shape`` (or on
    ``shape`` itself, an example tensor); ``keep_norms``: batch norms kept as nodes (else
    folded into the convolutions, the exporter's default)."""
    example = shape if isinstance(shape, torch.Tensor) else torch.randn(1, *shape)
    buffer = io.BytesIO()
    kwargs = (
        {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False}
        if keep_norms
        else {}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, **kwargs)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("network", ["resnet18", "mobilenet_v2", "shufflenet_v2", "googlenet"])
@pytest.mark.slow
def test_onnx_and_torch_paths_give_the_same_networks(network):
    zoo = SPACES.create("zoo")
    (variable,) = zoo.variables
    module = Plain(build_network(zoo.to_graph({variable.name: network}), seed=0))
    shape = (3, 224, 224)
    via_torch = from_torch(module, (torch.randn(1, *shape),))
    via_onnx = from_onnx(exported(module, shape))
    a, b = totals(via_torch), totals(via_onnx)
    assert (a.params, a.macs) == (b.params, b.macs)
    for sim in (SIMULATORS.create("gpu", device="A100-80GB-PCIe"), SIMULATORS.create("asic")):
        want, got = sim.evaluate_population([via_torch]), sim.evaluate_population([via_onnx])
        for metric in want:
            np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9)


def test_a_folded_export_has_the_same_macs_and_no_norm_parameters():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    kept, folded = (
        from_onnx(exported(net, (3, 16, 16))),
        from_onnx(exported(net, (3, 16, 16), keep_norms=False)),
    )
    assert totals(kept).params == sum(p.numel() for p in net.parameters())
    assert totals(kept).macs == totals(folded).macs
    # the folded convolution gains a bias (8) and loses the norm's scale and shift (16)
    assert totals(folded).params == totals(kept).params - 16 + 8


def test_an_unmapped_onnx_op_is_named_or_costed_as_elementwise():
    class Erf(torch.nn.Module):
        def forward(self, x):
            return torch.erf(torch.nn.functional.relu(x))

    model = exported(Erf(), (4, 8, 8))
    with pytest.raises(GraphError, match=r"(?s)1 operator\(s\) have no IR translation.*\n  Erf"):
        from_onnx(model)
    with pytest.warns(UserWarning, match="costed as elementwise: Erf"):
        g = from_onnx(model, unknown="elementwise")
    assert [d["op"].kind for _, d in g.nodes(data=True)][-1] == "activation"


def test_dse_cost_prices_an_onnx_file(tmp_path, capsys):
    from dse.cli import main

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 10),
    )
    path = tmp_path / "tiny.onnx"
    path.write_bytes(exported(net, (3, 16, 16)).SerializeToString())
    out = tmp_path / "p.csv"
    assert main(["cost", "--onnx", str(path), "--device", "Pixel-3", "--out", str(out)]) == 0
    import pandas as pd

    row = pd.read_csv(out).iloc[0]
    assert row.network == "tiny" and row.params == sum(p.numel() for p in net.parameters())
    assert row.cpu_latency_ms > 0
    capsys.readouterr()
    assert main(["cost", "--onnx", str(tmp_path / "nope.onnx"), "--device", "Pixel-3"]) == 2
    assert "--onnx: " in capsys.readouterr().err


@pytest.mark.parametrize("name", reference_networks(("mobilenet_v3_large",)))
def test_the_reference_networks_export_to_onnx_with_the_same_totals(name):
    """The hand-written reference networks (examples/torch_networks.py): squeeze-excite gates,
    hard-swish, SiLU, bottlenecks, and the transformers (a class token and position table,
    layer norms, linear layers with biases on 3-D inputs, attention with its scale and causal
    mask); the same parameters and MACs through either door."""
    from conftest import example_module

    torch_networks = example_module("torch_networks")

    shape = torch_networks.PUBLISHED[name].input_shape
    net = getattr(torch_networks, name)().eval()
    a = totals(from_torch(net, (torch.randn(1, *shape),)))
    b = totals(from_onnx(exported(net, shape)))
    assert (a.params, a.macs) == (b.params, b.macs)
    assert a.params == sum(p.numel() for p in net.parameters())


def test_onnx_reads_group_norms_pieces_tokens_and_tied_weights_as_torch_does():
    """nn.GroupNorm (which exporters write as reshape, instance norm, reshape, scale, shift),
    dilation, split/chunk/unbind pieces, a class token and position table, x[:, 0], an
    embedding whose table the output layer shares, functional forms, upsampling: the same
    totals."""
    import test_torch_import as cases

    class Grouped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.norm = torch.nn.GroupNorm(2, 8)
            self.stats = torch.nn.GroupNorm(4, 8, affine=False)

        def forward(self, x):
            return self.stats(self.norm(self.conv(x)))

    for net, x in (
        (Grouped(), torch.randn(1, 3, 8, 8)),
        (cases.Pieces(), torch.randn(1, 3, 8, 8)),
        (cases.Functional(), torch.randn(1, 3, 32, 32)),
        (cases.TinyLm(), torch.randint(0, 100, (1, 16))),
        (cases.Shared(), torch.randint(0, 100, (1, 8))),
        (cases.Fpn(), torch.randn(1, 3, 16, 16)),  # Resize: nearest by scale, linear by size
    ):
        a = totals(from_torch(net, (x,)))
        b = totals(from_onnx(exported(net, x)))
        assert (a.params, a.macs) == (b.params, b.macs), type(net).__name__
        assert a.params == sum(p.numel() for p in net.parameters())
