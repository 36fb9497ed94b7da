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

import argparse
import copy
import functools
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import torch

from dse.graph import totals
from dse.proxies.data import image_batch
from dse.proxies.eproxy import largest_macs
from dse.proxies.network import build_network
from dse.proxies.proxy_eval import space_param_values
from dse.proxies.proxy_spaces import PROXY_CONFIG_GRAPH, decisions
from dse.proxies.saved import save_proxy
from dse.proxies.tabular import read_keyed_column
from dse.proxies.zero_cost import io_shapes
from dse.registry import COMMANDS, PROXIES, SPACES
from dse.space import SearchSpace


def read_truth(file: str | Path, column: str, key: str | list[str] = "arch_str") -> pd.DataFrame:
    """A benchmark table's rows as ``arch_text`` (the key columns joined by ``|``) and ``truth``."""
    return read_keyed_column(file, column, key, field="truth").rename(columns={"value": "truth"})


def parse_arch(space: SearchSpace, text: str) -> dict:
    """An architecture from a table key (NAS-Bench-201 arch_str, NAS-Bench-101 ``ADJ|OPS``)."""
    return space.parse(text)


def fitness_rows(n_rows: int, archs: int, sample_seed: int) -> np.ndarray:
    """Which rows of a table of ``n_rows`` the search is fitted on (sorted, seeded)."""
    if not 2 <= archs <= n_rows:
        raise ValueError(f"archs: must be in 2..{n_rows}, got {archs}")
    return np.sort(np.random.default_rng(sample_seed).choice(n_rows, size=archs, replace=False))


def add_labelled_arguments(p: argparse.ArgumentParser) -> None:
    """The few labelled architectures a fit sees (``dse dps``, ``dse proxy-fit``): the table,
    its key and ground-truth columns, their space, and the seeded draw of :func:`fitness_rows`."""
    p.add_argument("--truth", required=True, help="CSV of benchmarked architectures")
    p.add_argument("--target", default="val_acc_cifar10", help="ground-truth column")
    p.add_argument("--space", default="nasbench201", help="the architectures' space")
    p.add_argument(
        "--space-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the architectures' space, e.g. task=jigsaw (repeatable)",
    )
    p.add_argument("--arch-column", default="arch_str")
    p.add_argument("--ops-column", default=None, help="second key column (nasbench101: ops)")
    p.add_argument("--archs", type=int, default=20, help="labelled architectures fitted on")
    p.add_argument("--sample-seed", type=int, default=0, help="which architectures (seeded draw)")


@PROXIES.register("proxy_fitness")
class ProxyFitness:
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
        score = getattr(space, "score", None)
        if score is None:
            raise ValueError(
                f"proxy_fitness: space {space.name!r} is not a proxy configuration space "
                f"(eproxy_config, gennas_task)"
            )
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            values, start = [], time.perf_counter()
            for i, g in enumerate(self.graphs):
                shape, _ = io_shapes(g)
                batch = getattr(space, "batch_size", 16)
                if (shape, batch) not in self._images:
                    self._images[(shape, batch)] = image_batch(batch, shape, self.seed, self.data)
                values.append(
                    score(
                        arch,
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


# -- dse dps
# -----------------------------------------------------------------------------------------

#: proxy -> its configuration space
CONFIG_SPACES = {"eproxy": "eproxy_config", "gennas": "gennas_task"}


@COMMANDS.register("dps")
class DpsCommand:
    """Proxy search (DPS / GenNAS task search): REA over a proxy's configurations, fitness = rho."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--proxy", default="eproxy", choices=sorted(CONFIG_SPACES))
        add_labelled_arguments(p)
        p.add_argument("--population", type=int, default=40)
        p.add_argument("--sample", type=int, default=10)
        p.add_argument("--budget", type=int, default=200, help="configurations evaluated")
        p.add_argument(
            "--iterations",
            type=int,
            default=None,
            help="training steps per architecture "
            "(default: the proxy's, 10 for Eproxy, 100 for GenNAS)",
        )
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--name", default=None, help="save the best configuration under this name")
        p.add_argument("--output", default="results")
        p.add_argument("--quiet", action="store_true")
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="score configurations on a Dask LocalCluster of this many worker processes",
        )
        p.add_argument(
            "--scheduler", default=None, help="... or on a running Dask scheduler (address)"
        )
        p.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="children bred per REA step and scored together (default: the --workers "
            "count; 1 with --scheduler or in-process); "
            "it shapes the search, so keep it to reproduce a run on another cluster",
        )
        p.add_argument(
            "--resume",
            default=None,
            metavar="RUN",
            help="continue an interrupted dps run (folder or id) with the same arguments: the "
            "seeded search replays its finished configurations without scoring them again",
        )

    def run(self, args: argparse.Namespace) -> int:
        import dse

        key = args.arch_column if not args.ops_column else [args.arch_column, args.ops_column]
        space_params = {} if args.iterations is None else {"iterations": args.iterations}
        target_params = space_param_values(args.space_param)
        execution = {
            k: v
            for k, v in (("workers", args.workers), ("scheduler", args.scheduler))
            if v is not None
        }
        batch = args.batch_size if args.batch_size is not None else (args.workers or 1)
        config = {
            "run": {"name": f"dps-{args.proxy}", "seed": args.seed},
            "space": {"name": CONFIG_SPACES[args.proxy], **space_params},
            "proxies": {
                "proxy_fitness": {
                    "truth": args.truth,
                    "column": args.target,
                    "space": args.space,
                    "key": key,
                    "archs": args.archs,
                    "sample_seed": args.sample_seed,
                    **({"space_params": target_params} if target_params else {}),
                }
            },
            "objectives": [{"metric": "rho", "direction": "max"}],
            "search": {
                "driver": "rea",
                "population_size": args.population,
                "sample_size": args.sample,
                "max_evaluations": args.budget,
                "batch_size": batch,
                **execution,
            },
        }
        result = dse.run(config, resume=args.resume, output=args.output, progress=not args.quiet)
        df = dse.results.load(result.path)
        ok = df[df.status == "ok"]
        if not len(ok):
            raise RuntimeError(f"no configuration was evaluated successfully; see {result.path}")
        best = ok.loc[ok.rho.idxmax()]
        space = SPACES.create(CONFIG_SPACES[args.proxy], **space_params)
        params = decisions(space, json.loads(best.arch))
        print(
            f"best {args.proxy} configuration: rho {best.rho:.4f} on {args.archs} architectures "
            f"({len(ok)} configurations, {ok.proxy_s.mean():.2f} s per architecture)"
        )
        print(f"  {best.arch_id}")
        if args.name:
            table = read_truth(args.truth, args.target, key)
            texts = table.arch_text.iloc[
                fitness_rows(len(table), args.archs, args.sample_seed)
            ].tolist()
            path = save_proxy(
                args.name,
                args.proxy,
                params,
                {
                    "run": str(result.path),
                    "rho": float(best.rho),
                    "truth": args.truth,
                    "target": args.target,
                    "space": args.space,
                    "space_params": target_params,
                    "key": key,
                    "archs": texts,
                    "configurations": int(len(ok)),
                },
            )
            print(
                f'saved: {path}  (use [proxies.{args.proxy}] saved = "{args.name}", '
                f"or dse proxy-eval --proxies {args.proxy}@{args.name})"
            )
        return 0
