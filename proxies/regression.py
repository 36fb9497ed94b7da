"""What the few-shot regression proxies (Eproxy, GenNAS) share as metric providers: one image
batch per input shape, a torch thread count, and configurations saved by ``dse dps --name``."""

from __future__ import annotations

from typing import Any

import networkx as nx
import torch

from dse.provider import MetricProvider
from dse.proxies.saved import saved_params
from dse.proxies.zero_cost import io_shapes
from dse.training.data import SOURCES, image_batch


class RegressionProxy(MetricProvider):
    """Base of the ``eproxy`` and ``gennas`` providers; subclasses set ``kind`` and ``config``
    and implement :meth:`loss`."""

    kind = ""

    def _setup(self, seed: int, data: str, threads: int, metric: str) -> None:
        if threads < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        if data not in SOURCES:
            raise ValueError(f"data: {data!r} is not allowed; allowed values: {list(SOURCES)}")
        self.seed, self.data, self.threads = seed, data, threads
        self.metrics = (metric,)
        self.units = {metric: "score"}
        self._images: dict[tuple, torch.Tensor] = {}

    def saved_params(self, saved: str) -> dict[str, Any]:
        """The parameters of a saved configuration of this proxy (``name`` or ``name@vK``)."""
        return saved_params(saved, self.kind)

    def loss(self, graph: nx.DiGraph, images: torch.Tensor) -> float:
        raise NotImplementedError

    def trained_loss(self, graph: nx.DiGraph) -> float:
        """:meth:`loss` on the batch of the graph's input shape, with ``threads`` torch threads."""
        shape, _ = io_shapes(graph)
        if shape not in self._images:
            self._images[shape] = image_batch(self.config.batch_size, shape, self.seed, self.data)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.loss(graph, self._images[shape])
        finally:
            torch.set_num_threads(previous)
