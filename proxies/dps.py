"""Proxy search (DPS, dissertation 4.2.2 and listing 4.2; GenNAS task search, 3.3.2) and saved,
versioned proxy configurations.

DPS is an ordinary dse search: REA (population 40, sample 10) over a proxy configuration space
(``eproxy_config`` or ``gennas_task``), with the ``proxy_fitness`` provider as evaluator: it
scores a configuration by the Spearman rho between the configured proxy and the ground truth of a
few benchmarked architectures (20 by default, drawn from a table). The search's Parquet records
are the configuration history. Networks are built once per architecture and copied for each
configuration.

``dse dps`` runs it and saves the best configuration under a name, as JSON
``<store>/<name>/v<k>.json`` (store: ``results/proxies`` or ``$DSE_PROXY_STORE``), with the
architectures it was fitted on; ``[proxies.eproxy] saved = "name"`` (or ``"name@v2"``) and
``dse proxy-eval --proxies eproxy@name`` use it like any proxy. ``--workers``/``--scheduler`` score
configurations on Dask and ``--resume RUN`` continues a killed search (hours on a CPU) where it
stopped.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from dse.graph import totals
from dse.provider import MetricProvider
from dse.proxies.eproxy import EproxyConfig, eproxy_loss, flops_factor, largest_macs
from dse.proxies.gennas import GenNASConfig, gennas_loss
from dse.proxies.tabular import read_keyed_column
from dse.proxies.zero_cost import io_shapes
from dse.registry import PROXIES, SPACES
from dse.space import PROXY_CONFIG_GRAPH, SearchSpace
from dse.training.data import image_batch
from dse.training.network import build_network


def _score_eproxy(decisions, graph, images, seed, net, macs, max_macs) -> float:
    """A configured Eproxy's score of one architecture (higher is better): minus the
    regression loss, times the FLOPs factor (dissertation 4.2.2)."""
    cfg = EproxyConfig(**decisions)
    loss = eproxy_loss(graph, cfg, images, seed=seed, net=net)
    return -loss * flops_factor(macs, max_macs(), cfg.alpha)


def _score_gennas(decisions, graph, images, seed, net, macs, max_macs) -> float:
    """A configured GenNAS task's score of one architecture (higher is better; no FLOPs term)."""
    return -gennas_loss(graph, GenNASConfig(**decisions), images, seed=seed, net=net)


#: proxy -> (its configuration class, the score of one architecture under a configuration)
CONFIGURED: dict[str, tuple[type, Callable[..., float]]] = {
    "eproxy": (EproxyConfig, _score_eproxy),
    "gennas": (GenNASConfig, _score_gennas),
}


def config_params(proxy: str, decisions: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``proxy``'s configuration for a proxy configuration space's
    ``decisions`` (defaults filled in; lists, not tuples): what ``dse dps`` saves."""
    cfg = CONFIGURED[proxy][0](**decisions)
    return {
        k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
        for k, v in vars(cfg).items()
    }


def read_truth(
    file: str | Path,
    column: str,
    key: str | list[str] = "arch_str",
    field: str = "truth",
    columns_field: str = "column/key",
) -> pd.DataFrame:
    """A benchmark table's rows as ``arch_text`` (the key columns joined by ``|``) and ``truth``;
    errors name ``field`` (the file) and ``columns_field`` (a missing column)."""
    table = read_keyed_column(file, column, key, field, columns_field)
    return table.rename(columns={"value": "truth"})


def parse_arch(space: SearchSpace, text: str) -> dict:
    """An architecture from a table key (NAS-Bench-201 arch_str, NAS-Bench-101 ``ADJ|OPS``)."""
    return space.parse(text)


def fitness_rows(n_rows: int, archs: int, sample_seed: int) -> np.ndarray:
    """Which rows of a table of ``n_rows`` the search is fitted on (sorted, seeded)."""
    if not 2 <= archs <= n_rows:
        raise ValueError(f"archs: must be in 2..{n_rows}, got {archs}")
    return np.sort(np.random.default_rng(sample_seed).choice(n_rows, size=archs, replace=False))


@PROXIES.register("proxy_fitness")
class ProxyFitness(MetricProvider):
    """Spearman rho of a proxy configuration on a few benchmarked architectures (DPS fitness)."""

    name = "proxy_fitness"
    metrics = ("rho", "proxy_s")
    cost = 100.0
    accepts = (PROXY_CONFIG_GRAPH,)
    units = {"rho": "Spearman rho", "proxy_s": "s"}

    def __init__(
        self,
        truth: str,
        column: str,
        space: str = "nasbench201",
        key: str | list[str] = "arch_str",
        archs: int = 20,
        sample_seed: int = 0,
        seed: int = 0,
        data: str = "images",
        threads: int = 1,
        space_params: dict[str, Any] | None = None,
    ):
        table = read_truth(truth, column, key)
        self.table = table.iloc[fitness_rows(len(table), archs, sample_seed)].reset_index(drop=True)
        self.target = SPACES.create(space, **(space_params or {}))
        self.archs = [parse_arch(self.target, t) for t in self.table.arch_text]
        self.graphs = [self.target.to_graph(a) for a in self.archs]
        self.macs = [float(totals(g).macs) for g in self.graphs]
        self.seed, self.data, self.threads = seed, data, threads
        self._images: dict[tuple, torch.Tensor] = {}
        self._nets: dict[tuple[int, int], torch.nn.Module] = {}

    @functools.cached_property
    def max_macs(self) -> float:
        """The target space's largest MACs (Eproxy's FLOPs factor), found on first use."""
        return largest_macs(self.target)

    @property
    def arch_ids(self) -> list[str]:
        return [self.target.arch_id(a) for a in self.archs]

    def _net(self, i: int) -> torch.nn.Module:
        key = (i, self.seed)
        if key not in self._nets:  # built once, copied per configuration
            self._nets[key] = build_network(self.graphs[i], seed=self.seed)
        return copy.deepcopy(self._nets[key])

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        proxy, decisions = graph.graph.get("proxy"), graph.graph.get("decisions")
        if proxy not in CONFIGURED or decisions is None:
            raise ValueError(
                f"proxy_fitness: space {space.name!r} is not a proxy configuration space "
                f"(eproxy_config, gennas_task)"
            )
        score = CONFIGURED[proxy][1]
        batch = int(decisions["batch_size"])
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            values, start = [], time.perf_counter()
            for i, g in enumerate(self.graphs):
                shape, _ = io_shapes(g)
                if (shape, batch) not in self._images:
                    self._images[(shape, batch)] = image_batch(batch, shape, self.seed, self.data)
                values.append(
                    score(
                        decisions,
                        g,
                        self._images[(shape, batch)],
                        self.seed,
                        self._net(i),
                        self.macs[i],
                        lambda: self.max_macs,
                    )
                )
            seconds = (time.perf_counter() - start) / len(self.graphs)
        finally:
            torch.set_num_threads(previous)
        rho = pd.Series(values).corr(self.table.truth, method="spearman")
        return {"rho": float(rho) if np.isfinite(rho) else -1.0, "proxy_s": seconds}
