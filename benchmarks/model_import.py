"""Import speed of dse.graph.from_torch, and the share of a torch-space search spent tracing.

* A ResNet-50 written in plain PyTorch (torchvision's layout, no weights) imported on one CPU
  core: the first import (torch.export's warm-up included) and the best of five after it, with
  its parameters and MACs beside the published 25.56 M and 4.09 G (target: under 1 s).
* A search of 500 evaluations over a space written as PyTorch (``[space] name = "torch"``,
  the random driver, the analytic proxy and the GPU simulator): total seconds and the share
  spent in from_torch (target: under a third; graphs are cached by architecture).

    python benchmarks/model_import.py [--evaluations 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch import nn

import dse
import dse.graph.torch_import as importer
from dse.graph import from_torch, totals


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = 4 * mid
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


def resnet50() -> nn.Module:
    """ResNet-50 (He et al. 2016) in torchvision's layout: stride on the 3x3 convolution."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    ]  # fmt: skip
    cin = 64
    for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = 4 * mid
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


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
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, x = resnet50(), torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    graph = from_torch(net, (x,))
    first = time.perf_counter() - start
    times = []
    for _ in range(5):
        start = time.perf_counter()
        from_torch(net, (x,))
        times.append(time.perf_counter() - start)
    t = totals(graph)
    module_params = sum(p.numel() for p in net.parameters()) / 1e6
    print(
        f"ResNet-50: first import {first:.2f} s, then best {min(times):.3f} s (target < 1 s); "
        f"{t.params / 1e6:.3f} M params (published 25.557 M, module {module_params:.3f} M), "
        f"{t.macs / 1e9:.3f} GMACs (published 4.09)"
    )
    for proxies in ({"analytic": {}}, {"analytic": {}, "synflow": {"batch_size": 8}}):
        search(args.evaluations, proxies)


def search(evaluations: int, proxies: dict) -> None:
    """A torch-space search with ``proxies``: its seconds and the share spent tracing."""
    import dse.spaces.torch_space as torch_space

    traced = [0.0]
    original = importer.from_torch

    def timed(*a, **kw):
        s = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            traced[0] += time.perf_counter() - s

    torch_space.from_torch = timed  # count the tracing inside the space's to_graph
    config = {
        "run": {"name": "import-bench", "seed": 0},
        "space": {
            "name": "torch",
            "factory": make,
            "input_shape": [3, 32, 32],
            "choices": {"depth": list(range(1, 9)), "width": [8, 16, 24, 32, 48, 64, 96, 128]},
        },
        "proxies": proxies,
        "simulators": {"gpu": {"device": "A100-80GB-PCIe"}},
        "objectives": [{"metric": "params"}, {"metric": "gpu_latency_ms"}],
        "search": {"driver": "random", "max_evaluations": evaluations},
    }
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = dse.run(config, output=out, progress=False)
            total = time.perf_counter() - start
    finally:
        torch_space.from_torch = original
    print(
        f"torch-space search with {', '.join(proxies)}: {result.proposals} proposals, "
        f"{result.rows} designs in {total:.1f} s, {traced[0]:.1f} s tracing "
        f"({traced[0] / total:.0%} of the run; target < 33%)"
    )


if __name__ == "__main__":
    main()
