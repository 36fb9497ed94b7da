"""A stopped run resumed to a larger budget has exactly the records of the uninterrupted run,
for every driver: the resumed run replays its seeded driver against the rows on disk, and the
driver must see what it saw the first time (which designs are known, the front, stagnation)."""

from __future__ import annotations

import pytest

import dse
from dse.results import load, manifest

COLUMNS = ["eval_id", "arch_hash", "batch", "status", "hook_flops", "params"]


def config(driver: dict, stagnant: int | None = None) -> dict:
    search = {**driver, "max_evaluations": 200}
    if stagnant is not None:
        search["max_stagnant_evaluations"] = stagnant
    return {
        "run": {"name": "exact", "seed": 0},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "objectives": [
            {"metric": "hook_flops", "direction": "max"},
            {"metric": "params", "direction": "min"},
        ],
        "search": search,
    }


def stopped_and_resumed(tmp_path, cfg: dict, stop_at: int, total: int):
    short = {**cfg, "search": {**cfg["search"], "max_evaluations": stop_at}}
    dse.run(short, run_id="resumed", output=tmp_path, progress=False)
    dse.run(resume=tmp_path / "resumed", max_evaluations=total, progress=False)
    full = {**cfg, "search": {**cfg["search"], "max_evaluations": total}}
    dse.run(full, run_id="whole", output=tmp_path, progress=False)
    return load(tmp_path / "resumed"), load(tmp_path / "whole")


@pytest.mark.parametrize(
    "driver",
    [
        {"driver": "rea", "population_size": 20, "sample_size": 5},
        {"driver": "rea", "population_size": 20, "sample_size": 5, "batch_size": 4},
        {"driver": "random"},
        {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 20},
        {"driver": "optuna", "sampler": "tpe"},
    ],
    ids=["rea", "rea-batch4", "random", "pymoo", "optuna-tpe"],
)
@pytest.mark.slow
def test_a_run_stopped_at_100_and_resumed_to_200_equals_the_uninterrupted_run(tmp_path, driver):
    """REA's retry loop asks whether a child is known: rows restored from disk count only once
    the replay proposes them again (before, 280 rows for 200 proposals, 179 foreign)."""
    resumed, whole = stopped_and_resumed(tmp_path, config(driver), 100, 200)
    assert resumed[COLUMNS].equals(whole[COLUMNS])
    assert resumed.arch_hash.is_unique and resumed.eval_id.is_unique


@pytest.mark.slow
@pytest.mark.parametrize(
    "driver",
    [
        {"driver": "rea", "population_size": 20, "sample_size": 5},
        {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 20},
    ],
    ids=["rea", "pymoo"],
)
def test_stagnation_counts_the_same_proposals_after_a_resume(tmp_path, driver):
    """The hypervolume of a resumed run grows as its replay proposes the restored rows again,
    so max_stagnant_evaluations stops it where the uninterrupted run stops (before, the whole
    restored front counted at proposal 0 and the run stopped early)."""
    cfg = config(driver, stagnant=60)
    resumed, whole = stopped_and_resumed(tmp_path, cfg, 120, 1000)
    assert resumed[COLUMNS].equals(whole[COLUMNS])
    a, b = manifest(tmp_path / "resumed"), manifest(tmp_path / "whole")
    assert a["stopped_by"] == b["stopped_by"] == "stagnation"
    assert a["hypervolume"] == pytest.approx(b["hypervolume"], rel=1e-12)
    assert a["proposals"] == b["proposals"] < 1000


KILLED = """
[run]
name = "killed"
seed = 3
plugins = ["dse_test_plugins"]
[space]
name = "nasbench201"
[proxies.analytic]
[proxies.slow_params]
delay_s = 0.01
[[objectives]]
metric = "hook_flops"
direction = "max"
[[objectives]]
metric = "params"
direction = "min"
[search]
driver = "rea"
population_size = 20
sample_size = 5
max_evaluations = 160
"""


@pytest.mark.slow
@pytest.mark.parametrize("parts_before_kill", [2, 7])
def test_a_rea_run_killed_at_any_point_resumes_to_the_uninterrupted_records(
    tmp_path, subprocess_env, parts_before_kill
):
    """SIGKILL (no closing, no manifest update) after a few parts, then --resume: the records
    equal the uninterrupted run's, eval_id by eval_id."""
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "k.toml"
    cfg.write_text(KILLED)
    dse_cli = [sys.executable, "-m", "dse.cli", "run"]
    out = tmp_path / "out"
    whole = subprocess.run(
        [*dse_cli, str(cfg), "--run-id", "whole", "--output", str(out), "--quiet"],
        env=subprocess_env,
        capture_output=True,
        text=True,
    )
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(
        [*dse_cli, str(cfg), "--run-id", "killed", "--output", str(out), "--quiet"],
        env=subprocess_env,
    )
    evals = out / "killed" / "evals"
    deadline = time.monotonic() + 60
    while len(list(evals.glob("part-*.parquet"))) < parts_before_kill:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(
        [*dse_cli, "--resume", str(out / "killed"), "--quiet", "--trust-plugins"],
        env=subprocess_env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = load(out / "killed"), load(out / "whole")
    assert a[COLUMNS].equals(b[COLUMNS])
