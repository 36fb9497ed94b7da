"""How each op kind runs in torch: one registered lowering per kind, beside its shape and cost
(:func:`~dse.graph.ops.register_op_kind`), so a new op kind is registered, never added to an
if-chain.

A :class:`TorchLowering` either makes a module from the op (``module(op) -> nn.Module``: the
node's weights live there) or computes the node inline from its inputs (``inline(op, xs) ->
tensor``: merges, views, the ``zero`` edge). This module is torch-free, so registering a kind
never imports torch; :mod:`dse.training.network` registers the built-in kinds' lowerings and
builds networks from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dse.registry import Registry


@dataclass(frozen=True)
class TorchLowering:
    """One op kind in torch: a module factory, or an inline function of the inputs."""

    module: Callable[[Any], Any] | None = None  # (OpNode) -> nn.Module
    inline: Callable[[Any, list], Any] | None = None  # (OpNode, [tensor]) -> tensor

    def __post_init__(self):
        if (self.module is None) == (self.inline is None):
            raise ValueError("a torch lowering gives a module factory or an inline function")


#: op kind -> its torch lowering
TORCH_LOWERINGS: Registry[TorchLowering] = Registry("torch lowering")


def register_torch_lowering(
    kind: str,
    module: Callable[[Any], Any] | None = None,
    inline: Callable[[Any, list], Any] | None = None,
) -> TorchLowering:
    """Register (or replace) how op kind ``kind`` runs in torch."""
    lowering = TorchLowering(module, inline)
    TORCH_LOWERINGS.add(kind, lowering)
    return lowering
