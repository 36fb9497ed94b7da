"""The command line as a user drives it: real subprocesses, real files, SIGKILL and --resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import dse
from dse.results import load

DSE = [shutil.which("dse") or sys.executable, *([] if shutil.which("dse") else ["-m", "dse.cli"])]

GOOD = """
[run]
name = "cli"
seed = 1

[space]
name = "nasbench201"
dataset = "cifar100"

[proxies.analytic]

[[objectives]]
metric = "hook_flops"
direction = "max"

[[objectives]]
metric = "params"
direction = "min"

[search]
driver = "pymoo"
pop_size = 10
max_evaluations = 30
"""


def run_cli(args, cwd, env=None, timeout=120):
    return subprocess.run(
        DSE + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "edit, field",
    [
        (
            lambda s: s.replace('name = "nasbench201"', 'name = "nasbench999"'),
            "space.name: unknown space 'nasbench999'; allowed: darts, eproxy_config, fbnet, "
            "gennas_task, hybrid, mbconv, medusa, nasbench101, nasbench201, sgconv, torch, "
            "transnas101_micro, zoo",
        ),
        (
            lambda s: s.replace("pop_size = 10", 'pop_size = "ten"'),
            "search.pop_size: expected an integer, got 'ten'",
        ),
        (
            lambda s: s.replace("pop_size = 10", "pop_size = 1"),
            "search.pop_size: must be >= 2, got 1",
        ),
        (
            lambda s: s.replace('dataset = "cifar100"', 'dataset = "svhn"'),
            "space.dataset: 'svhn' is not allowed; allowed values: 'cifar10', 'cifar100', "
            "'imagenet16_120'",
        ),
        (
            lambda s: s.replace("max_evaluations = 30", "max_evaluations = 0"),
            "search.max_evaluations: must be >= 1, got 0",
        ),
        (
            lambda s: s.replace('metric = "params"\n', ""),
            "objectives[1].metric: missing required field",
        ),
        (
            lambda s: s.replace('metric = "params"', 'metric = "accuracy"'),
            "objectives[1].metric: 'accuracy' is not produced",
        ),
        (
            lambda s: s.replace('direction = "min"', 'direction = "down"'),
            "objectives[1].direction: 'down' is not allowed; allowed values: 'min', 'max'",
        ),
        (lambda s: s.replace("seed = 1", "seed = 1.5"), "run.seed: expected an integer, got 1.5"),
        (
            lambda s: s.replace('driver = "pymoo"', 'driver = "pymoo"\nalgorithm = "moead"'),
            "search.algorithm: 'moead' is not allowed; allowed values: ['agemoea', 'nsga2', "
            "'nsga3']",
        ),
        (
            lambda s: s.replace("[proxies.analytic]", "[proxies.analytic]\nwidth = 3"),
            "proxies.analytic.width: unknown parameter; allowed: peak_memory",
        ),
        (lambda s: s.replace("[space]", "[spaces]"), "spaces: unknown section"),
        (
            lambda s: s + '\n[[constraints]]\nmetric = "params"\n',
            "constraints[0].max: a constraint needs 'max' and/or 'min'",
        ),
        (
            lambda s: s.replace("max_evaluations = 30", "max_evaluations = 30\nbudget = 5"),
            "search.budget: unknown parameter",
        ),
        (
            lambda s: s.replace("[run]", '[run]\nplugins = ["no_such_module"]'),
            "run.plugins[0]: cannot import 'no_such_module'",
        ),
        (  # a provider that cannot read the space's graphs (a Medusa tree is not an op graph)
            lambda s: (
                s.replace('name = "nasbench201"\ndataset = "cifar100"', 'name = "medusa"')
                .replace("[proxies.analytic]", '[simulators.fpga]\nboard = "ZC706"')
                .replace('metric = "hook_flops"', 'metric = "fpga_latency_ms"')
                .replace('metric = "params"', 'metric = "fpga_dsp"')
            ),
            "simulators.fpga: cannot evaluate space 'medusa': the space makes 'medusa_tree' "
            "graphs and 'fpga' reads 'ops' graphs",
        ),
    ],
)
def test_bad_config_exits_2_names_the_field_and_writes_nothing(tmp_path, capsys, edit, field):
    """In-process (``dse.cli.main``, what the ``dse`` script calls; the exit status of the real
    process is checked by the tests around it): one line naming the field, nothing written."""
    from dse.cli import main

    cfg = tmp_path / "bad.toml"
    cfg.write_text(edit(GOOD))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert field in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_invalid_toml_and_missing_file_exit_2(tmp_path):
    (tmp_path / "broken.toml").write_text("[run\nname=")
    proc = run_cli(["run", "broken.toml"], tmp_path)
    assert proc.returncode == 2 and "invalid TOML" in proc.stderr
    proc = run_cli(["run", "missing.toml"], tmp_path)
    assert proc.returncode == 2 and "cannot read config" in proc.stderr
    proc = run_cli(["show", "no-such-run"], tmp_path)
    assert proc.returncode == 2 and "no run 'no-such-run'" in proc.stderr


@pytest.mark.slow
def test_demo_list_and_show(tmp_path):
    proc = run_cli(["demo", "--max-evaluations", "48"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "results: results/demo-" in proc.stdout and "Pareto front" in proc.stdout
    run_dir = next((tmp_path / "results").iterdir())
    assert len(load(run_dir)) > 0
    shown = run_cli(["show", run_dir.name], tmp_path)
    assert shown.returncode == 0 and "hook_flops (max), params (min)" in shown.stdout
    listed = run_cli(["list"], tmp_path)
    assert listed.returncode == 0
    for name in ("nasbench201", "mbconv", "zoo", "analytic", "pymoo", "random"):
        assert name in listed.stdout
    # each provider's metrics with their units
    assert "fpga_latency_ms [ms]" in listed.stdout and "gpu_memory_gb [GB]" in listed.stdout
    assert "hook_flops [FLOPs]" in listed.stdout


KILL = """
[run]
name = "kill"
seed = 7
plugins = ["dse_test_plugins"]

[space]
name = "nasbench201"

[proxies.analytic]

[proxies.slow_params]
delay_s = 0.02

[[objectives]]
metric = "hook_flops"
direction = "max"

[[objectives]]
metric = "slow_params"
direction = "min"

[search]
driver = "pymoo"
pop_size = 10
max_evaluations = 150
"""


@pytest.mark.slow
def test_sigkill_then_resume_loses_nothing_and_duplicates_nothing(tmp_path, subprocess_env):
    cfg = tmp_path / "kill.toml"
    cfg.write_text(KILL)
    out = tmp_path / "results"
    proc = subprocess.Popen(
        DSE + ["run", str(cfg), "--run-id", "victim", "--output", str(out), "--quiet"],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    evals = out / "victim" / "evals"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(evals.glob("part-*.parquet"))) < 4:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = load(out / "victim")
    assert 0 < len(before) < 150
    assert dse.results.manifest(out / "victim")["status"] == "running"

    resumed = run_cli(
        ["run", "--resume", "victim", "--output", str(out), "--quiet", "--trust-plugins"],
        tmp_path,
        subprocess_env,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = load(out / "victim")
    assert after.eval_id.is_unique and after.arch_hash.is_unique
    assert list(after.eval_id) == list(range(len(after)))
    kept = after.set_index("eval_id").loc[before.eval_id]
    assert list(kept.arch_hash) == list(before.arch_hash)  # nothing finished was lost or redone
    pd.testing.assert_series_equal(
        kept.hook_flops.reset_index(drop=True), before.hook_flops, check_names=False
    )
    assert dse.results.manifest(out / "victim")["status"] == "finished"

    # an uninterrupted run of the same config and seed gives exactly the same evaluations
    whole = run_cli(
        ["run", str(cfg), "--run-id", "whole", "--output", str(out), "--quiet"],
        tmp_path,
        subprocess_env,
    )
    assert whole.returncode == 0, whole.stderr
    ref = load(out / "whole")
    assert list(ref.arch_hash) == list(after.arch_hash)

    # resuming with a different config is refused
    cfg.write_text(KILL.replace("seed = 7", "seed = 8"))
    refused = run_cli(
        ["run", str(cfg), "--resume", "victim", "--output", str(out)], tmp_path, subprocess_env
    )
    assert (
        refused.returncode == 2
        and "config differs" in refused.stderr
        and "run.seed" in refused.stderr
    )


def test_existing_run_id_is_refused(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    assert run_cli(["run", str(cfg), "--run-id", "x", "--quiet"], tmp_path).returncode == 0
    again = run_cli(["run", str(cfg), "--run-id", "x", "--quiet"], tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_resume_extends_a_finished_run_along_the_same_trajectory(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    assert run_cli(["run", str(cfg), "--run-id", "short", "--quiet"], tmp_path).returncode == 0
    ext = run_cli(["run", "--resume", "short", "--max-evaluations", "60", "--quiet"], tmp_path)
    assert ext.returncode == 0, ext.stderr
    longer = run_cli(
        ["run", str(cfg), "--run-id", "long", "--max-evaluations", "60", "--quiet"], tmp_path
    )
    assert longer.returncode == 0, longer.stderr
    a, b = load(tmp_path / "results" / "short"), load(tmp_path / "results" / "long")
    assert list(a.arch_hash) == list(b.arch_hash) and len(a) > 30
    assert (
        dse.results.manifest(tmp_path / "results" / "short")["config"]["search"]["max_evaluations"]
        == 60
    )
    assert a["time_analytic_s"].gt(0).all()


@pytest.mark.slow
def test_resume_refuses_a_run_whose_hashes_no_longer_reproduce(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    assert run_cli(["run", str(cfg), "--run-id", "old", "--quiet"], tmp_path).returncode == 0
    rows_before = len(load(tmp_path / "results" / "old"))
    part = next((tmp_path / "results" / "old" / "evals").glob("part-*.parquet"))
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(part)  # as if written by a version that hashed differently
    table = table.set_column(
        table.schema.get_field_index("arch_hash"),
        "arch_hash",
        pc.binary_join_element_wise("v0-", table["arch_hash"], ""),
    )
    pq.write_table(table, part)
    from dse.results.store import RunStore, file_sha256

    store = RunStore(tmp_path / "results" / "old")  # the record that older version would keep
    parts = store.read_manifest()["parts"]
    parts[part.name]["sha256"] = file_sha256(part)
    store.update_manifest(parts=parts)
    proc = run_cli(["run", "--resume", "old", "--quiet"], tmp_path)
    assert proc.returncode == 2 and "hashes architecture" in proc.stderr
    assert len(load(tmp_path / "results" / "old")) == rows_before
