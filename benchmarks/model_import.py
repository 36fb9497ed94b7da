"""Import speed of dse.graph.from_torch, and the share of a torch-space search spent tracing.

* A ResNet-50 written in plain PyTorch (examples/torch_networks.py: torchvision's layout, no
  weights) imported on one CPU core with each tracer (torch.export, torch.fx, eager): the first
  import (warm-up included) and the best of five after it, with its parameters and MACs beside
  the published 25.56 M and 4.09 G (target: under 1 s).
* The peer check: every reference network of examples/torch_networks.py imported, its
  parameters against the module's own ``sum(p.numel())`` and the published count, its MACs
  against fvcore's convolution, linear and matmul count plus the attention products
  (``torch_networks.fvcore_macs``) and the published count (needs fvcore; ``--skip-peers``).
* The elastic MobileNet of examples/elastic_mobilenet.py: per design, building the module, its
  forward pass, and the import with each tracer.
* A search of 500 evaluations over a space written as PyTorch (``[space] name = "torch"``,
  the random driver, the analytic proxy and the GPU simulator, then with synflow added), with
  each tracer: total seconds and the share spent in from_torch, tracing and building the IR
  (target: under a third), and the tracer's part alone (graphs are cached by architecture);
  then the elastic MobileNet (every proposal a new design) with the eager tracer the torch
  space uses, with the random driver and the A100, and as examples/elastic_mobilenet_nsga2.toml
  searches it (NSGA-II, population 50, against the A100 and the ZC706).

    python benchmarks/model_import.py [--evaluations 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import dse
import dse.graph.torch_import as importer
from dse.graph import from_torch, totals
from dse.graph.tracers import TRACERS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import torch_networks  # noqa: E402


def make(arch: dict) -> nn.Module:
    """The benchmark's torch space: ``depth`` conv blocks of ``width`` channels."""
    layers, cin = [], 3
    for i in range(arch["depth"]):
        layers += [nn.Conv2d(cin, arch["width"], 3, 2 if i % 2 else 1, 1), nn.ReLU()]
        cin = arch["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=500)
    ap.add_argument("--skip-peers", action="store_true", help="skip the fvcore peer table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, x = torch_networks.resnet50(), torch.randn(1, 3, 224, 224)
    module_params = sum(p.numel() for p in net.parameters()) / 1e6
    for tracer in TRACERS:
        start = time.perf_counter()
        graph = from_torch(net, (x,), tracer=tracer)
        first = time.perf_counter() - start
        times = []
        for _ in range(5):
            start = time.perf_counter()
            from_torch(net, (x,), tracer=tracer)
            times.append(time.perf_counter() - start)
        t = totals(graph)
        print(
            f"ResNet-50 ({tracer}): first import {first:.2f} s, then best {min(times):.3f} s "
            f"(target < 1 s); {t.params / 1e6:.3f} M params (published 25.557 M, module "
            f"{module_params:.3f} M), {t.macs / 1e9:.3f} GMACs (published 4.09)"
        )
    if not args.skip_peers:  # after the first imports: it warms torch.export up
        peers()
    elastic()
    for proxies in ({"analytic": {}}, {"analytic": {}, "synflow": {"batch_size": 8}}):
        for tracer in TRACERS:
            search(args.evaluations, proxies, tracer)
    import elastic_mobilenet

    space = {"factory": elastic_mobilenet.make, "choices": elastic_mobilenet.CHOICES}
    search(args.evaluations, {"analytic": {}}, "eager", space, "elastic MobileNet search")
    nsga2 = {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 50}
    two = {"gpu": {"device": "A100-80GB-PCIe"}, "fpga": {"board": "ZC706"}}
    label = "elastic MobileNet NSGA-II, GPU + ZC706"  # examples/elastic_mobilenet_nsga2.toml's
    search(args.evaluations, {"analytic": {}}, "eager", space, label, nsga2, two)


def elastic(designs: int = 10) -> None:
    """Per design of the elastic MobileNet (examples/elastic_mobilenet.py, 32 x 32): building
    the module, its forward pass, and importing it with each tracer (one warm-up each)."""
    import elastic_mobilenet
    import numpy as np

    rng = np.random.default_rng(1)
    choices = elastic_mobilenet.CHOICES
    archs = [{k: int(rng.choice(v)) for k, v in choices.items()} for _ in range(designs)]
    x = torch.randn(1, 3, 32, 32)
    start = time.perf_counter()
    nets = [elastic_mobilenet.make(a).eval() for a in archs]
    figures = [f"make {(time.perf_counter() - start) / designs * 1e3:.0f} ms"]
    with torch.no_grad():
        start = time.perf_counter()
        for net in nets:
            net(x)
    figures.append(f"forward {(time.perf_counter() - start) / designs * 1e3:.0f} ms")
    for tracer in TRACERS:
        from_torch(nets[0], (x,), tracer=tracer)
        start = time.perf_counter()
        for net in nets:
            from_torch(net, (x,), tracer=tracer)
        figures.append(f"{tracer} {(time.perf_counter() - start) / designs * 1e3:.0f} ms")
    print(f"elastic MobileNet, per design: {', '.join(figures)}")


def peers() -> None:
    """The peer table: ours against the module, fvcore and the published figures."""
    print(
        f"{'network':20s} {'params':>12s} {'= module':>9s} {'vs published':>12s} "
        f"{'GMACs':>8s} {'vs fvcore':>10s} {'vs published':>12s}"
    )
    for name, published in torch_networks.PUBLISHED.items():
        net = getattr(torch_networks, name)().eval()
        x = torch.randn(1, *published.input_shape)
        t = totals(from_torch(net, (x,)))
        module = sum(p.numel() for p in net.parameters())
        peer = torch_networks.fvcore_macs(name, net, x)
        vs_published = (
            f"{t.macs / published.macs - 1:+12.2%}" if published.macs is not None else f"{'-':>12s}"
        )
        print(
            f"{name:20s} {t.params:12,d} {str(t.params == module):>9s} "
            f"{t.params / published.params - 1:+12.2%} {t.macs / 1e9:8.3f} "
            f"{t.macs / peer - 1:+10.3%} {vs_published}"
        )


#: the benchmark's small torch space: 64 designs of 1-8 conv blocks of 8-128 channels
SMALL = {
    "factory": make,
    "choices": {"depth": list(range(1, 9)), "width": [8, 16, 24, 32, 48, 64, 96, 128]},
}


def search(
    evaluations: int,
    proxies: dict,
    tracer: str,
    space: dict = SMALL,
    label: str = "torch-space",
    driver: dict | None = None,
    simulators: dict | None = None,
) -> None:
    """A torch-space search of ``space`` with ``proxies`` and ``tracer`` (the random driver
    and the A100 unless ``driver`` and ``simulators`` say otherwise): its seconds and the
    share spent tracing."""
    import dse.spaces.torch_space as torch_space

    spent = {"import": 0.0, "trace": 0.0}
    original, tracer_alone = importer.from_torch, importer.trace_calls

    def timed(what: str, function):
        def run(*a, **kw):
            s = time.perf_counter()
            try:
                return function(*a, **kw)
            finally:
                spent[what] += time.perf_counter() - s

        return run

    # the whole import inside the space's to_graph, and the tracer's part of it
    torch_space.from_torch = timed("import", original)
    importer.trace_calls = timed("trace", tracer_alone)
    config = {
        "run": {"name": "import-bench", "seed": 0},
        "space": {
            "name": "torch",
            "input_shape": [3, 32, 32],
            "tracer": tracer,
            **space,
        },
        "proxies": proxies,
        "simulators": simulators or {"gpu": {"device": "A100-80GB-PCIe"}},
        "objectives": [{"metric": "params"}, {"metric": "gpu_latency_ms"}],
        "search": {**(driver or {"driver": "random"}), "max_evaluations": evaluations},
    }
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = dse.run(config, output=out, progress=False)
            total = time.perf_counter() - start
    finally:
        torch_space.from_torch, importer.trace_calls = original, tracer_alone
    print(
        f"{label} ({tracer}) with {', '.join(proxies)}: {result.proposals} proposals, "
        f"{result.rows} designs in {total:.1f} s, {spent['import']:.1f} s importing "
        f"({spent['import'] / total:.0%} of the run; target < 33%), the tracer alone "
        f"{spent['trace'] / total:.0%}"
    )


if __name__ == "__main__":
    main()
