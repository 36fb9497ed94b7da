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
    tracer = "eager"                   # the default; or "fx", or "export" (the reference)

    [space.choices]
    depth = [2, 3, 4]
    width = [16, 32, 64]

or, where the module declares many choices, ``choices = "mylab.models:CHOICES"`` (a dict of
lists). A factory module beside the config file is importable, as a plugin's is.

In Python: ``TorchSpace(make, {"depth": [2, 3, 4]}, (3, 32, 32))`` with any callable.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from dse.graph import canonical_hash, from_torch
from dse.graph.tracers import TRACERS, TracerFallback
from dse.registry import SPACES
from dse.space import Choice, SearchSpace, SpaceError

#: graphs kept per space (a search revisits designs; an LRU bound keeps memory flat)
CACHE_SIZE = 4096


def load_object(spec: str, field: str = "factory", what: str = "function") -> Any:
    """The object ``"module:name"`` names (importing the module runs its code); errors name
    ``field``."""
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name:
        raise SpaceError(f"{field}: expected 'module:{what}', got {spec!r}")
    path = Path(module)
    if path.suffix == ".py" or len(path.parts) > 1:  # a file, not a module: say how to name it
        raise SpaceError(
            f"{field}: {spec!r} names a file; give its module, '{path.stem}:{name}', and its "
            f"folder, {str(path.parent)!r}, as --plugin-dir (a config: [run] plugin_dirs)"
        )
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SpaceError(f"{field}: cannot load {spec!r}: {type(exc).__name__}: {exc}") from None


def load_factory(spec: str) -> Callable[[dict[str, Any]], Any]:
    """The function ``"module:function"`` names."""
    found = load_object(spec)
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
        choices: Mapping[str, list] | str,
        input_shape: list[int] | tuple[int, ...],
        name: str = "torch",
        tracer: str = "eager",
    ):
        self.spec = factory if isinstance(factory, str) else None
        self.make = load_factory(factory) if isinstance(factory, str) else factory
        if isinstance(choices, str):  # "module:NAME": a dict the user's module declares
            choices = load_object(choices, "choices", "NAME")
        if not isinstance(choices, Mapping) or not choices:
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
        if tracer not in TRACERS:
            raise SpaceError(f"tracer: expected one of {', '.join(TRACERS)}, got {tracer!r}")
        #: one recorded forward pass by default (the same graphs as torch.export, a tenth to a
        #: fortieth of its time); a module it cannot read is traced by export instead, with a
        #: TracerFallback warning
        self.tracer = tracer
        #: decisions (JSON) -> (imported graph, its canonical hash), least recently used first
        self._graphs: OrderedDict[str, tuple[nx.DiGraph, str]] = OrderedDict()

    def module(self, arch: Mapping[str, Any]) -> Any:
        """The user's network for ``arch``."""
        return self.make({v.name: arch[v.name] for v in self.variables})

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        """The imported graph's canonical hash: designs whose modules import to the same graph
        are one design, evaluated once (an elastic space's decisions for blocks it does not
        build make no difference)."""
        return self._imported(arch)[1]

    def identify(self, arch: Mapping[str, Any]) -> tuple[str, nx.DiGraph]:
        graph, digest = self._imported(arch)
        return digest, graph

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return self._imported(arch)[0]

    def _imported(self, arch: Mapping[str, Any]) -> tuple[nx.DiGraph, str]:
        """(graph, canonical hash) of ``arch``: ``make(arch)`` imported once, then cached."""
        import torch

        self.encode(arch)  # validates every decision, naming the variable
        key = json.dumps({v.name: arch[v.name] for v in self.variables}, sort_keys=True)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            example = torch.randn(1, *self.input_shape)
        name = f"{self.name}:{self.arch_id(arch)}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph = from_torch(self.module(arch), (example,), name=name, tracer=self.tracer)
        for w in caught:  # after one fallback, trace with the tracer that worked, warned once
            if isinstance(w.message, TracerFallback):
                self.tracer = w.message.tracer
            warnings.warn(w.message, stacklevel=2)
        if self.spec is not None:  # proxies build make(arch) itself, in any process
            graph.graph["torch_module"] = {"factory": self.spec, "arch": json.loads(key)}
        self._graphs[key] = graph, canonical_hash(graph)
        if len(self._graphs) > CACHE_SIZE:
            self._graphs.popitem(last=False)
        return self._graphs[key]
