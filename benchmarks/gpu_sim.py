"""GPU simulator speed: analytic architectures/s on NAS-Bench-201, DES requests/s and kernels/s.

1. The analytic path on a population of N NAS-Bench-201 graphs (built beforehand, so the figure
   is the simulator's own cost): ``GpuSimulator.evaluate_population`` (one numpy pass) against
   the baseline of calling ``evaluate`` graph by graph, measured in the same run.
   Target: >= 20,000 architectures/s on one core.
2. The serving DES: Llama-2-7B on an A100, continuous batching, Poisson arrivals at 4 req/s,
   simulated requests per wall second.
3. The kernel-stream DES: kernels per wall second for NAS-Bench-201 graphs.

    python benchmarks/gpu_sim.py [--archs 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

from timing import population_rate, rate, sample_graphs

from dse.catalogs.llms import get_llm
from dse.registry import SIMULATORS
from dse.simulators.gpu.llm import LlmWorkload
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.serving import poisson_requests, simulate_serving
from dse.simulators.gpu.stream import graph_kernels, run_kernels
from dse.spaces.nasbench201 import NasBench201Space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    space = NasBench201Space()
    t = time.perf_counter()
    graphs = sample_graphs(space, args.archs)
    print(
        f"built {len(graphs)} NAS-Bench-201 graphs in {time.perf_counter() - t:.1f} s (not timed "
        "below)"
    )
    sim = SIMULATORS.create("gpu", device="Titan-RTX", batch_size=1)
    sim.evaluate_population(graphs[:10])  # warm the op table, as any second call would find it

    pop_best, pop_median = population_rate(sim.evaluate_population, graphs, args.repeats)
    one = graphs[: max(1, len(graphs) // 5)]
    base_best, base_median = rate(lambda g: sim.evaluate(g, {}, space), one, args.repeats)
    print(
        f"analytic, population pass: {pop_best:,.0f} archs/s best, {pop_median:,.0f} median "
        "(target >= 20,000)"
    )
    print(
        f"analytic, graph by graph:  {base_best:,.0f} archs/s best, {base_median:,.0f} median "
        "(baseline)"
    )
    print(f"ratio population / graph by graph: {pop_best / base_best:.1f}x")

    workload = LlmWorkload(get_llm("llama-2-7b"), GpuCostModel.create("A100-80GB-PCIe"))
    requests = poisson_requests(4.0, 2000, (64, 1024), (16, 256), seed=0)
    t = time.perf_counter()
    res = simulate_serving(workload, requests)
    wall = time.perf_counter() - t
    print(
        f"serving DES: {len(requests) / wall:,.0f} requests/s simulated ({len(res.steps):,} steps, "
        f"{len(res.steps) / wall:,.0f} steps/s; {res.summary['makespan_s']:.0f} s of serving in "
        f"{wall:.2f} s); "
        f"TTFT p50 {res.summary['ttft_p50_s'] * 1e3:.1f} ms, TPOT p50 "
        f"{res.summary['tpot_p50_s'] * 1e3:.1f} ms, "
        f"{res.summary['throughput_tokens_per_s']:,.0f} tokens/s"
    )

    kernels = [graph_kernels(sim.coster, g, streams=2) for g in graphs[:50]]
    t = time.perf_counter()
    for ks in kernels:
        run_kernels(ks, async_launch=True)
    wall = time.perf_counter() - t
    print(
        f"kernel-stream DES: {sum(map(len, kernels)) / wall:,.0f} kernels/s "
        f"({len(kernels) / wall:,.0f} graphs/s)"
    )


if __name__ == "__main__":
    main()
