"""Discrete-event execution of FPGA designs (simpy), where timing interactions matter.

* Recursive: layers run in order, each on its shared IP; a layer's off-chip data moves over one
  DDR channel in equal tiles. With double buffering, tile ``k+1`` loads while tile ``k``
  computes (two tile buffers); without it, load and compute alternate. Gives the end-to-end
  latency, per-layer timeline and IP/DDR utilisation. It equals the analytic
  ``recursive.layer_seconds`` sum exactly.
* Pipelined: a stream of frames through one stage per layer, with FIFOs of ``fifo_depth`` frames
  between stages; a stage that finishes a frame waits while its output FIFO is full (a stall).
  Stages move their DDR traffic over one shared channel while they compute. Gives steady-state
  throughput, per-frame latency, pipeline fill time, stalls and utilisation. In steady state its
  throughput equals the analytic ``1 / max(stage, shared DDR)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy


@dataclass
class RecursiveTrace:
    latency_s: float
    layer_start_s: np.ndarray
    layer_end_s: np.ndarray
    ip_utilisation: dict[str, float]  # compute-busy fraction of the latency, per IP
    ddr_utilisation: float


def run_recursive(
    ips: tuple[str, ...],
    index: np.ndarray,
    compute_s: np.ndarray,
    mem_s: np.ndarray,
    *,
    double_buffering: bool = True,
    tiles: int = 16,
    overhead_s: float = 0.0,
) -> RecursiveTrace:
    """Simulate one inference; ``index[l]`` is the IP of layer ``l`` in ``ips``; every layer first
    spends ``overhead_s`` on set-up (control, DMA descriptors) before its first tile."""
    env = simpy.Environment()
    ip_res = [simpy.Resource(env, capacity=1) for _ in ips]
    ddr = simpy.Resource(env, capacity=1)
    busy = np.zeros(len(ips))
    ddr_busy = [0.0]
    n = len(compute_s)
    start, end = np.zeros(n), np.zeros(n)

    def load(m_tile: float):
        with ddr.request() as req:
            yield req
            yield env.timeout(m_tile)
            ddr_busy[0] += m_tile

    def compute(i: int, c_tile: float):
        with ip_res[i].request() as req:
            yield req
            yield env.timeout(c_tile)
            busy[i] += c_tile

    def layer(j: int):
        c_tile, m_tile, i = compute_s[j] / tiles, mem_s[j] / tiles, int(index[j])
        if overhead_s:
            yield env.timeout(overhead_s)
        if m_tile == 0:
            yield from compute(i, compute_s[j])
        elif not double_buffering:
            for _ in range(tiles):
                yield from load(m_tile)
                yield from compute(i, c_tile)
        else:
            free = simpy.Container(env, capacity=2, init=2)  # two tile buffers
            ready = simpy.Store(env)

            def loader():
                for k in range(tiles):
                    yield free.get(1)
                    yield from load(m_tile)
                    yield ready.put(k)

            def worker():
                for _ in range(tiles):
                    yield ready.get()
                    yield from compute(i, c_tile)
                    yield free.put(1)

            env.process(loader())
            yield env.process(worker())

    def program():
        for j in range(n):
            start[j] = env.now
            yield from layer(j)
            end[j] = env.now

    env.process(program())
    env.run()
    total = float(env.now)
    util = {name: float(busy[i] / total) if total > 0 else 0.0 for i, name in enumerate(ips)}
    return RecursiveTrace(total, start, end, util, ddr_busy[0] / total if total > 0 else 0.0)


@dataclass
class PipelineTrace:
    frames: int
    throughput_fps: float  # steady state: while the source still feeds the pipeline
    latency_s: np.ndarray  # per frame, entry to exit
    fill_s: float  # exit time of the first frame
    stall_s: np.ndarray  # per stage: time spent blocked on a full output FIFO
    utilisation: np.ndarray  # per stage: busy fraction of the run

    @property
    def period_s(self) -> float:
        return 1.0 / self.throughput_fps


def run_pipelined(
    compute_s: np.ndarray,
    mem_s: np.ndarray,
    *,
    frames: int = 64,
    fifo_depth: int = 1,
    shared_ddr: bool = True,
) -> PipelineTrace:
    """Stream ``frames`` back-to-back frames through the stages (source never starves).

    Throughput is measured over the later half of the frames that leave before the last frame
    enters (the drain that follows is not steady state), so use ``frames`` well above twice the
    number of stages; with fewer, the pipeline never fills and the figure is optimistic.
    """
    if frames < 2:
        raise ValueError(f"frames: must be >= 2, got {frames}")
    if fifo_depth < 1:
        raise ValueError(f"fifo_depth: must be >= 1, got {fifo_depth}")
    env = simpy.Environment()
    n = len(compute_s)
    fifos = [simpy.Store(env, capacity=fifo_depth) for _ in range(n)] + [simpy.Store(env)]
    ddr = simpy.Resource(env, capacity=1)
    entered, exited = np.zeros(frames), np.zeros(frames)
    stall, busy = np.zeros(n), np.zeros(n)

    def source():
        for f in range(frames):
            yield fifos[0].put(f)
            entered[f] = env.now

    def transfer(seconds: float):
        with ddr.request() as req:
            yield req
            yield env.timeout(seconds)

    def stage(s: int):
        c, m = float(compute_s[s]), float(mem_s[s])
        for _ in range(frames):
            f = yield fifos[s].get()
            t0 = env.now
            if m > 0 and shared_ddr:
                yield env.all_of([env.timeout(c), env.process(transfer(m))])
            else:
                yield env.timeout(max(c, m))
            busy[s] += env.now - t0
            t1 = env.now
            yield fifos[s + 1].put(f)
            stall[s] += env.now - t1

    def sink():
        for _ in range(frames):
            f = yield fifos[n].get()
            exited[f] = env.now

    env.process(source())
    for s in range(n):
        env.process(stage(s))
    done = env.process(sink())
    env.run(until=done)
    # steady state: frames that left while the source was still feeding the pipeline (after the
    # last entry the pipeline drains, upstream stages idle and DDR contention falls)
    steady = np.flatnonzero(exited <= entered[-1])
    window = steady[len(steady) // 2 :] if len(steady) >= 4 else np.arange(frames // 2, frames)
    first, last = window[0], window[-1]
    period = (
        (exited[last] - exited[first - 1]) / (last - first + 1)
        if first > 0
        else (exited[last] - exited[first]) / max(last - first, 1)
    )
    total = float(env.now)
    return PipelineTrace(
        frames,
        1.0 / period,
        exited - entered,
        float(exited[0]),
        stall,
        busy / total if total > 0 else busy,
    )
