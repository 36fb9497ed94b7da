"""Sweep throughput on a Dask LocalCluster: 1 worker against 2 workers, same sweep, same run.

The sweep: 10,000 random points over NAS-Bench-201 architectures x FPGA board x accelerator
architecture x DSP budget (``simulators.fpga``), in chunks of 250. Both clusters are started and
warmed (a small sweep loads the plugins in every worker) before the timed sweep, so the figure
is the sweep's rate, not process start-up. Target: 2 workers >= 1.7x the 1-worker rate.

    python benchmarks/sweep_scaling.py [--points 10000] [--chunk-size 250]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from distributed import Client, LocalCluster

import dse
from dse.sweeps import sweep


def sweep_config(points: int, chunk_size: int) -> dict:
    return {
        "run": {"name": "scaling", "seed": 0},
        "space": {"name": "nasbench201"},
        "simulators": {"fpga": {"board": "ZC706", "architecture": "recursive"}},
        "sweep": {
            "method": "random",
            "points": points,
            "chunk_size": chunk_size,
            "parameters": {
                "arch": "all",
                "simulators.fpga.board": ["ZC706", "ZCU102", "ZCU104"],
                "simulators.fpga.architecture": ["recursive", "pipelined"],
                "simulators.fpga.dsp_budget": [256, 512, 900],
            },
        },
    }


def timed_rate(workers: int, points: int, chunk_size: int, out: str) -> float:
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster),
    ):
        sweep(
            sweep_config(workers * 4 * 50, 50),
            output=out,
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        start = time.perf_counter()
        result = sweep(
            sweep_config(points, chunk_size),
            output=out,
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        seconds = time.perf_counter() - start
    rows = len(dse.results.load(result.path, with_pareto=False))
    assert rows == points, (rows, points)
    return points / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--chunk-size", type=int, default=250)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        one = timed_rate(1, args.points, args.chunk_size, out)
        two = timed_rate(2, args.points, args.chunk_size, out)
    print(
        f"sweep of {args.points:,} points (NAS-Bench-201 x FPGA board x architecture x DSP "
        "budget), "
        f"chunks of {args.chunk_size}"
    )
    print(f"  1 worker : {one:8.1f} points/s")
    print(f"  2 workers: {two:8.1f} points/s")
    print(f"  speed-up : {two / one:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    main()
