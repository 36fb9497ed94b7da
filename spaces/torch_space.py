"""A search space written as plain PyTorch: ``make(arch) -> nn.Module`` over declared choices.

The user's own model is the space: each architecture's graph is ``make(arch)`` imported into
the IR by :func:`dse.graph.from_torch` (cached by architecture, so a search traces each design
once), and every proxy and simulator reads it like any space's graph. Where ``factory`` names an
importable function (``"mylab.models:make"``), the graph also records it, so the proxies that
score a torch network train or measure ``make(arch)`` itself, not a round trip through the IR
(:func:`dse.training.network.build_network`).

Config::

    [space]
    name = "torch"
    factory = "mylab.models:make"      # make(arch: dict) -> torch.nn.Module
    input_shape = [3, 32, 32]          # one sample (the trace runs a batch of one)

    [space.choices]
    depth = [2, 3, 4]
    width = [16, 32, 64]

In Python: ``TorchSpace(make, {"depth": [2, 3, 4]}, (3, 32, 32))`` with any callable.
"""

from __future__ import annotations

import importlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from dse.graph import from_torch
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError

#: graphs kept per space (a search revisits designs; an LRU bound keeps memory flat)
CACHE_SIZE = 4096


def load_factory(spec: str) -> Callable[[dict[str, Any]], Any]:
    """The function ``"module:function"`` names (importing the module runs its code)."""
    module, sep, function = spec.partition(":")
    if not sep or not module or not function:
        raise SpaceError(f"factory: expected 'module:function', got {spec!r}")
    try:
        found = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        raise SpaceError(f"factory: cannot load {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(found):
        raise SpaceError(f"factory: {spec!r} is not callable")
    return found


@SPACES.register("torch")
class TorchSpace(SearchSpace):
    """A space written as PyTorch: make(arch) -> nn.Module over declared choices."""

    name = "torch"

    def __init__(
        self,
        factory: str | Callable[..., Any],
        choices: dict[str, list],
        input_shape: list[int] | tuple[int, ...],
        name: str = "torch",
    ):
        self.spec = factory if isinstance(factory, str) else None
        self.make = load_factory(factory) if isinstance(factory, str) else factory
        if not choices:
            raise SpaceError("choices: declare at least one choice, e.g. depth = [2, 3, 4]")
        variables = []
        for key, values in choices.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise SpaceError(f"choices.{key}: expected a non-empty list of values")
            variables.append(Choice(key, tuple(values)))
        self.variables = tuple(variables)
        self.input_shape = tuple(int(s) for s in input_shape)
        if not self.input_shape or min(self.input_shape) < 1:
            raise SpaceError(f"input_shape: expected positive sizes, got {list(input_shape)}")
        self.name = name
        self._graphs: OrderedDict[str, nx.DiGraph] = OrderedDict()

    def module(self, arch: Mapping[str, Any]) -> Any:
        """The user's network for ``arch``."""
        return self.make({v.name: arch[v.name] for v in self.variables})

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        return json.dumps({v.name: arch[v.name] for v in self.variables}, sort_keys=True)

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        import torch

        self.encode(arch)  # validates every decision, naming the variable
        key = self.arch_hash(arch)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            example = torch.randn(1, *self.input_shape)
        graph = from_torch(self.module(arch), (example,), name=f"{self.name}:{self.arch_id(arch)}")
        if self.spec is not None:  # proxies build make(arch) itself, in any process
            graph.graph["torch_module"] = {"factory": self.spec, "arch": json.loads(key)}
        self._graphs[key] = graph
        if len(self._graphs) > CACHE_SIZE:
            self._graphs.popitem(last=False)
        return graph
