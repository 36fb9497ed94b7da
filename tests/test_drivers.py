"""Search drivers on NAS-Bench-201 restricted to the 362 cells with tabular accuracy, against the
FPGA simulator's latency: one interface, budgets, warm start, shared optuna studies, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data
from test_cli import KILL

import dse
from dse.registry import SPACES
from dse.results import default_reference, hypervolume, load, minimisation_matrix
from dse.subset import SubsetSpace, restrict

OBJECTIVES = [("accuracy", "max"), ("fpga_latency_ms", "min")]


def tabular_config(driver: dict, seed: int = 0, budget: int = 60) -> dict:
    table = str(reference_data("nasbench201_naslib.csv"))
    return {
        "run": {"name": driver["driver"], "seed": seed},
        "space": {
            "name": "nasbench201",
            "dataset": "cifar10",
            "restrict": {"file": table, "column": "arch_str"},
        },
        "proxies": {"tabular": {"file": table, "column": "val_acc_cifar10", "metric": "accuracy"}},
        "simulators": {
            "fpga": {"board": "ZC706", "architecture": "recursive", "layer_overhead_cycles": 1738}
        },
        "objectives": [{"metric": m, "direction": d} for m, d in OBJECTIVES],
        "search": {**driver, "max_evaluations": budget},
    }


DRIVERS = {
    "random": {"driver": "random"},
    "rea": {"driver": "rea", "population_size": 20, "sample_size": 5},
    "pymoo": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 20},
    "optuna-tpe": {"driver": "optuna", "sampler": "tpe"},
    "optuna-nsga2": {"driver": "optuna", "sampler": "nsga2", "population_size": 20},
}


def test_restricted_space_projects_samples_and_mutates_onto_listed_cells():
    base = SPACES.create("nasbench201")
    space = restrict(
        base, {"file": str(reference_data("nasbench201_naslib.csv")), "column": "arch_str"}
    )
    assert isinstance(space, SubsetSpace) and space.size == 362
    listed = {tuple(x) for x in space.allowed}
    rng = np.random.default_rng(0)
    X = rng.integers(0, space.cardinalities, size=(200, 6))
    repaired = space.repair_encodings(X)
    assert all(tuple(x) in listed for x in repaired)
    # the projection is the nearest listed cell: no listed cell is closer
    dist = (X[:, None, :] != space.allowed[None]).sum(axis=2).min(axis=1)
    assert np.array_equal((X != repaired).sum(axis=1), dist)
    x = space.allowed[5]
    child = space.mutate_encoding(x, rng)
    assert tuple(child) in listed and not np.array_equal(child, x)
    assert all(tuple(s) in listed for s in space.sample_encodings(rng, 50))
    assert space.arch_id(space.decode(space.allowed[0])) in set(
        pd.read_csv(reference_data("nasbench201_naslib.csv")).arch_str
    )


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_every_driver_runs_the_budget_on_listed_cells_deterministically(tmp_path, name):
    cfg = tabular_config(DRIVERS[name], seed=1, budget=40)
    first = dse.run(cfg, output=tmp_path / "a", progress=False)
    again = dse.run(cfg, output=tmp_path / "b", progress=False)
    assert first.proposals == 40 and first.status == "finished"
    a, b = load(first.path), load(again.path)
    assert (a["status"] == "ok").all(), a.loc[
        a.status != "ok", "error"
    ].head()  # no unlisted cell proposed
    assert a["arch_hash"].is_unique and a["driver"].eq(DRIVERS[name]["driver"]).all()
    assert list(a.arch_hash) == list(b.arch_hash) and list(a.accuracy) == list(b.accuracy)
    assert dse.results.manifest(first.path)["stopped_by"] == "max_evaluations"


def test_tpe_beats_random_search_at_equal_budget_over_three_seeds(tmp_path):
    full = dse.run(
        tabular_config({"driver": "random", "batch_size": 400}, budget=3000),
        output=tmp_path,
        progress=False,
    )
    everything = load(full.path)
    assert len(everything) == 362  # the random driver samples the listed cells only
    r = default_reference(minimisation_matrix(everything, OBJECTIVES))
    ref = [-r[0], r[1]]
    best = hypervolume(everything, OBJECTIVES, ref)
    scores = {}
    for name in ("random", "optuna-tpe"):
        scores[name] = [
            hypervolume(
                load(
                    dse.run(
                        tabular_config(DRIVERS[name], seed=s, budget=60),
                        output=tmp_path,
                        progress=False,
                    ).path
                ),
                OBJECTIVES,
                ref,
            )
            / best
            for s in range(3)
        ]
    assert np.mean(scores["optuna-tpe"]) > np.mean(scores["random"]), scores
    assert all(0 < v <= 1 for vs in scores.values() for v in vs)


def test_hypervolume_stagnation_stops_the_search_early(tmp_path):
    cfg = tabular_config(
        {"driver": "random", "batch_size": 10, "max_stagnant_evaluations": 30}, budget=2000
    )
    result = dse.run(cfg, output=tmp_path, progress=False)
    m = dse.results.manifest(result.path)
    assert m["stopped_by"] == "stagnation" and result.proposals < 2000 and m["hypervolume"] > 0


def test_warm_start_begins_from_the_earlier_front_and_reuses_its_metrics(tmp_path):
    earlier = dse.run(tabular_config(DRIVERS["random"], budget=60), output=tmp_path, progress=False)
    front = load(earlier.path)
    front = front[front.is_pareto]
    for name in ("rea", "pymoo", "optuna-tpe", "random"):
        cfg = tabular_config({**DRIVERS[name], "warm_start": str(earlier.path)}, seed=5, budget=40)
        later = load(dse.run(cfg, output=tmp_path, progress=False).path)
        # the earlier front is what the driver evaluates first (warm designs are ranked best first)
        assert set(later.arch_hash.iloc[: len(front)]) == set(front.arch_hash), name
        reused = later.set_index("arch_hash").loc[list(front.arch_hash)]
        # same evaluation config: the metrics (and the seconds they took) are the earlier run's
        assert np.allclose(
            reused.fpga_latency_ms, front.set_index("arch_hash").loc[reused.index].fpga_latency_ms
        )
        assert np.allclose(reused.wall_s, front.set_index("arch_hash").loc[reused.index].wall_s)
        assert (later.run_id != earlier.run_id).all()


def test_warm_start_from_another_space_is_a_config_error(tmp_path):
    earlier = dse.run(tabular_config(DRIVERS["random"], budget=20), output=tmp_path, progress=False)
    cfg = {
        "run": {"name": "m"},
        "space": {"name": "mbconv"},
        "proxies": {"analytic": {}},
        "objectives": [{"metric": "params"}],
        "search": {"driver": "random", "max_evaluations": 10, "warm_start": str(earlier.path)},
    }
    with pytest.raises(dse.params.ConfigError, match="search.warm_start.*nasbench201"):
        dse.run(cfg, output=tmp_path, progress=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("m-")]  # nothing written


WORKER = """
import sys, dse
cfg = {cfg!r}
dse.run(cfg, output=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_two_optuna_processes_share_one_sqlite_study_and_finish_the_budget(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    cfg = tabular_config(
        {
            "driver": "optuna",
            "sampler": "tpe",
            "batch_size": 4,
            "storage": storage,
            "study_name": "team-study",
        },
        budget=48,
    )
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(cfg=cfg))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "runs")], stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    study = optuna.load_study(study_name="team-study", storage=storage)
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if t.number < 48]
    assert len(counted) == 48 and all(t.state.is_finished() for t in trials)
    assert all(t.state != optuna.trial.TrialState.PRUNED for t in counted)
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2  # one run directory per process
    per_run = {
        r.name: {t.number for t in counted if t.user_attrs.get("dse_run") == r.name} for r in runs
    }
    assert all(len(v) > 0 for v in per_run.values()), per_run  # both contributed
    assert sum(len(v) for v in per_run.values()) == 48
    assert sum(dse.results.manifest(r)["proposals"] for r in runs) == 48


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow
def test_ctrl_c_stops_after_the_current_batch_with_everything_saved(
    tmp_path, subprocess_env, signum, code
):
    """Ctrl-C, and SIGTERM (how SLURM or Kubernetes end a job) alike: the batch in flight
    finishes, the manifest says interrupted, the exit code is 128 + the signal."""
    cfg = tmp_path / "slow.toml"
    cfg.write_text(
        KILL.replace("max_evaluations = 150", "max_evaluations = 400")
    )  # a slow proxy, pymoo batches of 10
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "run",
            str(cfg),
            "--run-id",
            "stopped",
            "--output",
            str(out),
            "--quiet",
        ],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    evals = out / "stopped" / "evals"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(evals.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()
    m = dse.results.manifest(out / "stopped")
    assert m["status"] == "interrupted" and m["stopped_by"] == "interrupted"
    df = load(out / "stopped")
    assert 0 < len(df) < 400 and len(df) == m["evaluations"]
    assert not list(evals.glob(".*"))  # the batch in flight finished and was written whole
    assert "--resume" in err.decode()


@pytest.mark.slow
def test_a_search_evaluating_on_a_dask_cluster_gives_the_in_process_records(tmp_path):
    search = {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 16}
    local = load(
        dse.run(
            tabular_config(search, seed=3, budget=48), output=tmp_path / "a", progress=False
        ).path
    )
    pooled_cfg = tabular_config({**search, "workers": 2}, seed=3, budget=48)
    pooled = load(dse.run(pooled_cfg, output=tmp_path / "b", progress=False).path)
    assert list(pooled.arch_hash) == list(local.arch_hash)
    assert np.allclose(pooled.fpga_latency_ms, local.fpga_latency_ms) and list(
        pooled.accuracy
    ) == list(local.accuracy)
