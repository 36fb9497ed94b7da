"""The TransNAS-Bench-101 micro space against NASLib's parameter and FLOP columns."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import reference_data

from dse.graph import totals, validate
from dse.registry import PROXIES
from dse.space import SpaceError
from dse.spaces.transnas101 import TASKS, TransNas101MicroSpace
from dse.training.network import build_network


@pytest.fixture(scope="module")
def tnb() -> pd.DataFrame:
    return pd.read_csv(reference_data("transnas101_micro_naslib.csv"), dtype=str)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_params_equal_naslibs_and_flops_match_on_sampled_cells(tnb, task):
    space = TransNas101MicroSpace(task)
    rows = tnb.sample(40, random_state=1)
    p_err, f_diff = [], []
    for ix, params, flops in zip(
        rows.naslib_op_indices, rows[f"naslib_params_{task}"], rows[f"naslib_flops_{task}"]
    ):
        t = totals(space.to_graph(space.parse(ix)))
        p_err.append(t.params / (float(params) * 1e6) - 1)
        f_diff.append(float(flops) * 1e6 - t.hook_flops)
    assert np.abs(p_err).max() < 1e-6  # the column's six decimals of millions
    f_diff = np.array(f_diff)
    # NASLib's counter differs from hook_flops by a constant per task, outside the cell (the
    # heads' pooling and bias; the generative decoder's final tanh, 3 x 256 x 256): FLOPs
    # match to the FLOP up to it, so ranks are exact (BENCHMARKS.md)
    assert f_diff.max() - f_diff.min() < 5
    if TASKS[task][0] == "generate":
        assert abs(f_diff.mean() + 3 * 256 * 256) < 5
    elif task == "jigsaw":
        assert (
            abs(f_diff.mean()) / (float(rows.naslib_flops_jigsaw.astype(float).min()) * 1e6) < 4e-3
        )
    else:
        assert abs(f_diff.mean()) < 9000  # 0 (segmentsemantic) or 8,704 - outputs


def test_the_tables_metrics_belong_to_the_digit_reading_of_naslib_indices(tnb):
    # cells the digits reading disconnects (no path from the input) must train worst
    space = TransNas101MicroSpace()
    acc = tnb.val_class_scene.astype(float)

    def connected(arch):
        reach = {0}
        for to in (1, 2, 3):
            if any(f in reach and arch[f"{to}<-{f}"] != "none" for f in range(to)):
                reach.add(to)
        return 3 in reach

    cut = np.array([not connected(space.parse(ix)) for ix in tnb.naslib_op_indices])
    assert cut.sum() >= 10
    assert acc[cut].mean() < 20 < 40 < acc[~cut].mean()


def test_parse_forms_agree_and_bad_input_names_the_field():
    space = TransNas101MicroSpace()
    arch = space.parse("64-41414-1_02_333")
    assert space.parse("1 0 2 3 3 3") == arch
    assert space.code(arch) == "64-41414-1_02_333"
    text = "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert space.parse(text) == arch
    assert space.arch_id(arch) == text
    for bad in ("1 0 2 3 3", "64-41414-1_02_33", "1 0 2 3 3 4", "32-41414-1_02_333"):
        with pytest.raises(SpaceError, match="arch"):
            space.parse(bad)
    with pytest.raises(SpaceError, match="avg_pool_3x3"):
        space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(SpaceError, match="task"):
        TransNas101MicroSpace("depth")
    with pytest.raises(SpaceError, match="resolution"):
        TransNas101MicroSpace(resolution=100)
    with pytest.raises(SpaceError, match="multiple of 128 for jigsaw"):
        TransNas101MicroSpace("jigsaw", resolution=64)


@pytest.mark.parametrize("task", ["class_object", "jigsaw", "segmentsemantic", "autoencoder"])
def test_torch_networks_match_the_ir_at_the_reduced_resolution(task):
    resolution = 128 if task == "jigsaw" else 32
    space = TransNas101MicroSpace(task, resolution=resolution)
    g = space.to_graph(space.parse("64-41414-1_02_323"))
    validate(g)
    net = build_network(g, seed=0)
    assert sum(p.numel() for p in net.parameters()) == totals(g).params
    side = 32
    out = net(torch.randn(2, 3, side, side))
    head, outputs = TASKS[task]
    expected = (2, outputs) if head in ("classify", "jigsaw") else (2, outputs, side, side)
    assert tuple(out.shape) == expected
    # the decoders are the same layers at any resolution
    full = TransNas101MicroSpace(task)
    assert totals(full.to_graph(full.parse("64-41414-1_02_323"))).params == totals(g).params


@pytest.mark.slow
def test_dps_per_task_runs_end_to_end_on_a_few_cells(tmp_path, subprocess_env, monkeypatch):
    env = {**subprocess_env, "DSE_PROXY_STORE": str(tmp_path / "store")}
    args = [
        "dps", "--truth", str(reference_data("transnas101_micro_naslib.csv")),
        "--target", "val_class_object", "--space", "transnas101_micro",
        "--space-param", "task=class_object", "--space-param", "resolution=32",
        "--arch-column", "naslib_op_indices", "--archs", "4", "--population", "2",
        "--sample", "2", "--budget", "2", "--iterations", "2", "--quiet",
        "--output", str(tmp_path / "runs"), "--name", "tnb-object",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "dse.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "store" / "tnb-object" / "v1.json").read_text())
    assert record["provenance"]["space_params"] == {"task": "class_object", "resolution": 32}
    assert len(record["provenance"]["archs"]) == 4
    assert -1.0 <= record["provenance"]["rho"] <= 1.0
    monkeypatch.setenv("DSE_PROXY_STORE", env["DSE_PROXY_STORE"])
    assert PROXIES.create("eproxy", saved="tnb-object").config.iterations == 2
