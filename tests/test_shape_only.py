"""dse.graph.shape_only: the heavy calls of a traced forward pass answered by their shape."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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
