"""The DARTS / NAS-Bench-301 space against NASLib's counts and the published ImageNet models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

from dse.graph import totals, validate
from dse.space import SpaceError
from dse.spaces.darts import PUBLISHED, DartsSpace


@pytest.fixture(scope="module")
def nb301() -> pd.DataFrame:
    return pd.read_csv(reference_data("nasbench301_naslib.csv"))


def test_params_equal_naslibs_and_flops_within_1pct_on_every_shown_cell(nb301):
    # NASLib's NAS-Bench-301 model: C = 32, 8 cells, the ops' batch norms without affine weights
    space = DartsSpace(affine_ops=False)
    p_err, f_err = [], []
    for genotype, params, flops in zip(
        nb301.genotype, nb301.naslib_params_cifar10, nb301.naslib_flops_cifar10
    ):
        t = totals(space.to_graph(space.parse(genotype)))
        p_err.append(t.params / (params * 1e6) - 1)
        f_err.append(t.hook_flops / (flops * 1e6) - 1)
    assert len(p_err) == 362
    assert np.abs(p_err).max() < 1e-5  # NASLib's column has six significant digits
    assert np.abs(f_err).max() < 0.01 and np.median(np.abs(f_err)) < 0.005


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_on_imagenet(name):
    genotype, params, macs = PUBLISHED[name]
    space = DartsSpace("imagenet")
    g = space.to_graph(space.parse(json.dumps(genotype)))
    validate(g)
    t = totals(g)
    assert abs(t.params / params - 1) < 0.02
    if name == "darts_v2":  # DARTS' 574M is 5% above every recount (see BENCHMARKS.md)
        assert 0.04 < 1 - t.hook_flops / macs < 0.06
    else:  # P-DARTS and PC-DARTS count multiply-adds as module hooks do
        assert abs(t.hook_flops / macs - 1) < 0.02


def test_parse_and_genotype_round_trip(nb301):
    space = DartsSpace()
    arch = space.parse(nb301.genotype[0])
    assert json.loads(space.genotype(arch)) == json.loads(nb301.genotype[0])
    assert space.arch_id(arch) == space.genotype(arch)
    bad = json.loads(nb301.genotype[0])
    bad["normal"][0][1] = 2  # node 0 reads only the two cell inputs
    with pytest.raises(SpaceError, match="normal.n0.e0.in"):
        space.parse(json.dumps(bad))
    with pytest.raises(SpaceError, match="genotype"):
        space.parse("{not json")
    assert space.size == (16**2 * 24**2 * 32**2 * 40**2) ** 2  # two edges per node, per cell
