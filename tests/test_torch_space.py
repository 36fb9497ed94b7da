"""A space written as plain PyTorch searches end to end like any other."""

from __future__ import annotations

import json

import dse_test_plugins
import pytest
import torch

import dse
from dse.graph import totals
from dse.params import ConfigError
from dse.registry import SIMULATORS, SPACES
from dse.training.network import build_network


def config(**space) -> dict:
    return {
        "run": {"name": "torchspace", "seed": 0},
        "space": {
            "name": "torch",
            "factory": "dse_test_plugins:small_cnn",
            "input_shape": [3, 32, 32],
            "choices": {"depth": [1, 2, 3, 4], "width": [8, 16, 32]},
            **space,
        },
        "proxies": {"analytic": {}},
        "simulators": {"gpu": {"device": "A100-80GB-PCIe"}, "fpga": {"board": "ZC706"}},
        "objectives": [
            {"metric": "params", "direction": "min"},
            {"metric": "gpu_latency_ms", "direction": "min"},
            {"metric": "fpga_latency_ms", "direction": "min"},
        ],
        "search": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 6, "max_evaluations": 24},
    }


def test_a_torch_space_searches_with_nsga2_against_two_simulators(tmp_path):
    result = dse.run(config(), output=tmp_path, progress=False)
    df = dse.results.load(result.path)
    assert (df.status == "ok").all() and len(df) >= 6 and df.is_pareto.any()
    space = SPACES.create("torch", **{k: v for k, v in config()["space"].items() if k != "name"})
    arch = {"depth": 3, "width": 16}
    module = space.module(arch)
    assert totals(space.to_graph(arch)).params == sum(p.numel() for p in module.parameters())
    assert set(df.gpu_latency_ms > 0) == {True} and set(df.fpga_latency_ms > 0) == {True}


def test_proxies_train_the_users_module_itself_and_graphs_are_cached():
    space = SPACES.create(
        "torch",
        factory="dse_test_plugins:small_cnn",
        input_shape=[3, 32, 32],
        choices={"depth": [1, 2], "width": [8, 16]},
    )
    arch = {"depth": 2, "width": 8}
    first = len(dse_test_plugins.BUILT)
    g = space.to_graph(arch)
    assert space.to_graph(arch) is g and len(dse_test_plugins.BUILT) == first + 1  # traced once
    net = build_network(g, seed=0)
    assert isinstance(net, torch.nn.Sequential)  # make(arch), not a round trip through the IR
    assert dse_test_plugins.BUILT[-1] == arch
    again = build_network(g, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


def test_a_bad_factory_or_choice_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="space.factory: cannot load 'nope:make'"):
        dse.run(config(factory="nope:make"), output=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="space.choices.depth: expected a non-empty list"):
        dse.run(config(choices={"depth": []}), output=tmp_path, progress=False)
    assert not tmp_path.joinpath("torchspace").exists() and not list(tmp_path.iterdir())


VIEWS = {"input", "identity", "reshape", "slice"}


def test_the_fbnet_space_written_as_pytorch_gives_the_native_spaces_networks():
    """examples/fbnet_torch.py against the native ``fbnet`` space: the same operators in the same
    order (views aside: a channel shuffle is one ``shuffle`` either way, traced with three
    reshapes), the same parameters and MACs, and every simulator's figures equal."""
    import numpy as np
    from conftest import example_module

    fbnet_torch = example_module("fbnet_torch")

    from dse.spaces.fbnet import FBNetSpace
    from dse.spaces.torch_space import TorchSpace

    native, written = FBNetSpace(), TorchSpace(fbnet_torch.make, fbnet_torch.CHOICES, (3, 32, 32))
    sims = [
        SIMULATORS.create("gpu", device="Titan-RTX"),
        SIMULATORS.create("cpu", device="Xeon-Gold-6240"),
        SIMULATORS.create("asic"),
        SIMULATORS.create("fpga", board="ZC706"),
    ]
    rng = np.random.default_rng(0)
    archs = [native.sample(rng) for _ in range(12)]
    archs.append({v: "k3_e1_g2" for v in fbnet_torch.CHOICES})  # every block shuffles
    a = [native.to_graph(x) for x in archs]
    b = [written.to_graph(x) for x in archs]
    for g, h in zip(a, b, strict=True):
        ops = [
            [
                (o.kind, o.in_shapes, o.out_shape, o.kernel, o.stride, o.groups, o.macs, o.params)
                for o in (d["op"] for _, d in x.nodes(data=True))
                if o.kind not in VIEWS
            ]
            for x in (g, h)
        ]
        assert ops[0] == ops[1]
        assert totals(g).params == totals(h).params and totals(g).macs == totals(h).macs
    for sim in sims:
        got, want = sim.evaluate_population(b), sim.evaluate_population(a)
        for metric in want:
            np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9)


@pytest.mark.parametrize(
    "example, factory",
    [
        ("elastic_mobilenet_nsga2.toml", "elastic_mobilenet"),
        ("fbnet_torch_nsga2.toml", "fbnet_torch"),
    ],
)
def test_the_example_pytorch_spaces_search_with_nsga2_from_their_config_files(
    tmp_path, example, factory
):
    """examples/elastic_mobilenet_nsga2.toml (a Once-for-All-style elastic MobileNetV3) and
    examples/fbnet_torch_nsga2.toml (HW-NAS-Bench's FBNet) as a user runs them: the factory
    module and its choices beside the config, NSGA-II against a GPU and an FPGA simulator."""
    import importlib

    from conftest import REPO

    from dse.configfile import read_config_file

    data = read_config_file(REPO / "examples" / example)
    data["search"].update(pop_size=6, max_evaluations=12)
    result = dse.run(data, output=tmp_path, progress=False)
    df = dse.results.load(result.path)
    assert result.proposals == 12 and len(df) >= 10  # aliases of one network are one row
    assert (df.status == "ok").all() and df.is_pareto.any() and df.arch_hash.is_unique
    assert (df.gpu_latency_ms > 0).all() and (df.fpga_latency_ms > 0).all()
    module = importlib.import_module(factory)  # importable: it sits beside the config
    for row in df.head(3).itertuples():
        net = module.make(json.loads(row.arch_id))
        assert row.params == sum(p.numel() for p in net.parameters())


def test_choices_may_name_a_dict_in_the_users_module_and_a_factory_beside_a_config_asks_trust(
    tmp_path,
):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab_net.py").write_text(
        "from torch import nn\n\nCHOICES = {'width': [4, 8]}\n\n\n"
        "def make(arch):\n"
        "    return nn.Sequential(nn.Conv2d(3, arch['width'], 3), nn.Flatten())\n"
    )
    cfg = lab / "exp.toml"
    cfg.write_text(
        '[run]\nname = "lab"\n[space]\nname = "torch"\nfactory = "lab_net:make"\n'
        'choices = "lab_net:CHOICES"\ninput_shape = [3, 8, 8]\n[proxies.analytic]\n'
        '[[objectives]]\nmetric = "params"\n[search]\ndriver = "random"\nmax_evaluations = 2\n'
    )
    out = tmp_path / "out"
    dse.run(cfg, run_id="got", output=out, progress=False)
    assert set(dse.results.load(out / "got").params) <= {3 * 4 * 9 + 4, 3 * 8 * 9 + 8}
    with pytest.raises(ConfigError, match=r"--trust-plugins: .* \['lab_net'\]"):
        dse.run(resume=out / "got", max_evaluations=4, progress=False)
    with pytest.raises(ConfigError, match="space.choices: cannot load 'lab_net:NOPE'"):
        dse.run(config(choices="lab_net:NOPE"), output=tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="space.choices: expected 'module:NAME'"):
        dse.run(config(choices="CHOICES"), output=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_decisions_that_do_not_change_the_network_are_one_design():
    """An elastic space's kernel and ratio for a block past its stage's depth build nothing:
    both architectures import to one graph, so they share an arch_hash (evaluated once)."""
    from conftest import example_module

    from dse.spaces.torch_space import TorchSpace

    em = example_module("elastic_mobilenet")

    space = TorchSpace(em.make, em.CHOICES, (3, 32, 32))
    arch = {k: v[0] for k, v in em.CHOICES.items()}  # depth 2 everywhere
    unbuilt = {**arch, "k1_4": 7}  # block 4 of stage 1 is not built
    built = {**arch, "k1_2": 7}
    assert space.arch_hash(unbuilt) == space.arch_hash(arch) != space.arch_hash(built)
    assert space.arch_id(unbuilt) != space.arch_id(arch)  # still told apart by their decisions
