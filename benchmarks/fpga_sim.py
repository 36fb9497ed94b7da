"""Analytic FPGA evaluations per second on 20-block MBConv chains, including DSP allocation.

The graphs are built beforehand, so the figure is the simulator's own cost (layer table, per-layer
model, optimiser, metrics). Two ways: a population pass (``evaluate_population``, one numpy pass
over all graphs, as a search's batch or a sweep can use it) and graph by graph (``evaluate``, what
the evaluator calls per candidate). Baseline, measured in the same run: the analytic proxy
(params, MACs, bytes, peak memory) graph by graph on the same graphs, the cheapest evaluator
there is. Target: >= 5,000/s.
Also: discrete-event frames/s (simulated frames per wall second) for a pipelined MobileNetV2.

    python benchmarks/fpga_sim.py [--archs 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

from timing import population_rate, rate, sample_graphs

from dse.proxies.analytic import AnalyticProxy
from dse.registry import SIMULATORS
from dse.spaces.mbconv import MBConvChainSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    space = MBConvChainSpace()
    graphs = sample_graphs(space, args.archs)
    proxy = AnalyticProxy()
    base = rate(lambda g: proxy.evaluate(g, {}, space), graphs, args.repeats)
    print(f"{'case':46s} {'best/s':>8s} {'median/s':>9s} {'vs analytic proxy':>18s}")
    print(f"{'analytic proxy (baseline)':46s} {base[0]:8.0f} {base[1]:9.0f}")
    for board, arch in (("ZCU102", "recursive"), ("ZC706", "pipelined")):
        sim = SIMULATORS.create("fpga", board=board, architecture=arch)
        sim.evaluate_population(graphs[:10])  # warm the op table, as any second call would find it
        best, med = population_rate(sim.evaluate_population, graphs, args.repeats)
        print(
            f"{f'fpga {arch} on {board}, population pass':46s} {best:8.0f} {med:9.0f} "
            f"{best / base[0]:17.2f}x"
        )
        best, med = rate(lambda g, sim=sim: sim.evaluate(g, {}, space), graphs, args.repeats)
        print(
            f"{f'fpga {arch} on {board}, graph by graph':46s} {best:8.0f} {med:9.0f} "
            f"{best / base[0]:17.2f}x"
        )
    print("target: >= 5,000 analytic FPGA evaluations/s for 20-block MBConv chains")
    from dse.simulators.fpga import des
    from dse.spaces.zoo import build

    sim = SIMULATORS.create("fpga", board="ZC706", architecture="pipelined")
    _, design = sim.design(build("mobilenet_v2", weight_bits=8, act_bits=16))
    frames = 400
    t = time.perf_counter()
    trace = des.run_pipelined(design.compute_s, design.mem_s, frames=frames)
    wall = time.perf_counter() - t
    print(
        f"DES pipelined mobilenet_v2 on ZC706: {len(design.stage_s)} stages, {frames} frames in "
        f"{wall:.2f} s "
        f"= {frames / wall:.0f} frames/s ({frames * len(design.stage_s) / wall:,.0f} "
        "stage-events/s); "
        f"steady {trace.throughput_fps:.1f} fps vs analytic {design.throughput_fps:.1f} fps"
    )

    vgg16_on_zc706()


def vgg16_on_zc706() -> None:
    """VGG16 pipelined on ZC706 (900 DSPs, 200 MHz) against DNNBuilder's 27.7 fps (table 2.3)."""
    from dse.graph import totals
    from dse.spaces.zoo import build

    for bits in (16, 8):
        g = build("vgg16", weight_bits=bits, act_bits=16)
        ceiling = 900 * 200e6 / totals(g).macs / (1 if bits == 16 else 0.25)  # Psi * Phi per MAC
        for integer in (False, True):
            sim = SIMULATORS.create(
                "fpga",
                board="ZC706",
                architecture="pipelined",
                dsp_budget=900,
                integer_lanes=integer,
            )
            m = sim.evaluate(g, {}, None)
            lanes = "integer lanes" if integer else "power-of-two lanes"
            print(
                f"VGG16 {bits}-bit weights, {lanes}: {m['fpga_throughput_fps']:.1f} fps with "
                f"{m['fpga_dsp']:.0f} DSPs "
                f"(model ceiling {ceiling:.1f} fps; DNNBuilder 27.7 fps, ratio "
                f"{27.7 / m['fpga_throughput_fps']:.2f})"
            )


if __name__ == "__main__":
    main()
