"""The few-shot proxy ensemble, regularised SWAP and the shipped proxy configurations."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

from dse.proxies.dps import fitness_rows, read_truth
from dse.proxies.ensemble import EnsembleWeights, fit_ensemble
from dse.proxies.saved import load_proxy, save_proxy, shipped_names
from dse.proxies.swap_reg import fit_size_prior, regularised, size_factor
from dse.registry import PROXIES, SPACES


def test_rank_fit_recovers_a_hidden_combination_and_scores_unseen_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(220, 3))
    truth = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.05 * rng.normal(size=220)
    values = np.column_stack([np.exp(x[:, 0]) * 10, x[:, 1], x[:, 2]])  # a log-scaled column
    fitted = fit_ensemble(["a", "b", "noise"], values[:20], truth[:20])
    assert fitted.log == (True, False, False)
    assert fitted.weights[0] > 0 > fitted.weights[1]
    assert abs(fitted.weights[2]) < abs(fitted.weights[1])
    held = pd.Series(fitted.combine(values[20:])).corr(pd.Series(truth[20:]), method="spearman")
    assert held > 0.9
    assert fitted.l2 in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    again = fit_ensemble(["a", "b", "noise"], values[:20], truth[:20])
    assert again == fitted  # convex loss, fixed grid: deterministic
    nan_row = fitted.combine(np.array([[np.nan, 0.0, 0.0]]))
    assert np.isfinite(nan_row).all()  # a failed proxy scores as the fitting median


def test_ensemble_rejects_mismatched_fields():
    with pytest.raises(ValueError, match="weights: needs one value per component"):
        EnsembleWeights(("a", "b"), (False, False), (0.0, 0.0), (1.0, 1.0), (1.0,), 0.0)
    with pytest.raises(ValueError, match="log: needs true/false"):
        EnsembleWeights(("a",), ("False",), (0.0,), (1.0,), (1.0,), 0.0)
    with pytest.raises(ValueError, match="values: expected 4 architectures x 2"):
        fit_ensemble(["a", "b"], np.zeros((4, 3)), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="an ensemble cannot contain an ensemble"):
        PROXIES.create("proxy_ensemble", components=["proxy_ensemble@x"], weights=[1.0])


def test_size_prior_is_eq_5_and_its_fit_finds_the_best_size():
    params = np.array([1e5, 5e5, 1e6, 1.5e6, 2e6])
    assert np.allclose(
        size_factor(params, 1000.0, 1e5), np.exp(-((params / 1e3 - 1000) ** 2) / 1e5)
    )
    swap = np.array([100.0, 200, 300, 400, 500])
    assert np.allclose(
        regularised(swap, params, 1000.0, 1e5), np.log(swap * size_factor(params, 1000.0, 1e5))
    )
    truth = -np.abs(params / 1e3 - 1000)  # the middle-sized model is best
    mu, sigma, rho = fit_size_prior(np.full(5, 300.0), params, truth)
    assert mu == pytest.approx(1000.0) and rho > 0.97


@pytest.mark.slow
def test_swap_reg_provider_on_a_cell():
    space = SPACES.create("nasbench201")
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    )
    g = space.to_graph(arch)
    reg = PROXIES.create("swap_reg", mu=800.0, sigma=2e5, batch_size=8)
    swap = PROXIES.create("swap", batch_size=8)
    value = reg.evaluate(g, arch, space)["swap_reg"]
    from dse.graph import totals

    expected = regularised(swap.evaluate(g, arch, space)["swap"], totals(g).params, 800.0, 2e5)
    assert value == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="sigma"):
        PROXIES.create("swap_reg", sigma=0)


def test_shipped_dps_configuration_loads_on_a_fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_PROXY_STORE", str(tmp_path / "empty"))
    assert "nb201-dps" in shipped_names()
    record = load_proxy("nb201-dps")
    assert record["proxy"] == "eproxy" and record["version"] == 1
    truth = read_truth(reference_data("nasbench201_naslib.csv"), "val_acc_cifar10")
    assert record["provenance"]["archs"] == truth.arch_text.iloc[fitness_rows(362, 20, 0)].tolist()
    proxy = PROXIES.create("eproxy", saved="nb201-dps")
    assert (proxy.config.c_mid, proxy.config.stage, proxy.config.features) == (
        16,
        1,
        ("wave_l", "dot"),
    )
    # a local save of the same name numbers after the shipped version and wins
    path = save_proxy("nb201-dps", "eproxy", {**record["params"], "lr": 1.0}, {})
    assert path.name == "v2.json" and load_proxy("nb201-dps")["params"]["lr"] == 1.0
    assert load_proxy("nb201-dps@v1")["params"]["lr"] == 0.9
    with pytest.raises(ValueError, match="allowed values"):
        load_proxy("nb201-dps@v7")


@pytest.mark.slow
def test_shipped_ensemble_scores_a_cell_it_never_saw(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_PROXY_STORE", str(tmp_path / "empty"))
    record = load_proxy("nb201-ensemble")
    space = SPACES.create("nasbench201")
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    assert text not in record["provenance"]["archs"]
    arch = space.parse(text)
    ensemble = PROXIES.create("proxy_ensemble", saved="nb201-ensemble")
    good = ensemble.evaluate(space.to_graph(arch), arch, space)["proxy_ensemble"]
    cut = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")  # no path: untrainable
    bad = ensemble.evaluate(space.to_graph(cut), cut, space)["proxy_ensemble"]
    assert np.isfinite(good) and good > bad


def _dse(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dse.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_proxy_fit_saves_an_ensemble_that_proxy_eval_scores_on_unseen_cells(
    tmp_path, subprocess_env
):
    env = {**subprocess_env, "DSE_PROXY_STORE": str(tmp_path / "store")}
    truth = str(reference_data("nasbench201_naslib.csv"))
    common = ["--truth", truth, "--batch-size", "8"]
    fit = _dse(
        "proxy-fit", *common, "--archs", "6", "--components", "synflow", "params", "--name",
        "tiny", env=env,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "fitted on 6 architectures" in fit.stdout
    record = json.loads((tmp_path / "store" / "tiny" / "v1.json").read_text())
    assert record["proxy"] == "proxy_ensemble" and len(record["provenance"]["archs"]) == 6
    assert record["params"]["components"] == ["synflow", "params"]
    assert all(isinstance(v, bool) for v in record["params"]["log"])  # JSON booleans
    scored = _dse(
        "proxy-eval", *common, "--proxies", "proxy_ensemble@tiny", "params", "--limit", "8",
        "--out", str(tmp_path / "card"), env=env,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    rows = pd.read_parquet(tmp_path / "card" / "scores.parquet")
    assert not set(rows.arch_id) & set(record["provenance"]["archs"])
    assert rows["proxy_ensemble@tiny"].notna().all()
    bad = _dse("proxy-fit", *common, "--components", "proxy_ensemble@tiny", env=env)
    assert bad.returncode == 2 and "ensemble cannot contain an ensemble" in bad.stderr


def test_space_param_values_read_json_else_text():
    from dse.commands.proxy_eval import space_param_values

    assert space_param_values(["resolution=32", "task=jigsaw", "affine_ops=false"]) == {
        "resolution": 32,
        "task": "jigsaw",
        "affine_ops": False,
    }
    with pytest.raises(ValueError, match="--space-param: expected KEY=VALUE, got 'resolution'"):
        space_param_values(["resolution"])


def test_proxy_fit_reads_scores_from_several_proxy_eval_folders(tmp_path):
    from dse.commands.proxy_fit import read_scores
    from dse.params import ConfigError

    first, second = tmp_path / "zc", tmp_path / "az"
    first.mkdir()
    second.mkdir()
    ids = ["a", "b", "c"]
    pd.DataFrame(
        {"arch_id": ids, "synflow": [1.0, 2.0, 3.0], "synflow_s": 0.1, "val": [0.1, 0.2, 0.3]}
    ).to_parquet(first / "scores.parquet")
    pd.DataFrame(  # a second pass: another proxy, the same one again (the first folder's wins)
        {"arch_id": ids[::-1], "meco": [6.0, 5.0, 4.0], "meco_s": 0.2, "synflow": 9.0,
         "synflow_s": 9.0}
    ).to_parquet(second / "scored.parquet")  # fmt: skip
    joined = read_scores([first, second], ["synflow", "meco"])
    assert joined.loc[["a", "b", "c"], "meco"].tolist() == [4.0, 5.0, 6.0]
    assert joined.loc[["a", "b", "c"], "synflow"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match=r"lack components \['zico'\]; they have"):
        read_scores([first, second], ["synflow", "zico"])
