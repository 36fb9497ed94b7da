"""A kernel-stream executor (simpy): one GPU running an op graph or an LLM step as kernels.

The host launches kernels in program order, paying each kernel's launch overhead; the GPU runs
the kernels of one stream in order, kernels of different streams concurrently once their inputs
are ready. Concurrent kernels are assumed not to slow each other (small kernels that leave most
SMs idle, the case streams are used for); treat multi-stream results as a lower bound.

* ``async_launch=False`` (eager PyTorch at batch 1, the calibrated default): the host waits for
  each kernel before launching the next, so the latency is exactly the analytic sum
  ``sum(launch + device seconds)`` of :class:`~dse.simulators.gpu.kernels.GraphCoster`.
* ``async_launch=True``: the host runs ahead (CUDA's asynchronous launches, CUDA graphs when
  ``launch_s`` is small); launch overhead hides behind device time.

Returns a timeline (one row per kernel), the latency and the device utilisation (fraction of
the latency with at least one kernel running).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
import simpy

from dse.simulators.gpu.kernels import GraphCoster


@dataclass
class Kernel:
    name: str
    device_s: float  # execution time on the GPU
    launch_s: float  # host time to launch it (all of a node's kernels)
    stream: int = 0
    deps: tuple[int, ...] = field(default_factory=tuple)  # indices of kernels it waits for


@dataclass
class StreamTrace:
    timeline: pd.DataFrame  # name, stream, launched_s, start_s, end_s
    latency_s: float
    utilisation: float


def graph_kernels(coster: GraphCoster, graph: nx.DiGraph, streams: int = 1) -> list[Kernel]:
    """The kernels of ``graph`` in topological order; with ``streams`` > 1 the k-th successor of a
    node goes to stream ``(stream of node + k) % streams`` so parallel branches overlap."""
    if streams < 1:
        raise ValueError(f"streams: must be >= 1, got {streams}")
    rows = coster.kernels(graph).set_index("node")
    order = list(nx.topological_sort(graph))
    stream_of: dict = {}
    kernels: list[Kernel] = []
    producers: dict = {}  # node -> indices of the kernels whose completion makes its output ready
    for n in order:
        preds = list(graph.predecessors(n))
        if preds and n not in stream_of:
            first = preds[0]
            stream_of[n] = (
                stream_of.get(first, 0) + list(graph.successors(first)).index(n)
            ) % streams
        deps = tuple(sorted({d for p in preds for d in producers[p]}))
        r = rows.loc[n]
        if int(r["kernels"]) == 0:  # a view: its readers wait for whatever produced its input
            producers[n] = deps
            continue
        kernels.append(
            Kernel(
                str(n),
                float(r["seconds"] - r["launch_s"]),
                float(r["launch_s"]),
                stream_of.get(n, 0),
                deps,
            )
        )
        producers[n] = (len(kernels) - 1,)
    return kernels


def run_kernels(kernels: Sequence[Kernel], async_launch: bool = False) -> StreamTrace:
    """Simulate ``kernels`` (see the module docstring)."""
    env = simpy.Environment()
    n_streams = 1 + max((k.stream for k in kernels), default=0)
    streams = [simpy.Resource(env, capacity=1) for _ in range(n_streams)]
    launched = [env.event() for _ in kernels]
    done = [env.event() for _ in kernels]
    times = np.zeros((len(kernels), 3))

    def kernel(i: int, k: Kernel):
        yield launched[i]
        if k.deps:
            yield simpy.AllOf(env, [done[d] for d in k.deps])
        with streams[k.stream].request() as slot:
            yield slot
            times[i, 1] = env.now
            yield env.timeout(k.device_s)
            times[i, 2] = env.now
        done[i].succeed()

    def host():
        for i, k in enumerate(kernels):
            yield env.timeout(k.launch_s)
            times[i, 0] = env.now
            launched[i].succeed()
            if not async_launch:
                yield done[i]

    for i, k in enumerate(kernels):
        env.process(kernel(i, k))
    env.process(host())
    env.run()
    timeline = pd.DataFrame(
        {
            "name": [k.name for k in kernels],
            "stream": [k.stream for k in kernels],
            "launched_s": times[:, 0],
            "start_s": times[:, 1],
            "end_s": times[:, 2],
        }
    )
    latency = float(times[:, 2].max()) if len(kernels) else 0.0
    return StreamTrace(
        timeline, latency, _busy(times[:, 1], times[:, 2]) / latency if latency else 0.0
    )


def _busy(start: np.ndarray, end: np.ndarray) -> float:
    """Length of the union of the intervals [start, end)."""
    order = np.argsort(start)
    total, cur_s, cur_e = 0.0, None, None
    for s, e in zip(start[order], end[order]):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + ((cur_e - cur_s) if cur_e is not None else 0.0)
