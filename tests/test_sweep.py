"""Parameter sweeps: plans (grid, random, LHS, Sobol), config errors, in-process and Dask
execution, resume, and a worker killed mid-sweep."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from conftest import TESTS

import dse
from dse.params import ConfigError
from dse.results import load
from dse.sweeps import Parameter, make_points, plan_sweep, sweep


def gpu_sweep(**sweep_section) -> dict:
    return {
        "run": {"name": "sw", "seed": 4},
        "space": {"name": "nasbench201"},
        "simulators": {"gpu": {"device": "A100-80GB-PCIe", "batch_size": 1}},
        "sweep": {
            "method": "random",
            "points": 120,
            "chunk_size": 25,
            "workers": 0,
            "parameters": {
                "simulators.gpu.device": ["A100-80GB-PCIe", "Titan-RTX"],
                "simulators.gpu.batch_size": {"low": 1, "high": 64, "log": True, "integer": True},
                "arch": "all",
            },
            **sweep_section,
        },
    }


def test_grid_is_the_cartesian_product_in_order():
    pts = make_points([Parameter("a", (1, 2, 3)), Parameter("b", ("x", "y"))], "grid", None, 0)
    assert pts == [{"a": a, "b": b} for a in (1, 2, 3) for b in ("x", "y")]
    ranged = Parameter("c", None, 1.0, 100.0, log=True, num=3).grid_values()
    assert np.allclose(ranged, [1, 10, 100])


def test_latin_hypercube_puts_one_point_in_every_stratum():
    n = 40
    pts = make_points([Parameter("u", None, 0.0, 1.0), Parameter("v", None, 0.0, 1.0)], "lhs", n, 3)
    for name in ("u", "v"):
        strata = np.floor(np.array([p[name] for p in pts]) * n).astype(int)
        assert sorted(strata) == list(range(n))
    assert pts == make_points(
        [Parameter("u", None, 0.0, 1.0), Parameter("v", None, 0.0, 1.0)], "lhs", n, 3
    )


@pytest.mark.parametrize("method", ["random", "sobol", "lhs"])
def test_sampled_values_stay_in_range_and_cover_choices(method):
    params = [Parameter("k", (3, 5, 7)), Parameter("b", None, 1, 256, log=True, integer=True)]
    pts = make_points(params, method, 256, 0)
    assert {p["k"] for p in pts} == {3, 5, 7}
    b = np.array([p["b"] for p in pts])
    assert b.min() >= 1 and b.max() <= 256 and b.dtype.kind == "i" and len(set(b)) > 20


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"method": "halton"},
            "sweep.method: 'halton' is not allowed; allowed values: grid, random, lhs, sobol",
        ),
        (
            {
                "parameters": {
                    "simulators.gpu.device": ["A100-80GB-PCIe", "Voodoo-5"],
                    "arch": "all",
                }
            },
            "simulators.gpu.device.*Voodoo-5",
        ),
        (
            {"parameters": {"simulators.tpu.cores": [1, 2], "arch": "all"}},
            "sweep.parameters.simulators.tpu.cores",
        ),
        ({"parameters": {"arch.nope": [1]}}, "sweep.parameters.arch.nope: unknown variable 'nope'"),
        (
            {"parameters": {"simulators.gpu.batch_size": {"low": 4, "high": 2}, "arch": "all"}},
            "sweep.parameters.simulators.gpu.batch_size.high",
        ),
        ({"parameters": {"simulators.gpu.batch_size": [1, 2]}}, "no architecture is swept"),
        ({"colour": "red"}, "sweep.colour: unknown parameter; allowed: chunk_size, method"),
        ({"parameters": {"arch": "all", "arch.1<-0": ["none"]}}, "'arch.1<-0' is swept twice"),
        ({"points": None, "method": "sobol"}, "sweep.points: method 'sobol' needs points"),
    ],
)
def test_bad_sweep_configs_name_the_field(change, message):
    cfg = gpu_sweep(**change)
    if change.get("points", 1) is None:
        del cfg["sweep"]["points"]
    with pytest.raises(ConfigError, match=message):
        plan_sweep(cfg)


def test_in_process_sweep_writes_one_row_per_point_and_resumes_missing_chunks(tmp_path):
    result = sweep(gpu_sweep(), output=tmp_path, progress=False)
    df = load(result.path, with_pareto=False)
    plan = plan_sweep(gpu_sweep())
    assert len(df) == 120 and list(df.eval_id) == list(range(120)) and result.chunks == 5
    assert (df["status"] == "ok").all()
    expected = [(p["simulators.gpu.device"], p["simulators.gpu.batch_size"]) for p in plan.points]
    assert list(zip(df["simulators.gpu.device"], df["simulators.gpu.batch_size"])) == expected
    assert df["simulators.gpu.batch_size"].dtype == np.int64
    # the swept values reached the simulator: latency grows with batch for one architecture
    titan = df[df["simulators.gpu.device"] == "Titan-RTX"]
    assert (
        titan.gpu_latency_ms.gt(0).all()
        and df.groupby("simulators.gpu.device").gpu_latency_ms.median().nunique() == 2
    )
    # lose two chunks, resume: only they run, and the result is identical
    for k in (1, 3):
        (result.path / "evals" / f"part-{k:06d}.parquet").unlink()
    resumed = sweep(resume=result.path, progress=False)
    assert resumed.chunks_run == 2
    again = load(result.path, with_pareto=False)
    assert again.drop(columns=["wall_s", "started_at", "time_gpu_s"]).equals(
        df.drop(columns=["wall_s", "started_at", "time_gpu_s"])
    )
    assert dse.results.manifest(result.path)["status"] == "finished"


def test_listed_architectures_and_grid_over_devices(tmp_path):
    cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    ]
    cfg = gpu_sweep(
        method="grid",
        parameters={"simulators.gpu.device": ["A100-80GB-PCIe", "H100-SXM", "L4"], "arch": cells},
    )
    df = load(sweep(cfg, output=tmp_path, progress=False).path, with_pareto=False)
    assert len(df) == 6 and set(df.arch_id) == set(cells) and set(df["arch"].map(len)) != {0}
    h100 = df[df["simulators.gpu.device"] == "H100-SXM"].gpu_latency_ms.to_numpy()
    l4 = df[df["simulators.gpu.device"] == "L4"].gpu_latency_ms.to_numpy()
    assert (h100 < l4).all()


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    cfg = gpu_sweep(points=400, chunk_size=10)
    cfg["run"]["plugins"] = ["dse_test_plugins"]
    cfg["proxies"] = {"slow_params": {"delay_s": 0.01}}
    del cfg["sweep"]["workers"]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        out = tmp_path / "out"
        killed: list[int] = []

        def kill_one_worker():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                parts = list(out.glob("*/evals/part-*.parquet"))
                if len(parts) >= 8:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        result = sweep(cfg, output=out, scheduler=cluster.scheduler_address, progress=False)
        killer.join()
        assert killed, "the sweep finished before a worker could be killed"
        assert (
            pids[0] not in client.run(os.getpid).values()
        )  # it really died (the nanny restarted it)
    df = load(result.path, with_pareto=False)
    assert len(df) == 400 and df.eval_id.is_unique and sorted(df.eval_id) == list(range(400))
    assert (df.status == "ok").all() and len(
        list((result.path / "evals").glob("part-*.parquet"))
    ) == 40
    assert not list((result.path / "evals").glob(".*"))


@pytest.mark.slow
def test_sweep_and_report_from_the_command_line(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "sweep.toml"
    cfg.write_text("""
[run]
name = "cli-sweep"

[space]
name = "nasbench201"

[simulators.gpu]
device = "A100-80GB-PCIe"

[sweep]
method = "lhs"
points = 60
workers = 0

[sweep.parameters]
arch = "all"
"simulators.gpu.batch_size" = [1, 16, 64]
""")
    run = subprocess.run(
        [sys.executable, "-m", "dse.cli", "sweep", str(cfg), "--output", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    path = next(p for p in tmp_path.iterdir() if p.name.startswith("cli-sweep"))
    shown = subprocess.run(
        [sys.executable, "-m", "dse.cli", "show", str(path), "--limit", "5"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "sweep:       lhs over" in shown.stdout, shown.stderr
    assert "simulators.gpu.batch_size" in shown.stdout
    rep = subprocess.run(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "report",
            str(path),
            "--objectives",
            "gpu_latency_ms:min",
            "gpu_throughput:max",
        ],
        capture_output=True,
        text=True,
    )
    assert rep.returncode == 0, rep.stderr
    assert "sweep:lhs" in (path / "report" / "index.html").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "dse.cli", "sweep", str(cfg), "--workers", "-1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--workers: must be >= 0" in bad.stderr


SLOW_SWEEP = """
[run]
name = "term"
plugins = ["dse_test_plugins"]
[space]
name = "nasbench201"
[proxies.slow_params]
delay_s = 0.005
[sweep]
method = "random"
points = 600
chunk_size = 5
workers = 0
[sweep.parameters]
arch = "all"
"""


@pytest.mark.slow
def test_sigterm_stops_a_sweep_with_its_finished_chunks_and_an_honest_manifest(tmp_path):
    """A scheduler's SIGTERM: exit 143, the manifest says interrupted (not a dead process's
    running), every finished chunk stays, and --resume completes the sweep."""
    import subprocess
    import sys

    cfg = tmp_path / "sweep.toml"
    cfg.write_text(SLOW_SWEEP)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dse.cli", "sweep", str(cfg), "--output", str(out), "--quiet"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("*/evals/part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    (run,) = out.iterdir()
    assert dse.results.manifest(run)["status"] == "interrupted"
    done = load(run, with_pareto=False)
    assert 0 < len(done) < 600 and len(done) % 5 == 0
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "sweep",
            "--resume",
            str(run),
            "--quiet",
            "--trust-plugins",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    df = load(run, with_pareto=False)
    assert sorted(df.eval_id) == list(range(600)) and df.arch_hash.notna().all()
