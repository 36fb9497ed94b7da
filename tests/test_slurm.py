"""Sweeps, searches and proxy report cards on a real one-node SLURM (started by .ci/slurm in CI),
and what happens when its jobs are cancelled, never start or all die."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import TESTS

#: columns that say which run, when or how fast a row was made, not what it is
TIMING = ("run_id", "wall_s", "started_at")


def _slurm_ready() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and any(
        s.startswith("idle") or s == "mixed" for s in out.stdout.split()
    )


@pytest.fixture(scope="module")
def slurm():
    """A running SLURM: skipped where it is not installed (a laptop), a failure in CI."""
    if not _slurm_ready():
        if os.environ.get("CI"):
            pytest.fail("CI: SLURM is not running (.ci/slurm start must bring it up)")
        pytest.skip("no SLURM here (sinfo absent or no idle node); CI starts one")
    yield
    subprocess.run(["scancel", "-n", "dask-worker"], capture_output=True)


def dse(*args: str, cwd: Path, wait: bool = True):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "dse.cli", *args]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    return subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env
    )


def sweep_config(points: int, delay_s: float, chunk: int) -> str:
    return f"""
[run]
name = "slurm"
plugins = ["dse_test_plugins"]
[space]
name = "nasbench201"
[proxies.slow_params]
delay_s = {delay_s}
[sweep]
method = "random"
points = {points}
chunk_size = {chunk}
[sweep.parameters]
arch = "all"
"""


def records(path: Path) -> pd.DataFrame:
    df = pd.concat(pd.read_parquet(p) for p in sorted((path / "evals").glob("part-*.parquet")))
    keep = [c for c in df.columns if c not in TIMING and not c.startswith("time_")]
    return df[keep].sort_values("eval_id").reset_index(drop=True)


def only_run(out: Path) -> Path:
    (path,) = [p for p in out.iterdir() if (p / "manifest.json").exists()]
    return path


def wait_for_parts(out: Path, n: int, proc, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(out.glob("*/evals/part-*.parquet"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk finished in time"
        time.sleep(0.1)


def worker_jobs() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-n", "dask-worker", "-t", "RUNNING", "-o", "%i"],
        capture_output=True,
        text=True,
    )
    return out.stdout.split()


SLURM = ["--cluster", "slurm", "--cluster-param", "memory=500MB"]
#: a worker that imports torch needs more than the nanny's 500 MB
TORCH_SLURM = ["--cluster", "slurm", "--cluster-param", "memory=3GB"]


@pytest.mark.slow
def test_a_sweep_on_two_slurm_jobs_equals_the_same_sweep_in_one_process(slurm, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(200, 0.0, 20))
    on_slurm = dse(
        "sweep", str(cfg), "--output", "a", *SLURM, "--cluster-param", "jobs=2", cwd=tmp_path
    )
    assert on_slurm.returncode == 0, on_slurm.stderr
    here = dse("sweep", str(cfg), "--output", "b", "--workers", "0", "--quiet", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    a, b = only_run(tmp_path / "a"), only_run(tmp_path / "b")
    pd.testing.assert_frame_equal(records(a), records(b))
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["cluster"]["kind"] == "slurm" and manifest["cluster"]["jobs"] == 2
    assert "slurm: up to 2 job(s) submitted" in on_slurm.stderr


@pytest.mark.slow
def test_a_job_cancelled_mid_sweep_loses_and_duplicates_nothing(slurm, tmp_path):
    """One of two jobs is scancel-ed after the first chunks: its chunks run on the other job;
    the sweep equals the uninterrupted one, row for row."""
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(120, 0.05, 6))  # 20 chunks of about 0.3 s each
    proc = dse(
        "sweep",
        str(cfg),
        "--output",
        "a",
        *SLURM,
        "--cluster-param",
        "jobs=2",
        cwd=tmp_path,
        wait=False,
    )
    wait_for_parts(tmp_path / "a", 2, proc)
    jobs = worker_jobs()
    assert len(jobs) == 2, jobs
    subprocess.run(["scancel", jobs[0]], check=True)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "left (its job ended, was cancelled or hit its walltime)" in err
    here = dse("sweep", str(cfg), "--output", "b", "--workers", "0", "--quiet", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    got, want = records(only_run(tmp_path / "a")), records(only_run(tmp_path / "b"))
    assert len(got) == 120 and got["eval_id"].is_unique
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
def test_every_job_gone_stops_with_exit_1_and_the_sweep_resumes(slurm, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(120, 0.05, 6))
    proc = dse(
        "sweep",
        str(cfg),
        "--output",
        "a",
        *SLURM,
        "--cluster-param",
        "jobs=1",
        "--cluster-param",
        "worker_timeout_s=5",
        cwd=tmp_path,
        wait=False,
    )
    wait_for_parts(tmp_path / "a", 2, proc)
    subprocess.run(["scancel", "-n", "dask-worker"], check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "no worker alive for 5 s" in err and "resume" in err
    path = only_run(tmp_path / "a")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["status"].startswith("failed") and manifest["chunks_done"] >= 2
    done = dse(
        "sweep", "--resume", str(path), "--workers", "0", "--quiet", "--trust-plugins", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    here = dse("sweep", str(cfg), "--output", "b", "--workers", "0", "--quiet", cwd=tmp_path)
    assert here.returncode == 0
    pd.testing.assert_frame_equal(records(path), records(only_run(tmp_path / "b")))


@pytest.mark.slow
def test_workers_that_never_start_stop_the_sweep_with_the_queue_reason(slurm, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(40, 0.0, 10))
    held = dse(
        "sweep",
        str(cfg),
        "--output",
        "a",
        *SLURM,
        "--cluster-param",
        'job_extra_directives=["--begin=now+1hour"]',
        "--cluster-param",
        "worker_timeout_s=3",
        cwd=tmp_path,
    )
    assert held.returncode == 1, held.stderr
    line = held.stderr.strip().splitlines()[-1]
    assert "no worker started within 3 s" in line and "BeginTime" in line, line
    assert not worker_jobs()  # the held jobs were cancelled with the cluster
    path = only_run(tmp_path / "a")
    resumed = dse(
        "sweep", "--resume", str(path), "--workers", "0", "--quiet", "--trust-plugins", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(records(path)) == 40


@pytest.mark.slow
def test_a_search_evaluates_its_batches_on_slurm_jobs(slurm, tmp_path):
    cfg = tmp_path / "r.toml"
    cfg.write_text(
        """
[run]
name = "search"
[space]
name = "nasbench201"
[proxies.analytic]
[[objectives]]
metric = "params"
direction = "min"
[[objectives]]
metric = "flops"
direction = "max"
[search]
driver = "pymoo"
pop_size = 16
max_evaluations = 48
"""
    )
    on_slurm = dse("run", str(cfg), "--output", "a", "--quiet", *SLURM, cwd=tmp_path)
    assert on_slurm.returncode == 0, on_slurm.stderr
    here = dse("run", str(cfg), "--output", "b", "--quiet", cwd=tmp_path)
    assert here.returncode == 0, here.stderr
    a, b = only_run(tmp_path / "a"), only_run(tmp_path / "b")
    pd.testing.assert_frame_equal(records(a), records(b))
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["config"]["cluster"]["kind"] == "slurm"


@pytest.mark.parametrize(
    "params, message",
    [
        (["--cluster", "kubernetes"], "invalid choice: 'kubernetes'"),
        (["--cluster", "slurm", "--cluster-param", "memory=lots"], "--cluster.memory: 'lots'"),
        (["--cluster", "slurm", "--cluster-param", "walltime=soon"], "--cluster.walltime"),
        (["--cluster", "slurm", "--cluster-param", "jobs=0"], "--cluster.jobs: must be >= 1"),
        (["--cluster", "slurm", "--cluster-param", "minimum_jobs=1"], "maximum_jobs too"),
        (["--cluster", "slurm", "--cluster-param", "cpus=4"], "--cluster.cpus"),
        (["--cluster-param", "jobs=2"], "--cluster-param: give --cluster KIND too"),
        (["--cluster", "scheduler"], "address"),
    ],
)
@pytest.mark.slow
def test_bad_cluster_fields_are_one_line_and_write_nothing(tmp_path, params, message):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(10, 0.0, 5))
    proc = dse("sweep", str(cfg), "--output", "out", *params, cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and message in lines[-1], proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_cluster_section_in_a_config_names_its_field(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(10, 0.0, 5) + '\n[cluster]\nkind = "slurm"\nqueue = 3\n')
    proc = dse("sweep", str(cfg), "--output", "out", cwd=tmp_path)
    assert proc.returncode == 2 and "cluster.queue" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_proxy_report_card_on_slurm_equals_the_one_core_card(slurm, tmp_path):
    """200 NAS-Bench-201 cells scored by synflow on two SLURM jobs: the same scores (to the
    last bits torch's thread count leaves) and the same report card as in one process."""
    from conftest import reference_data

    args = [
        "proxy-eval",
        "--truth",
        str(reference_data("nasbench201_naslib.csv")),
        "--proxies",
        "synflow",
        "--target",
        "val_acc_cifar10",
        "--limit",
        "200",
    ]
    one = dse(*args, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = dse(
        *args,
        "--out",
        "two",
        *TORCH_SLURM,
        "--cluster-param",
        "jobs=2",
        "--chunk-size",
        "20",
        cwd=tmp_path,
    )
    assert two.returncode == 0, two.stderr
    a, b = (pd.read_parquet(tmp_path / d / "scores.parquet") for d in ("one", "two"))
    assert a["arch_id"].tolist() == b["arch_id"].tolist()
    assert ((a["synflow"] - b["synflow"]).abs() <= 1e-12 * a["synflow"].abs()).all()
    ca, cb = (pd.read_parquet(tmp_path / d / "report_card.parquet") for d in ("one", "two"))
    cols = ["proxy", "target", "spearman", "kendall", "top10_retrieval", "n"]
    pd.testing.assert_frame_equal(ca[cols], cb[cols])


@pytest.mark.slow
def test_dps_scores_its_configurations_on_slurm_jobs(slurm, tmp_path):
    from conftest import reference_data

    env_store = tmp_path / "store"
    os.environ["DSE_PROXY_STORE"] = str(env_store)
    try:
        proc = dse(
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
            "--budget",
            "2",
            "--output",
            "runs",
            "--quiet",
            *TORCH_SLURM,
            "--cluster-param",
            "jobs=2",
            cwd=tmp_path,
        )
    finally:
        os.environ.pop("DSE_PROXY_STORE")
    assert proc.returncode == 0, proc.stderr
    run = only_run(tmp_path / "runs")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["cluster"]["kind"] == "slurm"
    assert manifest["config"]["search"]["batch_size"] == 2  # jobs x processes
    assert len(records(run)) == 2


@pytest.mark.slow
def test_a_job_killed_at_its_walltime_keeps_every_finished_chunk(slurm, tmp_path):
    """SLURM ends the only job at its one-minute walltime mid-sweep: the sweep stops with exit
    1 (no worker left), keeps every finished chunk, and a resume anywhere completes it with the
    same rows as an uninterrupted sweep. (About two minutes: SLURM's shortest walltime is a
    minute.)"""
    cfg = tmp_path / "s.toml"
    cfg.write_text(sweep_config(240, 0.5, 5))  # 48 chunks of 2.5 s: 120 s of work
    killed = dse(
        "sweep",
        str(cfg),
        "--output",
        "a",
        *SLURM,
        "--cluster-param",
        "walltime=00:01:00",
        "--cluster-param",
        "worker_timeout_s=10",
        cwd=tmp_path,
    )
    assert killed.returncode == 1, killed.stderr
    assert "left (its job ended, was cancelled or hit its walltime)" in killed.stderr
    path = only_run(tmp_path / "a")
    kept = records(path)
    assert 0 < len(kept) < 240 and kept["eval_id"].is_unique
    done = dse(
        "sweep", "--resume", str(path), "--workers", "0", "--quiet", "--trust-plugins", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    whole = records(path)
    assert len(whole) == 240 and whole["eval_id"].is_unique
    pd.testing.assert_frame_equal(
        whole[whole.eval_id.isin(kept.eval_id)].reset_index(drop=True), kept.reset_index(drop=True)
    )
