"""dse.graph.shape_only: the heavy calls of a traced forward pass answered by their shape."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dse.graph.shape_only import ShapeOnly

x4 = torch.randn(2, 8, 13, 11)
CASES = {
    "conv": (torch.conv2d, (x4, torch.randn(16, 8, 3, 3)), {}),
    "conv strided, padded, dilated": (
        F.conv2d,
        (x4, torch.randn(16, 8, 3, 5), None),
        {"stride": (2, 3), "padding": (1, 2), "dilation": 2},
    ),
    "conv grouped": (F.conv2d, (x4, torch.randn(8, 2, 3, 3)), {"groups": 4, "padding": 1}),
    "conv depthwise": (F.conv2d, (x4, torch.randn(8, 1, 5, 5), None, 2, 2, 1, 8), {}),
    "conv same": (F.conv2d, (x4, torch.randn(4, 8, 3, 5)), {"padding": "same"}),
    "conv valid": (F.conv2d, (x4, torch.randn(4, 8, 4, 4)), {"padding": "valid"}),
    "linear": (F.linear, (torch.randn(2, 5, 7), torch.randn(3, 7), torch.randn(3)), {}),
    "linear of a vector": (F.linear, (torch.randn(7), torch.randn(3, 7)), {}),
    "matmul broadcast": (torch.matmul, (torch.randn(2, 1, 4, 5), torch.randn(3, 5, 6)), {}),
    "@": (torch.Tensor.__matmul__, (torch.randn(4, 5), torch.randn(5, 6)), {}),
    "bmm": (torch.bmm, (torch.randn(3, 4, 5), torch.randn(3, 5, 6)), {}),
    "batch norm": (
        F.batch_norm,
        (x4, torch.zeros(8), torch.ones(8), torch.ones(8), torch.zeros(8)),
        {"training": False},
    ),
    "attention": (
        F.scaled_dot_product_attention,
        (torch.randn(2, 4, 9, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 5)),
        {"is_causal": False},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_rule_gives_the_computed_calls_shape_and_dtype_without_computing(case):
    func, args, kwargs = CASES[case]
    answered = ShapeOnly().answer(func, args, kwargs)
    computed = func(*args, **kwargs)
    assert answered is not None, "the rule covers this form"
    assert answered.shape == computed.shape and answered.dtype == computed.dtype
    assert not answered.any()  # zeros: no number was computed


@pytest.mark.parametrize(
    "func, args, kwargs",
    [
        (torch.conv2d, (torch.randn(8, 5, 5), torch.randn(4, 8, 3, 3)), {}),  # unbatched
        (F.conv2d, (x4, torch.randn(4, 8, 3, 3)), {"padding": "same", "stride": 2}),
        (torch.matmul, (torch.randn(5), torch.randn(5, 6)), {}),  # a vector operand
        (torch.relu, (x4,), {}),  # no rule: cheap, computed
    ],
)
def test_forms_no_rule_reads_are_left_to_pytorch(func, args, kwargs):
    assert ShapeOnly().answer(func, args, kwargs) is None


@pytest.mark.parametrize(
    "func, args",
    [
        (torch.conv2d, (x4, torch.randn(16, 3, 3, 3))),  # 8 input channels, weight reads 3
        (F.linear, (torch.randn(2, 7), torch.randn(3, 6))),
        (torch.matmul, (torch.randn(4, 5), torch.randn(4, 6))),
        (torch.bmm, (torch.randn(2, 4, 5), torch.randn(3, 5, 6))),
        (F.batch_norm, (x4, torch.zeros(3), torch.ones(3))),
    ],
)
def test_mismatched_shapes_raise_pytorchs_own_error_under_the_mode(func, args):
    """A network whose shapes do not fit fails to trace exactly as it fails to run."""
    with pytest.raises(RuntimeError) as direct:
        func(*args)
    with ShapeOnly().mode(), pytest.raises(RuntimeError) as traced:
        func(*args)
    assert str(traced.value) == str(direct.value)


def test_a_network_under_the_mode_has_its_computed_shapes_everywhere():
    """Shape arithmetic on an answered tensor (a flatten sized from ``x.shape``) still works."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(96, 4)
    )
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        computed = net(x)
        with ShapeOnly().mode():
            answered = net(x)
    assert answered.shape == computed.shape == (2, 4)


LAYER_CASES = {
    "conv": (nn.Conv2d(8, 16, 3, padding=1, bias=False), x4),
    "conv strided, grouped": (nn.Conv2d(8, 4, (3, 5), stride=2, groups=4), x4),
    "conv same": (nn.Conv2d(8, 4, 3, padding="same"), x4),
    "batch norm 2d": (nn.BatchNorm2d(8), x4),
    "batch norm 1d of (N, C)": (nn.BatchNorm1d(8), torch.randn(3, 8)),
    "batch norm 1d of (N, C, L)": (nn.BatchNorm1d(8), torch.randn(3, 8, 5)),
    "linear": (nn.Linear(11, 6), x4),
}


@pytest.mark.parametrize("case", LAYER_CASES)
def test_a_layer_rule_gives_the_layers_own_shape_without_running_it(case):
    """The eager tracer answers these layers without their Python: the same shape and dtype."""
    layer, x = LAYER_CASES[case]
    answered = ShapeOnly().answer_layer(layer.eval(), (x,))
    assert answered is not None, "the rule covers this form"
    computed = layer(x)
    assert answered.shape == computed.shape and answered.dtype == computed.dtype


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (nn.BatchNorm2d(8), (torch.randn(8, 5, 5),)),  # 3-d: the layer's own error, computed
        (nn.BatchNorm1d(8), (x4,)),
        (nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect"), (x4,)),
        (nn.Conv2d(3, 4, 3), (x4,)),  # 8 channels into a 3-channel conv: PyTorch's error
        (nn.Linear(11, 6), (x4, x4)),  # two inputs
        (nn.ReLU(), (x4,)),  # no layer rule
    ],
)
def test_layer_forms_no_rule_reads_are_left_to_the_layer(layer, inputs):
    assert ShapeOnly().answer_layer(layer, inputs) is None


#: a layer of each other class the tracers record whole, with an input (the invariant below)
OTHER_LAYERS = {
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(8, 4, 3, 2), x4),
    "LayerNorm": (lambda: nn.LayerNorm(11), x4),
    "GroupNorm": (lambda: nn.GroupNorm(2, 8), x4),
    "Embedding": (lambda: nn.Embedding(10, 4), torch.randint(0, 10, (2, 3))),
    "Softmax": (lambda: nn.Softmax(dim=1), x4),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), x4),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), x4),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(1), x4),
    "Flatten": (lambda: nn.Flatten(), x4),
    "Upsample": (lambda: nn.Upsample(scale_factor=2), x4),
    "Dropout": (lambda: nn.Dropout(), x4),
    "Identity": (lambda: nn.Identity(), x4),
    "LeakyReLU": (lambda: nn.LeakyReLU(), x4),
    **{
        a: ((lambda a=a: getattr(nn, a)()), x4)
        for a in ("ReLU", "ReLU6", "Sigmoid", "SiLU", "Hardswish", "Hardsigmoid", "GELU", "Tanh")
    },
}


def test_every_layer_recorded_whole_without_a_rule_makes_no_call_a_rule_covers():
    """The eager tracer runs these layers with the mode off (computed, as they were under the
    mode): true only while none of their calls is one a shape rule answers. A layer class
    added to FX_MODULES needs a case here (or a layer rule)."""
    from torch.overrides import TorchFunctionMode

    from dse.graph.fx_trace import FX_MODULES

    shapes = ShapeOnly()
    ruled = {cls.__name__ for cls in shapes.layer_rules}
    assert set(FX_MODULES.names()) - ruled == set(OTHER_LAYERS)
    seen = []

    class Calls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    covered = {}
    for name, (make, x) in OTHER_LAYERS.items():
        seen.clear()
        with torch.no_grad(), Calls():
            make().eval()(x)
        covered[name] = [f for f in seen if f in shapes.rules]
    assert not any(covered.values()), covered
    with Calls():  # the check sees calls at all
        nn.Conv2d(8, 4, 1)(x4)
    assert torch.conv2d in seen and torch.conv2d in shapes.rules
