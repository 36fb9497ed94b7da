"""Fixtures. Reference data comes from the repository's own ``data/`` folder (see its README);
a missing file fails the test rather than skipping it."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # makes dse_test_plugins importable, as a user's plugin module


DATA = REPO / "data"


def reference_data(name: str) -> Path:
    """A reference table shipped in ``data/``."""
    path = DATA / name
    if not path.is_file():
        pytest.fail(f"reference data {path} not found (data/README.md lists the shipped tables)")
    return path


def example_module(name: str) -> ModuleType:
    """A module of ``examples/`` (the reference networks, the spaces written as PyTorch),
    imported as a user runs it: with ``examples/`` on the import path."""
    folder = str(REPO / "examples")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: finds the test plugin module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def unseen_gold(table: str, arch_column: str, space, n: int):
    """HELP's protocol on the Xeon Gold 6240: ``(design, seconds, prior, graphs)`` for ``n``
    networks of reference table ``table`` (its measured latencies in seconds), the design priced
    from the Silver 4210R's calibration (another device's: the Gold's own is never the prior)."""
    import pandas as pd

    from dse.catalogs.devices import get_any_device
    from dse.simulators.cpu.calibration import load_cpu_calibration
    from dse.simulators.cpu.fit import CpuDesign
    from dse.simulators.cpu.model import CpuCostModel

    df = pd.read_csv(reference_data(table)).sample(n, random_state=0)
    graphs = [space.to_graph(space.parse(a)) for a in df[arch_column]]
    device = get_any_device("Xeon-Gold-6240", None, "cpu")
    prior = load_cpu_calibration("Xeon-Silver-4210R")
    design = CpuDesign(CpuCostModel(device, prior), graphs, [1])
    return design, df["gold_6240_ms"].to_numpy() * 1e-3, prior, graphs


def reference_networks(fast: tuple[str, ...]) -> list:
    """Every reference network of ``examples/torch_networks.py`` as a test parameter, those not
    in ``fast`` marked slow (a ViT-B/16 or GPT-2 stack costs seconds in any door)."""
    names = example_module("torch_networks").PUBLISHED
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in names]


def nasbench201_cells(n: int, seed: int = 0) -> list:
    """``n`` random NAS-Bench-201 cells' graphs (the ``seed``'s draw)."""
    import numpy as np

    from dse.spaces.nasbench201 import NasBench201Space

    space = NasBench201Space()
    rng = np.random.default_rng(seed)
    return [space.to_graph(space.sample(rng)) for _ in range(n)]


def one_conv(cin: int, size: int, cout: int, kernel: int):
    """A graph of one convolution: ``cin`` x ``size`` x ``size`` in, ``cout`` filters."""
    from dse.graph import GraphBuilder

    b = GraphBuilder("layer")
    b.conv(b.input((cin, size, size)), cout, kernel)
    return b.build()


def toy_cpu(folder: Path):
    """A 4-core 2 GHz CPU of 16 FLOP/cycle, 256 KB of L2 per core read at 32 bytes a cycle, no
    L3, 10 GB/s of DRAM and 7 us per operator: hand-computable roofline figures."""
    from dse.catalogs.devices import get_any_device

    path = folder / "devices.toml"
    path.write_text(
        '[toy]\nfamily = "cpu"\ncores = 4\nfrequency_ghz = 2\nflops_per_cycle = 16\n'
        "l2_kb = 256\nl3_mb = 0\ncache_bytes_per_cycle = 32\nmemory_bandwidth_gbs = 10\n"
        "op_overhead_us = 7\n"
    )
    return get_any_device("toy", path, "cpu")
