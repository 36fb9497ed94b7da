"""The Medusa simulator as a metric provider: a candidate tree and serving setting -> speedup.

It reads a graph of the ``medusa`` space (the candidate tree, with ``model``, ``device``,
``batch``, ``heads`` and ``epsilon`` in ``graph.graph``) and returns, at context length ``seq``:

* ``medusa_acceleration``: tokens per step (greedy: the closed form of 6.3.3.3; typical
  acceptance: Monte Carlo on the fitted token model, see acceptance.py);
* ``medusa_overhead``, ``medusa_speedup``: step latency over vanilla decoding's, and acceleration
  / overhead (6.4.1.1), with step latencies from the calibrated GPU roofline;
* ``medusa_tokens_per_s`` (all requests of the batch), ``medusa_step_ms``;
* ``medusa_memory_gb`` (weights, Medusa heads, KV cache of the batch) and ``medusa_feasible``
  (1 when it fits ``memory_fraction`` of the device);
* ``medusa_epsilon``: the typical-acceptance threshold, the quality proxy to maximise.

Config::

    [simulators.medusa]
    seq = 1024
    temperature = 0.7            # sampling temperature for typical acceptance (epsilon > 0)
    accuracy_model = "vicuna-7b-v1.3"
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import networkx as nx

from dse.catalogs.llms import get_llm
from dse.catalogs.medusa_heads import load_head_accuracy
from dse.catalogs.medusa_trees import MEDUSA_TREE_GRAPH, Tree, expected_acceptance
from dse.fidelity import Fidelity
from dse.provider import MetricProvider
from dse.registry import SIMULATORS
from dse.simulators.gpu.llm import LlmWorkload, StepShape
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.medusa.acceptance import Acceptance, acceptance_draws, longest_accepted
from dse.simulators.medusa.decode import SpeedupModel
from dse.simulators.medusa.verify import TreeShape
from dse.space import SearchSpace


def tree_of(graph: nx.DiGraph) -> Tree:
    """The candidate tree stored in a graph made by
    :func:`~dse.catalogs.medusa_trees.to_networkx`."""
    try:
        return Tree(tuple(d["path"] for n, d in graph.nodes(data=True) if n != 0))
    except KeyError:
        raise ValueError(
            "the medusa simulator needs a graph of the 'medusa' space (nodes with a 'path')"
        ) from None


@SIMULATORS.register("medusa")
class MedusaSimulator(MetricProvider):
    """Medusa decoding speedup, throughput and memory on the GPU roofline."""

    name = "medusa"
    accepts = (MEDUSA_TREE_GRAPH,)
    metrics = (
        "medusa_acceleration",
        "medusa_overhead",
        "medusa_speedup",
        "medusa_tokens_per_s",
        "medusa_step_ms",
        "medusa_memory_gb",
        "medusa_feasible",
        "medusa_epsilon",
    )
    units = {
        "medusa_acceleration": "tokens/step",
        "medusa_overhead": "x",
        "medusa_speedup": "x",
        "medusa_tokens_per_s": "tokens/s",
        "medusa_step_ms": "ms",
        "medusa_memory_gb": "GB",
        "medusa_feasible": "0/1",
        "medusa_epsilon": "threshold",
    }
    cost = 1e-3

    def __init__(
        self,
        seq: int = 1024,
        temperature: float = 0.7,
        delta: float | None = None,
        accuracy_model: str = "vicuna-7b-v1.3",
        accuracy_file: str | None = None,
        include_failed: bool = False,
        calibration: str = "auto",
        devices_file: str | None = None,
        models_file: str | None = None,
        memory_fraction: float = 0.9,
        samples: int = 4000,
        seed: int = 0,
    ):
        if seq < 1:
            raise ValueError(f"seq: must be >= 1, got {seq}")
        if temperature <= 0:
            raise ValueError(
                "temperature: must be > 0 (epsilon = 0 in the space selects greedy), got "
                f"{temperature}"
            )
        if not 0 < memory_fraction <= 1:
            raise ValueError(f"memory_fraction: must be in (0, 1], got {memory_fraction}")
        self.seq, self.temperature, self.delta = seq, temperature, delta
        self.accuracy = load_head_accuracy(accuracy_model, accuracy_file, include_failed)
        self.calibration, self.devices_file, self.models_file = (
            calibration,
            devices_file,
            models_file,
        )
        self.memory_fraction, self.samples, self.seed = memory_fraction, samples, seed
        self._models: dict[tuple[str, str, int], SpeedupModel] = {}

    def fidelity(self) -> dict[str, Fidelity]:
        """What backs each metric: step times come from the GPU roofline of the space's
        device (its calibration's error is the gpu simulator's), acceptance from the head
        accuracy table; neither is validated against end-to-end decoding here."""
        timing = Fidelity(
            note="GPU roofline of the space's device, its calibration's error; the whole step "
            "checked against table 6.1 (benchmarks/medusa_sim.py), not measured here"
        )
        accepted = Fidelity(
            note="expected accepted tokens from the head accuracy table; not validated "
            "against decoding"
        )
        analytic = Fidelity(note="analytic count, not validated against measurement")
        out = dict.fromkeys(
            ("medusa_overhead", "medusa_step_ms", "medusa_tokens_per_s", "medusa_speedup"),
            timing,
        )
        out["medusa_acceleration"] = accepted
        out["medusa_memory_gb"] = out["medusa_feasible"] = analytic
        return out

    def speedup_model(self, model: str, device: str, heads: int) -> SpeedupModel:
        key = (model, device, heads)
        if key not in self._models:
            cost = GpuCostModel.create(device, self.calibration, self.devices_file)
            self._models[key] = SpeedupModel(
                LlmWorkload(get_llm(model, self.models_file), cost), heads
            )
        return self._models[key]

    def acceptance(self, epsilon: float) -> Acceptance:
        """Greedy at epsilon 0, else typical acceptance with delta = sqrt(epsilon) (6.4.2.4)."""
        if epsilon == 0:
            return Acceptance("greedy")
        delta = math.sqrt(epsilon) if self.delta is None else self.delta
        return Acceptance("typical", self.temperature, epsilon, delta)

    def tokens_per_step(self, tree: Tree, heads: int, epsilon: float) -> float:
        acc = self.accuracy.truncated(min(heads, self.accuracy.heads))
        rule = self.acceptance(epsilon)
        if rule.closed_form:
            return expected_acceptance(tree, acc)
        draws = acceptance_draws(acc, rule, self.samples, max(10, acc.ranks), self.seed)
        return float(longest_accepted(tree, draws).mean())

    def evaluate(
        self, graph: nx.DiGraph, arch: Mapping[str, Any], space: SearchSpace
    ) -> dict[str, float]:
        g = graph.graph
        missing = [k for k in ("model", "device", "heads", "batch", "epsilon") if k not in g]
        if missing:
            raise ValueError(
                f"graph lacks {missing}: the medusa simulator needs a graph of the 'medusa' space"
            )
        tree = tree_of(graph)
        heads, batch, epsilon = int(g["heads"]), int(g["batch"]), float(g["epsilon"])
        m = self.speedup_model(g["model"], g["device"], heads)
        acceleration = self.tokens_per_step(tree, heads, epsilon)
        shape = StepShape.phase("parallel_decode", batch, self.seq, tree.candidates)
        step = float(m.step_seconds(shape, TreeShape.of(tree)))
        overhead = step / float(m.vanilla_seconds(batch, self.seq))
        c = m.workload.config
        head_bytes = heads * c.hidden * (c.hidden + c.vocab) * c.weight_bits / 8
        memory = float(m.workload.memory_bytes(batch, self.seq + tree.candidates)) + head_bytes
        return {
            "medusa_acceleration": acceleration,
            "medusa_overhead": overhead,
            "medusa_speedup": acceleration / overhead,
            "medusa_tokens_per_s": batch * acceleration / step,
            "medusa_step_ms": step * 1e3,
            "medusa_memory_gb": memory / 1e9,
            "medusa_feasible": float(
                memory <= self.memory_fraction * m.workload.model.device.memory_bytes
            ),
            "medusa_epsilon": epsilon,
        }
