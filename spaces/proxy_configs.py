"""Proxy configuration spaces (dissertation 4.2.2 and 3.3.2) as dse search spaces, so DPS and
GenNAS's task search are ordinary ``dse run`` searches: REA over the space, fitness = Spearman
rho of the configured proxy on a few benchmarked architectures (``proxy_fitness``).

* ``eproxy_config``: transform and barrier kernels {1, 3, 7}, c_mid 16..512 (x2 steps), target
  features {net, wave_l, wave_m, wave_h, dot} each on or off (random samples include each with
  p = 0.2, at least one), augment coefficient 0.5..2 (0.5 steps), lr 0.5..1.5 (0.1 steps), four
  initialisations (Kaiming/Xavier x normal/uniform), the stage whose output is regressed (last,
  or before the first or second downsample) and the FLOPs weight alpha -0.5..0.5 (0.1 steps).
* ``gennas_task``: per stage (3), each signal basis on or off (Sin1D/Sin2D x L/M/H, Dot, GDot,
  Resize), channels per stage, Dot density, input noise and learning rate.

An architecture here is a proxy configuration; its "graph" is an empty networkx graph carrying the
proxy's name and the configuration's parameters (``graph.graph["proxy"]``, ``["decisions"]``):
no provider but ``proxy_fitness`` reads it, and the space knows nothing of how a proxy trains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from dse.registry import SPACES
from dse.space import PROXY_CONFIG_GRAPH, Choice, SearchSpace

EPROXY_FEATURES = ("net", "wave_l", "wave_m", "wave_h", "dot")
GENNAS_SIGNALS = (
    "sin1d_l",
    "sin1d_m",
    "sin1d_h",
    "sin2d_l",
    "sin2d_m",
    "sin2d_h",
    "dot",
    "gdot",
    "resize",
)


def _steps(lo: float, hi: float, step: float) -> tuple[float, ...]:
    return tuple(round(lo + k * step, 10) for k in range(int(round((hi - lo) / step)) + 1))


class ProxyConfigSpace(SearchSpace):
    """Shared behaviour: config hashing, an empty graph, on/off flags sampled with ``p_on``."""

    graph_kind = PROXY_CONFIG_GRAPH
    #: the proxy whose configurations these are (``proxy_fitness`` scores them with it)
    proxy = ""
    flags: tuple[str, ...] = ()
    p_on = 0.5

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return nx.DiGraph(proxy_config=dict(arch), proxy=self.proxy, decisions=self.decisions(arch))

    def decisions(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The proxy's parameters that ``arch`` stands for (JSON values: lists, not tuples)."""
        raise NotImplementedError

    def arch_hash(self, arch: Mapping[str, Any]) -> str:
        return hashlib.sha1(
            json.dumps(self.canonical(arch), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]

    def canonical(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(arch)

    def sample_encodings(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = super().sample_encodings(rng, n)
        names = [v.name for v in self.variables]
        for flag in self.flags:
            j = names.index(flag)
            x[:, j] = (rng.random(n) < self.p_on).astype(
                np.int64
            )  # Choice((False, True)): index = value
        return x


@SPACES.register("eproxy_config")
class EproxyConfigSpace(ProxyConfigSpace):
    """Eproxy's configuration space for DPS (dissertation 4.2.2)."""

    name = "eproxy_config"
    proxy = "eproxy"
    flags = tuple(f"feature_{f}" for f in EPROXY_FEATURES)
    p_on = 0.2

    def __init__(self, iterations: int = 10, batch_size: int = 16, target_channels: int = 16):
        self.iterations, self.batch_size, self.target_channels = (
            iterations,
            batch_size,
            target_channels,
        )
        self.variables = (
            Choice("transform_kernel", (1, 3, 7)),
            Choice("barrier_kernel", (1, 3, 7)),
            Choice("c_mid", (16, 32, 64, 128, 256, 512)),
            *(Choice(f, (False, True)) for f in self.flags),
            Choice("augment", (0.5, 1.0, 1.5, 2.0)),
            Choice("lr", _steps(0.5, 1.5, 0.1)),
            Choice(
                "init", ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")
            ),
            Choice("stage", (-1, 0, 1)),
            Choice("alpha", _steps(-0.5, 0.5, 0.1)),
        )

    def features(self, arch: Mapping[str, Any]) -> tuple[str, ...]:
        chosen = tuple(f for f in EPROXY_FEATURES if arch[f"feature_{f}"])
        return chosen or ("net",)  # no feature selected: the untrained CNN's, Eproxy's default

    def canonical(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        d = {k: v for k, v in arch.items() if not k.startswith("feature_")}
        d["features"] = list(self.features(arch))
        return d

    def decisions(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "transform_kernel": arch["transform_kernel"],
            "barrier_kernel": arch["barrier_kernel"],
            "c_mid": arch["c_mid"],
            "features": list(self.features(arch)),
            "target_channels": self.target_channels,
            "augment": arch["augment"],
            "lr": arch["lr"],
            "iterations": self.iterations,
            "batch_size": self.batch_size,
            "init": arch["init"],
            "stage": arch["stage"],
            "alpha": arch["alpha"],
        }

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        c = self.canonical(arch)
        return (
            f"t{c['transform_kernel']}b{c['barrier_kernel']}c{c['c_mid']}-{'+'.join(c['features'])}"
            f"-x{c['augment']}-lr{c['lr']}-{c['init']}-s{c['stage']}-a{c['alpha']}"
        )


@SPACES.register("gennas_task")
class GenNASTaskSpace(ProxyConfigSpace):
    """GenNAS's proxy-task space (dissertation 3.3.2): signals per stage, channels, noise, lr."""

    name = "gennas_task"
    proxy = "gennas"
    p_on = 0.25

    def __init__(self, stages: int = 3, iterations: int = 100, batch_size: int = 16):
        self.n_stages, self.iterations, self.batch_size = stages, iterations, batch_size
        self.flags = tuple(f"s{i}_{s}" for i in range(stages) for s in GENNAS_SIGNALS)
        self.variables = (
            *(Choice(f, (False, True)) for f in self.flags),
            Choice("channels", (16, 32, 64, 128)),
            Choice("density", (0.5, 1.0)),
            Choice("noise", (0.0, 0.05, 0.1, 0.2)),
            Choice("lr", (0.05, 0.1, 0.2)),
        )

    def stages(self, arch: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
        chosen = tuple(
            tuple(s for s in GENNAS_SIGNALS if arch[f"s{i}_{s}"]) for i in range(self.n_stages)
        )
        return chosen if any(chosen) else ((),) * (self.n_stages - 1) + (("dot",),)  # GenNAS-single

    def canonical(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        d = {k: v for k, v in arch.items() if k not in self.flags}
        d["stages"] = [list(s) for s in self.stages(arch)]
        return d

    def decisions(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "stages": [list(s) for s in self.stages(arch)],
            "channels": arch["channels"],
            "density": arch["density"],
            "noise": arch["noise"],
            "lr": arch["lr"],
            "iterations": self.iterations,
            "batch_size": self.batch_size,
        }

    def arch_id(self, arch: Mapping[str, Any]) -> str:
        c = self.canonical(arch)
        stages = "/".join("+".join(s) or "-" for s in c["stages"])
        return f"{stages}-c{c['channels']}-d{c['density']}-n{c['noise']}-lr{c['lr']}"
