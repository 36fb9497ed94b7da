"""Runs end to end in-process: Parquet store, readers, Pareto/hypervolume, drivers, determinism."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest

import dse
from dse.results import hypervolume, load, nondominated_mask, pareto
from dse.results.store import CORE_SCHEMA
from dse.spaces.zoo import NETWORKS

BASE = {
    "run": {"name": "t", "seed": 3},
    "space": {"name": "nasbench201", "dataset": "cifar10"},
    "proxies": {"analytic": {}},
    "objectives": [
        {"metric": "hook_flops", "direction": "max"},
        {"metric": "params", "direction": "min"},
    ],
    "constraints": [{"metric": "params", "max": 1.0e6}],
    "search": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 12, "max_evaluations": 60},
}


def config(**search) -> dict:
    cfg = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in BASE.items()}
    cfg["search"] = {**BASE["search"], **search}
    return cfg


def test_run_writes_a_parquet_dataset_read_by_duckdb_and_polars(tmp_path):
    result = dse.run(config(), output=tmp_path, progress=False)
    parts = sorted((result.path / "evals").glob("*.parquet"))
    assert parts and not list((result.path / "evals").glob(".*"))  # no temp files left
    glob = str(result.path / "evals" / "*.parquet")
    con = duckdb.connect()
    n, n_hash, max_id = con.execute(
        f"select count(*), count(distinct arch_hash), max(eval_id) from read_parquet('{glob}')"
    ).fetchone()
    assert n == n_hash == max_id + 1 == result.rows
    best = con.execute(
        f"select max(hook_flops) from read_parquet('{glob}') where feasible"
    ).fetchone()[0]
    frame = pl.read_parquet(glob)
    assert frame.height == n and frame.filter(pl.col("feasible"))["hook_flops"].max() == best
    assert frame.schema["encoding"] == pl.List(pl.Int64)
    df = load(result.path)
    assert list(df.columns[: len(CORE_SCHEMA)]) == CORE_SCHEMA.names
    assert df["is_pareto"].any() and (df.loc[df.is_pareto, "params"] <= 1.0e6).all()
    assert df["status"].eq("ok").all()
    m = dse.results.manifest(result.path)
    assert (
        m["status"] == "finished"
        and m["versions"]["pyarrow"]
        and m["config"]["space"]["name"] == "nasbench201"
    )
    assert m["units"]["params"] == "parameters" and m["units"]["hook_flops"] == "FLOPs"


@pytest.mark.parametrize(
    "search",
    [
        {"driver": "pymoo", "algorithm": "nsga2"},
        {"driver": "pymoo", "algorithm": "nsga3"},
        {"driver": "pymoo", "algorithm": "agemoea"},
        {"driver": "random", "batch_size": 16},
    ],
)
@pytest.mark.slow
def test_same_config_and_seed_give_the_same_records(tmp_path, search):
    cfg = config(**search)
    if search["driver"] == "random":
        cfg["search"].pop("algorithm")
        cfg["search"].pop("pop_size")
    a = load(dse.run(cfg, output=tmp_path / "a", progress=False).path)
    b = load(dse.run(cfg, output=tmp_path / "b", progress=False).path)
    volatile = ["run_id", "wall_s", "started_at"] + [c for c in a.columns if c.startswith("time_")]
    pd.testing.assert_frame_equal(a.drop(columns=volatile), b.drop(columns=volatile))
    cfg["run"]["seed"] = 4
    c = load(dse.run(cfg, output=tmp_path / "c", progress=False).path)
    assert list(c.arch_hash) != list(a.arch_hash)


def test_a_registered_pymoo_algorithm_is_a_config_value(tmp_path):
    """Algorithms register like plugins: a user's entry is selectable by name in [search]."""
    from dse.search.pymoo_driver import ALGORITHMS

    ALGORITHMS.add("my_nsga2", ALGORITHMS["nsga2"])
    mine = load(dse.run(config(algorithm="my_nsga2"), output=tmp_path / "m", progress=False).path)
    ours = load(dse.run(config(algorithm="nsga2"), output=tmp_path / "o", progress=False).path)
    assert list(mine.arch_hash) == list(ours.arch_hash)


def test_budget_is_exact_and_nsga2_beats_random_on_hypervolume(tmp_path):
    ref = (0.0, 1.0e6)
    objectives = {"hook_flops": "max", "params": "min"}
    hv = {}
    for name, search in (
        ("nsga2", {"max_evaluations": 150}),
        ("random", {"driver": "random", "batch_size": 12, "max_evaluations": 150}),
    ):
        cfg = config(**search)
        if name == "random":
            cfg["search"].pop("algorithm")
            cfg["search"].pop("pop_size")
        vols = []
        for seed in (0, 1, 2):
            cfg["run"]["seed"] = seed
            r = dse.run(cfg, output=tmp_path / f"{name}{seed}", progress=False)
            assert r.proposals == 150
            vols.append(hypervolume(load(r.path), objectives, ref))
        hv[name] = np.mean(vols)
    assert hv["nsga2"] > hv["random"]


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"a": rng.random(200), "b": rng.random(200), "feasible": rng.random(200) > 0.2}
    )
    mask = pareto(df, {"a": "max", "b": "min"})
    f = np.stack([-df.a, df.b], 1)
    for i in range(len(df)):
        dominated = any(
            df.feasible[j] and np.all(f[j] <= f[i]) and np.any(f[j] < f[i]) for j in range(len(df))
        )
        assert mask[i] == (bool(df.feasible[i]) and not dominated)


def test_hypervolume_2d_by_hand_and_against_pymoo():
    df = pd.DataFrame({"acc": [0.9, 0.8, 0.5], "lat": [3.0, 1.0, 0.5]})
    # ref (acc 0, lat 4): rectangles of the staircase
    expected = 0.9 * 1.0 + 0.8 * 2.0 + 0.5 * 0.5
    assert hypervolume(df, {"acc": "max", "lat": "min"}, (0.0, 4.0)) == pytest.approx(expected)
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(1)
    pts = pd.DataFrame(rng.random((50, 2)), columns=["x", "y"])
    ours = hypervolume(pts, {"x": "min", "y": "min"}, (1.1, 1.1))
    theirs = HV(ref_point=np.array([1.1, 1.1]))(pts.to_numpy())
    assert ours == pytest.approx(theirs)
    three = pd.DataFrame(rng.random((30, 3)), columns=["x", "y", "z"])
    assert hypervolume(three, {"x": "min", "y": "min", "z": "min"}, (1, 1, 1)) == pytest.approx(
        HV(ref_point=np.ones(3))(three.to_numpy())
    )
    assert nondominated_mask(np.array([[1.0, 1.0], [np.nan, 0.0]])).tolist() == [True, False]


def test_failing_candidates_do_not_stop_the_search(tmp_path):
    cfg = config(max_evaluations=48)
    cfg["run"]["plugins"] = ["dse_test_plugins"]
    cfg["proxies"]["flaky"] = {}
    r = dse.run(cfg, output=tmp_path, progress=False)
    df = load(r.path)
    failed = df[df.status == "failed"]
    assert r.proposals == 48 and len(failed) > 0 and (df.status == "ok").sum() > 0
    assert failed.error.str.contains("simulated crash").all() and not failed.feasible.any()
    assert not df.loc[df.is_pareto, "status"].eq("failed").any()


def test_repeated_proposals_are_served_from_cache(tmp_path):
    cfg = config(driver="random", batch_size=50, max_evaluations=400)
    cfg["search"].pop("algorithm")
    cfg["search"].pop("pop_size")
    cfg["space"] = {"name": "zoo"}  # a handful of architectures only
    r = dse.run(cfg, output=tmp_path, progress=False)
    n = len(NETWORKS)
    assert n >= 6 and r.rows == n and r.proposals == 400 and r.cached == 400 - n
