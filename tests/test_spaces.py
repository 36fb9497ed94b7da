"""Search spaces: NAS-Bench-201 against NASLib, the EDD MBConv chain, the reference zoo."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

from dse.graph import canonical_hash, totals, validate
from dse.registry import SPACES
from dse.space import SpaceError
from dse.spaces.mbconv import MBCONV_OPS, MBConvChainSpace, stage_depths
from dse.spaces.nasbench201 import (
    EDGES,
    OPS,
    NasBench201Space,
    edge_name,
    from_naslib_indices,
    parse_arch_str,
    to_arch_str,
)
from dse.spaces.zoo import PUBLISHED, ZooSpace, build

DATASETS = ("cifar10", "cifar100", "imagenet16_120")


@pytest.fixture(scope="module")
def naslib() -> pd.DataFrame:
    return pd.read_csv(reference_data("nasbench201_naslib.csv"))


@pytest.mark.parametrize("dataset", DATASETS)
def test_nasbench201_params_and_flops_match_naslib_within_1pct(naslib, dataset):
    """All 362 reference cells; NASLib reports FLOPs with a module-hook counter (hook_flops) and
    both numbers in millions."""
    space = NasBench201Space(dataset)
    params, flops = [], []
    for indices in naslib.naslib_op_indices:
        t = totals(space.to_graph(from_naslib_indices(indices)))
        params.append(t.params / 1e6)
        flops.append(t.hook_flops / 1e6)
    p_err = np.abs(np.array(params) / naslib[f"naslib_params_{dataset}"] - 1)
    f_err = np.abs(np.array(flops) / naslib[f"naslib_flops_{dataset}"] - 1)
    assert len(p_err) == 362
    assert p_err.max() < 0.01, f"worst params error {p_err.max():.4%}"
    assert f_err.max() < 0.01, f"worst FLOPs error {f_err.max():.4%}"


def test_arch_str_round_trip_and_naslib_indices(naslib):
    for indices, arch_str in zip(naslib.naslib_op_indices, naslib.arch_str):
        arch = from_naslib_indices(indices)
        assert to_arch_str(arch) == arch_str
        assert parse_arch_str(arch_str) == arch


@pytest.mark.parametrize(
    "bad, message",
    [
        ("|nor_conv_3x3~0|+|none~0|", "expected 3"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "bad source node"),
    ],
)
def test_bad_arch_str_is_rejected(bad, message):
    with pytest.raises(SpaceError, match=message):
        parse_arch_str(bad)


def test_nasbench201_space_protocol():
    space = SPACES.create("nasbench201")
    assert space.size == 15625
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        x = space.encode(arch)
        assert space.decode(x) == arch
        mutant = space.mutate(arch, rng, n=2)
        assert sum(arch[k] != mutant[k] for k in arch) == 2
    with pytest.raises(SpaceError, match="1<-0: 'conv' is not allowed"):
        space.encode({**arch, "1<-0": "conv"})
    with pytest.raises(SpaceError, match="dataset"):
        NasBench201Space("imagenet")


def test_nasbench201_fast_hash_agrees_with_graph_hash():
    space = NasBench201Space()
    uncached = NasBench201Space()
    uncached._fragments = None
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(40)]
    graph_hashes = [canonical_hash(space.to_graph(a)) for a in archs]
    assert graph_hashes == [canonical_hash(uncached.to_graph(a)) for a in archs]
    fast = [space.arch_hash(a) for a in archs]
    for i, j in itertools.combinations(range(len(archs)), 2):
        assert (fast[i] == fast[j]) == (graph_hashes[i] == graph_hashes[j])
    all_archs = (
        dict(zip([edge_name(*e) for e in EDGES], ops)) for ops in itertools.product(OPS, repeat=6)
    )
    assert len({space.arch_hash(a) for a in all_archs}) == 15625
    validate(space.to_graph(archs[0]))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_params_and_macs_within_2pct_of_published(name):
    t = totals(build(name))
    ref = PUBLISHED[name]
    assert abs(t.params / ref.params - 1) < 0.02, (t.params, ref.params)
    if ref.macs is None:
        assert "no MAC count published" in ref.source
    else:
        assert abs(t.macs / ref.macs - 1) < 0.02, (t.macs, ref.macs)


def test_zoo_is_a_space():
    space = ZooSpace(networks=["resnet18", "vgg16"])
    assert space.size == 2
    g = space.to_graph({"network": "vgg16"})
    validate(g)
    assert len(g.graph["stage_outputs"]) == 5
    with pytest.raises(SpaceError, match="networks"):
        ZooSpace(networks=["alexnet"])


def test_mbconv_fpga_space_per_block_bits_and_skips():
    space = MBConvChainSpace()
    ops = [v for v in space.variables if v.name.endswith(".op")]
    bits = [v for v in space.variables if v.name.endswith(".bits")]
    assert len(ops) == 20 and len(bits) == 20
    assert all(v.choices == (4, 8, 16) for v in bits)
    # blocks that change shape cannot be skipped; the others can
    for v in ops:
        assert set(v.choices) >= set(MBCONV_OPS)
    assert "skip" not in ops[0].choices and "skip" in ops[1].choices
    arch = space.sample(np.random.default_rng(0))
    arch4 = {k: (4 if k.endswith(".bits") else v) for k, v in arch.items()}
    arch16 = {k: (16 if k.endswith(".bits") else v) for k, v in arch.items()}
    t4, t16 = totals(space.to_graph(arch4)), totals(space.to_graph(arch16))
    assert t4.macs == t16.macs and t4.params == t16.params
    searched = sum(
        d["op"].params
        for _, d in space.to_graph(arch4).nodes(data=True)
        if d["op"].weight_bits == 4
    )
    assert searched > 0.4 * t4.params  # stem, head and classifier stay at 16 bits
    assert t16.weight_bytes - t4.weight_bytes == pytest.approx(searched * (16 - 4) / 8, abs=200)
    validate(space.to_graph(arch))


def test_mbconv_gpu_space_shares_one_precision_and_skip_shrinks():
    space = MBConvChainSpace(target="gpu")
    names = [v.name for v in space.variables]
    assert names[-1] == "bits" and sum(n.endswith(".bits") for n in names) == 0
    assert space.variables[-1].choices == (8, 16, 32)
    arch = {v.name: v.choices[0] for v in space.variables}
    skipped = {
        k: ("skip" if k.endswith(".op") and "skip" in space.variables[i].choices else v)
        for i, (k, v) in enumerate(arch.items())
    }
    assert totals(space.to_graph(skipped)).macs < totals(space.to_graph(arch)).macs
    assert stage_depths(20) == [4, 4, 4, 4, 3, 1] and sum(stage_depths(12)) == 12
    with pytest.raises(SpaceError, match="target"):
        MBConvChainSpace(target="tpu")


def test_nasbench101_cells_match_naslib_and_hash_isomorphic_cells_together():
    import pandas as pd
    from conftest import reference_data

    from dse.graph import totals
    from dse.space import SpaceError
    from dse.spaces.nasbench101 import NasBench101Space

    df = pd.read_csv(reference_data("nasbench101_naslib.csv"), dtype={"adjacency_7x7": str})
    space = NasBench101Space()
    for adj, ops, params, flops in zip(
        df.adjacency_7x7[:40],
        df.ops[:40],
        df.naslib_params_cifar10[:40],
        df.naslib_flops_cifar10[:40],
    ):
        t = totals(space.to_graph(space.parse(adj, ops)))
        assert t.params / 1e6 == pytest.approx(params, abs=1e-9)  # exact, the 128-channel skeleton
        assert t.hook_flops / 1e6 == pytest.approx(flops, rel=1e-3)

    # relabelling interior vertices keeps the hash; changing an op does not
    def cell(op1, op2, op3="maxpool3x3"):
        edges = {(0, 1), (0, 2), (1, 3), (2, 3), (3, 6)}
        arch = {f"e_{i}_{j}": int((i, j) in edges) for i in range(7) for j in range(i + 1, 7)}
        return {
            **arch,
            "op1": op1,
            "op2": op2,
            "op3": op3,
            "op4": "maxpool3x3",
            "op5": "maxpool3x3",
        }

    a, twin = cell("conv3x3-bn-relu", "conv1x1-bn-relu"), cell("conv1x1-bn-relu", "conv3x3-bn-relu")
    assert space.arch_id(a) != space.arch_id(twin) and space.arch_hash(a) == space.arch_hash(twin)
    assert space.arch_hash(
        cell("conv3x3-bn-relu", "conv1x1-bn-relu", "conv3x3-bn-relu")
    ) != space.arch_hash(a)
    assert totals(space.to_graph(a)).params == totals(space.to_graph(twin)).params
    rng = np.random.default_rng(0)
    assert all(space.is_valid(space.sample(rng)) for _ in range(20))
    with pytest.raises(SpaceError, match="not reachable"):
        space.to_graph(
            {
                **{f"e_{i}_{j}": 0 for i in range(7) for j in range(i + 1, 7)},
                **{f"op{v}": "maxpool3x3" for v in range(1, 6)},
            }
        )
