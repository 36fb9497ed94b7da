"""LLM serving as a discrete-event simulation (simpy): arrivals, batching, KV-cache admission.

Requests arrive (Poisson or a trace), wait in a FIFO queue, are admitted while their KV cache
(prompt + output tokens, reserved up front so nothing is ever pre-empted) fits in the memory
left after the weights, and run as prefill and decode steps whose latency comes from
:class:`~dse.simulators.gpu.llm.LlmWorkload` (the same cost model as the analytic path, so a
lone request takes exactly :meth:`LlmWorkload.request_seconds`). Schedulers:

* ``continuous``: iteration-level batching (Orca, vLLM). Before every step newly admitted
  requests are prefilled together; otherwise one decode step runs for every running request;
  a finished request leaves at once and frees its KV cache.
* ``static``: request-level batching. A batch starts when ``max_batch`` requests wait or the
  oldest has waited ``batch_timeout_s``; it is prefilled together and decoded until its longest
  request ends (finished requests keep their slot, as padded batches do).

Outputs per request: TTFT (arrival to first token), TPOT (mean time per later token), end-to-end
latency; the summary adds throughput and percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import simpy

from dse.inputs import read_table, require_numbers
from dse.simulators.gpu.llm import LlmWorkload, StepShape


@dataclass
class Request:
    id: int
    arrival_s: float
    prompt: int
    output: int
    first_token_s: float = float("nan")
    finish_s: float = float("nan")
    produced: int = 0


def poisson_requests(
    rate_per_s: float,
    n: int,
    prompt: int | tuple[int, int] = 512,
    output: int | tuple[int, int] = 128,
    seed: int = 0,
) -> list[Request]:
    """``n`` requests with exponential inter-arrival times; lengths fixed or uniform in [lo, hi]."""
    if rate_per_s <= 0:
        raise ValueError(f"rate_per_s: must be > 0, got {rate_per_s}")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate_per_s, n))

    def lengths(spec, what):
        lo, hi = (spec, spec) if isinstance(spec, int) else spec
        if lo < 1 or hi < lo:
            raise ValueError(f"{what}: need 1 <= lo <= hi, got {spec}")
        return rng.integers(lo, hi + 1, n)

    p, o = lengths(prompt, "prompt"), lengths(output, "output")
    return [
        Request(i, float(a), int(pp), int(oo)) for i, (a, pp, oo) in enumerate(zip(arrivals, p, o))
    ]


def trace_requests(path: str | Path) -> list[Request]:
    """Requests from a CSV with columns ``arrival_s`` (seconds, >= 0), ``prompt`` and ``output``
    (whole numbers of tokens, >= 1); anything else is a ValueError naming the column and row."""
    df = read_table(path, "trace")
    missing = {"arrival_s", "prompt", "output"} - set(df.columns)
    if missing:
        raise ValueError(f"trace {path}: missing column(s) {sorted(missing)}")
    df["arrival_s"] = require_numbers(df, "arrival_s", "trace", str(path))
    for tokens in ("prompt", "output"):
        df[tokens] = require_numbers(df, tokens, "trace", str(path), low=1, whole=True)
    df = df.sort_values("arrival_s", kind="stable")
    return [
        Request(i, float(r.arrival_s), int(r.prompt), int(r.output))
        for i, r in enumerate(df.itertuples())
    ]


class _Engine:
    """Shared state and step execution for the schedulers."""

    def __init__(
        self, env: simpy.Environment, workload: LlmWorkload, max_batch: int, kv_capacity: float
    ):
        self.env, self.workload, self.max_batch, self.kv_capacity = (
            env,
            workload,
            max_batch,
            kv_capacity,
        )
        self.kv_used = 0.0
        self.waiting: list[Request] = []
        self.arrived = env.event()
        self.busy_s = 0.0
        self.steps: list[tuple[float, str, int]] = []  # (start, kind, batch)

    def kv_need(self, r: Request) -> float:
        return (r.prompt + r.output) * self.workload.config.kv_bytes_per_token

    def admit(self, running: int) -> list[Request]:
        taken = []
        while self.waiting and running + len(taken) < self.max_batch:
            need = self.kv_need(self.waiting[0])
            if need > self.kv_capacity:
                raise ValueError(
                    f"request {self.waiting[0].id}: needs {need / 1e9:.2f} GB of KV cache, "
                    f"more than the {self.kv_capacity / 1e9:.2f} GB left after the weights"
                )
            if self.kv_used + need > self.kv_capacity:
                break
            self.kv_used += need
            taken.append(self.waiting.pop(0))
        return taken

    def step(self, kind: str, shape: StepShape, batch: int):
        seconds = float(self.workload.step_seconds(shape))
        self.steps.append((self.env.now, kind, batch))
        self.busy_s += seconds
        return self.env.timeout(seconds)

    def prefill(self, reqs: Sequence[Request]):
        p = [r.prompt for r in reqs]
        yield self.step("prefill", StepShape.requests(p, p, logits=len(reqs)), len(reqs))
        for r in reqs:
            r.produced = 1
            r.first_token_s = self.env.now
            if r.output <= 1:  # the prefill's token was the whole answer
                r.finish_s = self.env.now

    def decode(self, reqs: Sequence[Request]):
        active = [r for r in reqs if r.produced < r.output]
        ctx = [r.prompt + r.produced for r in reqs]
        yield self.step("decode", StepShape.requests(np.ones(len(reqs)), ctx), len(reqs))
        for r in active:
            r.produced += 1
            if r.produced >= r.output:
                r.finish_s = self.env.now


def _continuous(engine: _Engine, total: int):
    running, done = [], 0
    while done < total:
        new = engine.admit(len(running))
        if new:
            yield from engine.prefill(new)
            running += new
        elif running:
            yield from engine.decode(running)
        else:
            yield engine.arrived
            continue
        finished = [r for r in running if r.produced >= r.output]
        for r in finished:
            engine.kv_used -= engine.kv_need(r)
        done += len(finished)
        running = [r for r in running if r.produced < r.output]


def _static(engine: _Engine, total: int, timeout_s: float):
    env, done = engine.env, 0
    while done < total:
        if not engine.waiting:
            yield engine.arrived
            continue
        oldest = engine.waiting[0].arrival_s
        if len(engine.waiting) < engine.max_batch and env.now < oldest + timeout_s:
            yield engine.arrived | env.timeout(oldest + timeout_s - env.now)
            continue
        batch = engine.admit(0)
        yield from engine.prefill(batch)
        while any(r.produced < r.output for r in batch):
            yield from engine.decode(batch)
        for r in batch:
            engine.kv_used -= engine.kv_need(r)
        done += len(batch)


SCHEDULERS = {
    "continuous": lambda engine, total, timeout_s: _continuous(engine, total),
    "static": _static,
}


@dataclass
class ServingResult:
    requests: pd.DataFrame  # one row per request
    summary: dict[str, float]
    steps: pd.DataFrame  # one row per step: start_s, kind, batch


def simulate_serving(
    workload: LlmWorkload,
    requests: Sequence[Request],
    scheduler: str = "continuous",
    max_batch: int = 64,
    batch_timeout_s: float = 0.05,
    memory_fraction: float = 0.9,
) -> ServingResult:
    """Run ``requests`` through one GPU; see the module docstring."""
    if scheduler not in SCHEDULERS:
        raise ValueError(
            f"scheduler: {scheduler!r} is not allowed; allowed values: {sorted(SCHEDULERS)}"
        )
    if max_batch < 1:
        raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
    kv_capacity = (
        workload.model.device.memory_bytes * memory_fraction - workload.config.weight_bytes
    )
    if kv_capacity <= 0:
        raise ValueError(
            f"model {workload.config.name!r} ({workload.config.weight_bytes / 1e9:.1f} GB of "
            "weights) "
            f"does not fit in {memory_fraction:g} of {workload.model.device.name}'s memory"
        )
    reqs = [Request(r.id, r.arrival_s, r.prompt, r.output) for r in requests]
    env = simpy.Environment()
    engine = _Engine(env, workload, max_batch, kv_capacity)

    def arrivals():
        for r in sorted(reqs, key=lambda r: r.arrival_s):
            yield env.timeout(max(0.0, r.arrival_s - env.now))
            engine.waiting.append(r)
            engine.arrived.succeed()
            engine.arrived = env.event()

    env.process(arrivals())
    env.process(SCHEDULERS[scheduler](engine, len(reqs), batch_timeout_s))
    env.run()
    df = pd.DataFrame(
        [
            {
                "id": r.id,
                "arrival_s": r.arrival_s,
                "prompt": r.prompt,
                "output": r.output,
                "first_token_s": r.first_token_s,
                "finish_s": r.finish_s,
            }
            for r in reqs
        ]
    )
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["tpot_s"] = np.where(
        df["output"] > 1,
        (df["finish_s"] - df["first_token_s"]) / (df["output"] - 1).clip(lower=1),
        0.0,
    )
    df["latency_s"] = df["finish_s"] - df["arrival_s"]
    span = float(df["finish_s"].max() - df["arrival_s"].min()) if len(df) else 0.0
    summary = {
        "requests": float(len(df)),
        "makespan_s": span,
        "throughput_tokens_per_s": float(df["output"].sum() / span) if span else 0.0,
        "throughput_requests_per_s": float(len(df) / span) if span else 0.0,
        "gpu_busy_fraction": engine.busy_s / span if span else 0.0,
    }
    for col in ("ttft_s", "tpot_s", "latency_s"):
        for q in (50, 90, 99):
            summary[f"{col[:-2]}_p{q}_s"] = (
                float(np.percentile(df[col], q)) if len(df) else float("nan")
            )
    steps = pd.DataFrame(engine.steps, columns=["start_s", "kind", "batch"])
    return ServingResult(df, summary, steps)
