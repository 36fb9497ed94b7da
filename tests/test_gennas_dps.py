"""GenNAS (3.3), the proxy configuration spaces and DPS (4.2.2): small-scale end-to-end checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

import dse
from dse.proxies.dps import CONFIGURED, fitness_rows, read_truth
from dse.proxies.gennas import PRESETS, GenNASConfig, gennas_loss
from dse.proxies.report_card import evaluate_proxies, fitted_on
from dse.proxies.saved import load_proxy, save_proxy
from dse.registry import PROXIES, SPACES
from dse.results.store import RunStore
from dse.training.data import image_batch

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|",
]


@pytest.mark.slow
def test_gennas_trains_every_stage_head_and_is_deterministic():
    space = SPACES.create("nasbench201", cells_per_stage=1)
    graphs = [space.to_graph(space.parse(c)) for c in CELLS]
    images = image_batch(8, (3, 32, 32), seed=0)
    cfg = GenNASConfig(iterations=15, batch_size=8, channels=16)
    good, bad = (gennas_loss(g, cfg, images) for g in graphs)
    assert (
        0 < good < bad
    )  # the all-conv cell regresses the combo task better than the pooling/zero cell
    assert gennas_loss(graphs[0], cfg, images) == good
    single = GenNASConfig(stages=PRESETS["single"], iterations=15, batch_size=8, channels=16)
    assert gennas_loss(graphs[0], single, images) != good
    with pytest.raises(ValueError, match="stages: \\['sin3d'\\] not allowed"):
        GenNASConfig(stages=(("sin3d",),))


@pytest.mark.parametrize("name", ["eproxy_config", "gennas_task"])
def test_proxy_configuration_spaces_sample_valid_configs(name):
    space = SPACES.create(name)
    rng = np.random.default_rng(0)
    X = space.sample_encodings(rng, 400)
    flags = [i for i, v in enumerate(space.variables) if v.name in space.flags]
    share = X[:, flags].mean()
    assert abs(share - space.p_on) < 0.05  # features included with p_on (0.2 for DPS)
    for x in X[:50]:
        arch = space.decode(x)
        CONFIGURED[space.proxy][0](**space.decisions(arch))  # a valid configuration
        assert space.arch_hash(arch) == space.arch_hash(space.decode(space.encode(arch)))
    if name == "eproxy_config":  # no feature selected means the untrained CNN's: same hash
        arch = space.decode(X[0])
        none = {**arch, **{f: False for f in space.flags}}
        net = {**none, "feature_net": True}
        assert space.arch_hash(none) == space.arch_hash(net)
        assert space.size > 5e6


@pytest.mark.slow
def test_dps_searches_saves_and_reuses_a_proxy(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_PROXY_STORE", str(tmp_path / "store"))
    truth = str(reference_data("nasbench201_naslib.csv"))
    config = {
        "run": {"name": "dps", "seed": 0},
        "space": {"name": "eproxy_config", "iterations": 2},
        "proxies": {
            "proxy_fitness": {
                "truth": truth,
                "column": "val_acc_cifar10",
                "archs": 4,
                "space_params": {"cells_per_stage": 1},
            }
        },
        "objectives": [{"metric": "rho", "direction": "max"}],
        "search": {"driver": "rea", "population_size": 3, "sample_size": 2, "max_evaluations": 5},
    }
    result = dse.run(config, output=tmp_path, progress=False)
    history = dse.results.load(result.path)
    assert len(history) >= 3 and history.rho.between(-1, 1).all() and (history.proxy_s > 0).all()
    best = history.loc[history.rho.idxmax()]
    from dse.proxies.dps import config_params

    space = SPACES.create("eproxy_config", iterations=2)
    params = config_params("eproxy", space.decisions(json.loads(best.arch)))
    texts = read_truth(truth, "val_acc_cifar10").arch_text.iloc[fitness_rows(362, 4, 0)].tolist()
    first = save_proxy("tiny", "eproxy", params, {"rho": float(best.rho), "archs": texts})
    second = save_proxy("tiny", "eproxy", params, {"rho": float(best.rho), "archs": texts})
    assert first.name == "v1.json" and second.name == "v2.json"
    assert load_proxy("tiny")["version"] == 2 and load_proxy("tiny@v1")["version"] == 1
    with pytest.raises(ValueError, match="has no version v9"):
        load_proxy("tiny@v9")
    proxy = PROXIES.create("eproxy", saved="tiny")
    assert proxy.config.iterations == 2 and list(proxy.config.features) == params["features"]
    assert fitted_on(["params", "eproxy@tiny"]) == set(texts)
    space = SPACES.create("nasbench201", cells_per_stage=1)
    card = evaluate_proxies(
        space,
        [space.parse(c) for c in CELLS] * 2,
        [90.0, 40.0, 89.0, 41.0],
        ["eproxy@tiny", "params"],
    )
    assert set(card.summary.proxy) == {"eproxy@tiny", "params"}
    assert np.isfinite(card.scores["eproxy@tiny"]).all()
    with pytest.raises(ValueError, match="is a eproxy configuration, not a gennas one"):
        PROXIES.create("gennas", saved="tiny")
    assert pd.Series(history.arch_id).is_unique


@pytest.mark.slow  # 15 s: a killed DPS search resumed on a two-worker LocalCluster
def test_dps_command_resumes_a_search_on_dask_where_it_stopped(tmp_path):
    """``dse dps --resume`` extends an interrupted search without scoring its finished
    configurations again, here moving it onto a real two-worker LocalCluster (``--workers``),
    refuses other search settings, and saves the best configuration of the whole run."""
    env = {**os.environ, "DSE_PROXY_STORE": str(tmp_path / "store")}
    base = [
        sys.executable,
        "-m",
        "dse.cli",
        "dps",
        "--truth",
        str(reference_data("nasbench201_naslib.csv")),
        "--archs",
        "3",
        "--iterations",
        "1",
        "--population",
        "2",
        "--sample",
        "2",
        "--batch-size",
        "2",
        "--output",
        str(tmp_path / "runs"),
        "--quiet",
    ]

    def dps(*args):
        return subprocess.run(
            base + list(args), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )

    first = dps("--budget", "2")
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    before = dse.results.load(run_dir)
    assert len(before) == 2 and (before.status == "ok").all()
    refused = dps("--budget", "4", "--population", "3", "--resume", str(run_dir))
    assert refused.returncode != 0 and "population_size" in refused.stderr
    more = dps("--budget", "4", "--workers", "2", "--resume", str(run_dir), "--name", "grown")
    assert more.returncode == 0, more.stderr
    after = dse.results.load(run_dir)
    assert (
        len(after) == 4
        and after.arch_id.is_unique
        and list(after.arch_id[:2]) == list(before.arch_id)
    )
    assert (
        after.rho[:2].tolist() == before.rho.tolist()
        and after.proxy_s[:2].tolist() == before.proxy_s.tolist()
    )
    assert (
        RunStore(run_dir).read_manifest()["config"]["search"]["workers"] == 2
    )  # the resume ran on Dask
    saved = load_proxy("grown", store=tmp_path / "store")
    assert (
        saved["provenance"]["configurations"] == 4 and saved["provenance"]["rho"] == after.rho.max()
    )
