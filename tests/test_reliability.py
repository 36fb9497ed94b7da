"""Reliability: the store never loses or duplicates a row, and every command refuses what it
cannot do well with one clear line and exit 2 (issue 18). Real subprocesses, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import dse
from dse.results import load
from dse.results.store import RunStore

DSE = [sys.executable, "-m", "dse.cli"]

SMALL = """
[run]
name = "rel"
seed = 5
{plugins}

[space]
name = "nasbench201"

[proxies.analytic]
{extra}

[[objectives]]
metric = "hook_flops"
direction = "max"

[[objectives]]
metric = "params"
direction = "min"

[search]
driver = "pymoo"
pop_size = 10
max_evaluations = {budget}
"""


def write_config(tmp: Path, budget: int = 60, extra: str = "", plugins: str = "") -> Path:
    cfg = tmp / "rel.toml"
    cfg.write_text(SMALL.format(budget=budget, extra=extra, plugins=plugins))
    return cfg


def cli(args, cwd, env=None, timeout=180):
    return subprocess.run(
        DSE + [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(proc) -> str:
    """The refusal's text: exactly one line, no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory):
    """One finished run of :data:`SMALL`, made once per module (a real subprocess)."""
    root = tmp_path_factory.mktemp("finished")
    cfg = write_config(root)
    proc = cli(["run", cfg, "--run-id", "r", "--output", root / "results", "--quiet"], root)
    assert proc.returncode == 0, proc.stderr
    return root / "results"


@pytest.fixture
def finished(finished_once, tmp_path):
    """``(config, output folder, run folder)`` of a finished run in ``tmp_path``: a copy of
    :func:`finished_once`'s (a run folder holds no absolute path), so each test may damage its
    own."""
    cfg = write_config(tmp_path)
    out = tmp_path / "results"
    shutil.copytree(finished_once, out)
    return cfg, out, out / "r"


# -- 1. a resume after a missing part --------------------------------------------------------
@pytest.mark.slow
def test_a_missing_part_is_refused_then_dropped_without_overwriting_anything(finished, tmp_path):
    cfg, out, run = finished
    parts = sorted((run / "evals").glob("part-*.parquet"))
    whole = load(run)
    gone = parts[2]
    lost = pd.read_parquet(gone)
    gone.unlink()
    kept = {p.name: p.read_bytes() for p in parts if p != gone}

    show = cli(["show", run], tmp_path)
    assert show.returncode == 0 and f"{gone} is missing" in show.stderr  # reported, not silent
    assert f"records {len(whole)} evaluations but the parts hold {len(whole) - len(lost)}" in (
        show.stderr
    )
    refused = one_line_error(cli(["run", "--resume", run, "--max-evaluations", 80], tmp_path))
    assert f"{gone.name} is missing (it held {len(lost)} rows)" in refused
    assert "--drop-corrupt" in refused

    resumed = cli(
        ["run", "--resume", run, "--max-evaluations", 80, "--drop-corrupt", "--quiet"], tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing without missing {gone.name} ({len(lost)} rows)" in resumed.stderr
    for name, data in kept.items():  # no part was rewritten
        assert (run / "evals" / name).read_bytes() == data
    assert not (run / "evals" / gone.name).exists()  # and the missing number is never reused
    after = load(run)
    assert after.eval_id.is_unique and after.arch_hash.is_unique
    assert set(whole.arch_hash) <= set(after.arch_hash)  # the lost rows were evaluated again
    again = cli(["show", run], tmp_path)
    assert again.returncode == 0 and "warning" not in again.stderr, again.stderr


def test_part_numbers_never_reuse_a_gap(tmp_path):
    store = RunStore(tmp_path / "run")
    schema = dse.results.run_schema(["m"])
    row = lambda i: {  # noqa: E731
        "run_id": "x",
        "eval_id": i,
        "batch": i,
        "seed": 0,
        "space": "s",
        "arch": "{}",
        "arch_id": "a",
        "arch_hash": str(i),
        "encoding": [],
        "status": "ok",
        "error": None,
        "feasible": True,
        "violation": 0.0,
        "wall_s": 0.0,
        "started_at": pd.Timestamp(0, tz="UTC"),
        "driver": "d",
        "m": 1.0,
    }
    for i in range(3):
        store.write_batch([row(i)], schema)
    (store.evals_dir / "part-000001.parquet").unlink()
    fresh = RunStore(store.path)  # a new process counts again
    assert fresh.write_batch([row(3)], schema).name == "part-000003.parquet"


# -- 2. one writer per run -------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_writer_is_refused(finished, tmp_path):
    cfg, out, run = finished
    with RunStore(run).writer_lock():
        line = one_line_error(cli(["run", "--resume", run, "--max-evaluations", 80], tmp_path))
    assert "is being written by pid" in line and str(os.getpid()) in line
    before = load(run)
    assert before.eval_id.is_unique  # the refused writer wrote nothing
    assert (
        cli(["run", "--resume", run, "--max-evaluations", 80, "--quiet"], tmp_path).returncode == 0
    )


@pytest.mark.slow
def test_a_resume_while_the_run_still_runs_is_refused(tmp_path, subprocess_env):
    cfg = write_config(
        tmp_path,
        budget=200,
        extra="[proxies.slow_params]\ndelay_s = 0.02",
        plugins='plugins = ["dse_test_plugins"]',
    )
    out = tmp_path / "results"
    proc = subprocess.Popen(
        DSE + ["run", str(cfg), "--run-id", "v", "--output", str(out), "--quiet"],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((out / "v" / "evals").glob("part-*")):
            time.sleep(0.05)
        second = cli(["run", "--resume", out / "v", "--quiet"], tmp_path, subprocess_env)
        assert "is being written by pid" in one_line_error(second)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the killed writer's lock died with it: a resume now goes through and duplicates nothing
    third = cli(
        ["run", "--resume", out / "v", "--quiet", "--trust-plugins"], tmp_path, subprocess_env
    )
    assert third.returncode == 0, third.stderr
    df = load(out / "v")
    assert df.eval_id.is_unique and df.arch_hash.is_unique


# -- 6. corrupt results ----------------------------------------------------------------------
@pytest.mark.slow
def test_a_truncated_part_is_one_line_then_set_aside_with_drop_corrupt(finished, tmp_path):
    cfg, out, run = finished
    part = sorted((run / "evals").glob("part-*.parquet"))[1]
    rows = len(pd.read_parquet(part))
    part.write_bytes(part.read_bytes()[:100])
    assert f"{part} cannot be read" in one_line_error(cli(["show", run], tmp_path))
    line = one_line_error(cli(["run", "--resume", run, "--max-evaluations", 80], tmp_path))
    assert f"{part} cannot be read" in line and "--drop-corrupt" in line
    resumed = cli(
        ["run", "--resume", run, "--max-evaluations", 80, "--drop-corrupt", "--quiet"], tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"set aside unreadable {part}" in resumed.stderr and f"({rows} rows)" in resumed.stderr
    assert (part.parent / f".{part.name}.corrupt").is_file()  # kept, not deleted
    df = load(run)
    assert df.eval_id.is_unique and df.arch_hash.is_unique


@pytest.mark.parametrize("text, what", [("", "is empty"), ('{"run_id": ', "is not valid JSON")])
@pytest.mark.slow
def test_a_damaged_manifest_is_one_line(finished, tmp_path, text, what):
    cfg, out, run = finished
    (run / "manifest.json").write_text(text)
    for args in (["show", run], ["run", "--resume", run], ["report", run]):
        line = one_line_error(cli(args, tmp_path))
        assert f"manifest.json {what}" in line and "untouched" in line


def test_a_finished_manifest_without_parts_is_refused(finished, tmp_path):
    cfg, out, run = finished
    for p in (run / "evals").glob("part-*.parquet"):
        p.unlink()
    line = one_line_error(cli(["run", "--resume", run, "--max-evaluations", 80], tmp_path))
    assert "says finished with" in line and "holds no part" in line


# -- 9. a budget is extended, never shrunk ---------------------------------------------------
def test_shrinking_a_finished_runs_budget_is_refused(finished, tmp_path):
    cfg, out, run = finished
    before = json.loads((run / "manifest.json").read_text())
    line = one_line_error(cli(["run", "--resume", run, "--max-evaluations", 20], tmp_path))
    assert "less than the 60 proposals" in line
    assert json.loads((run / "manifest.json").read_text()) == before  # nothing rewritten


# -- 10. failure is reported -----------------------------------------------------------------
def test_a_run_whose_every_evaluation_fails_exits_1_with_the_errors(tmp_path, subprocess_env):
    cfg = write_config(
        tmp_path,
        budget=20,
        extra="[proxies.always_fails]",
        plugins='plugins = ["dse_test_plugins"]',
    )
    proc = cli(["run", cfg, "--output", tmp_path / "out", "--quiet"], tmp_path, subprocess_env)
    assert proc.returncode == 1, proc.stderr
    assert "every one of the 20 evaluations failed" in proc.stderr
    assert "20 x always_fails: FileNotFoundError: license server unreachable" in proc.stderr


def test_nan_metrics_are_failures_and_many_failures_warn(tmp_path, subprocess_env):
    cfg = write_config(
        tmp_path, budget=40, extra="[proxies.nan_score]", plugins='plugins = ["dse_test_plugins"]'
    )
    proc = cli(
        ["run", cfg, "--run-id", "n", "--output", tmp_path / "out", "--quiet"],
        tmp_path,
        subprocess_env,
    )
    assert proc.returncode == 0, proc.stderr
    df = load(tmp_path / "out" / "n")
    first = df.arch.map(lambda a: json.loads(a)["1<-0"] == "none")  # nasbench201's first choice
    assert first.any()
    assert (df.loc[first, "status"] == "failed").all() and (df.loc[~first, "status"] == "ok").all()
    assert df.loc[first, "error"].str.contains("are NaN").all()
    share = first.mean()
    assert ("warning:" in proc.stderr) == (share > 0.5)


# -- 11. small edges -------------------------------------------------------------------------
@pytest.mark.slow
def test_small_edges_exit_cleanly(finished, tmp_path):
    cfg, out, run = finished
    helped = cli(["--help"], tmp_path)
    assert helped.returncode == 0 and "top-10%" in helped.stdout and "%%" not in helped.stdout
    piped = subprocess.run(
        f"{sys.executable} -m dse.cli show {run} --all | head -3",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "BrokenPipeError" not in piped.stderr and "Traceback" not in piped.stderr
    line = one_line_error(cli(["roofline", "--out", tmp_path / "r.bmp"], tmp_path))
    assert "--out" in line and ".png" in line
    assert not (tmp_path / "r.bmp").exists()
    two = cfg.read_text().replace('metric = "hook_flops"', 'metric = "params"', 1)
    (tmp_path / "two.toml").write_text(two)
    line = one_line_error(
        cli(["run", tmp_path / "two.toml", "--output", tmp_path / "o2"], tmp_path)
    )
    assert "objectives[1].metric: 'params' is already objectives[0]" in line
    assert not (tmp_path / "o2").exists()
    limit = cli(["show", run, "--limit", "-5"], tmp_path)
    assert limit.returncode == 2 and "--limit" in limit.stderr and "must be >= 0" in limit.stderr


def test_run_and_sweep_resumes_point_to_each_other(finished, tmp_path):
    cfg, out, run = finished
    line = one_line_error(cli(["sweep", "--resume", run], tmp_path))
    assert f"is a search run; continue it with dse run --resume {run}" in line
    swept = dse.sweep(
        {
            **SWEEP_BASE,
            "sweep": {
                "method": "grid",
                "parameters": {"arch.1<-0": ["nor_conv_3x3"], "arch.2<-0": ["skip_connect"]},
            },
        },
        output=tmp_path / "sw",
        workers=0,
        progress=False,
    )
    line = one_line_error(cli(["run", "--resume", swept.path], tmp_path))
    assert f"is a sweep; continue it with dse sweep --resume {swept.path}" in line


# -- 3. sweeping some architecture variables -------------------------------------------------
SWEEP_BASE = {
    "run": {"name": "part", "seed": 1},
    "space": {"name": "nasbench201"},
    "proxies": {"analytic": {}},
}


def test_a_sweep_over_some_arch_variables_gives_the_others_their_first_choice(tmp_path):
    result = dse.sweep(
        {
            **SWEEP_BASE,
            "sweep": {
                "method": "grid",
                "parameters": {
                    "arch.1<-0": ["nor_conv_3x3", "skip_connect"],
                    "arch.3<-2": "nor_conv_1x1",
                },
            },
        },
        output=tmp_path,
        workers=0,
        progress=False,
    )
    df = load(result.path)
    archs = [json.loads(a) for a in df.arch]
    assert sorted(a["1<-0"] for a in archs) == ["nor_conv_3x3", "skip_connect"]
    space = dse.registry.SPACES.create("nasbench201")
    first = {v.name: v.value(0) for v in space.variables}
    for a in archs:
        assert a["3<-2"] == "nor_conv_1x1"
        assert all(a[k] == first[k] for k in ("2<-0", "2<-1", "3<-0", "3<-1"))
    assert dse.results.manifest(result.path)["arch_defaults"]["2<-0"] == first["2<-0"]


def test_an_invalid_arch_choice_is_caught_before_the_sweep(tmp_path):
    cfg = {
        **SWEEP_BASE,
        "run": {**SWEEP_BASE["run"], "output": str(tmp_path / "o")},
        "sweep": {"method": "grid", "parameters": {"arch.1<-0": ["conv_5x5"]}},
    }
    (tmp_path / "s.toml").write_text(_toml(cfg))
    line = one_line_error(cli(["sweep", tmp_path / "s.toml", "--workers", "0"], tmp_path))
    assert "sweep.parameters.arch.1<-0: 1<-0: 'conv_5x5' is not allowed; allowed values:" in line
    assert not (tmp_path / "o").exists()


def _toml(cfg: dict) -> str:
    """A small TOML writer for these tests' configs (tables of scalars, lists, inline dicts)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"

    lines = []

    def table(name, body):
        lines.append(f"[{name}]")
        sub = []
        for k, v in body.items():
            if (
                isinstance(v, dict)
                and name in ("proxies", "simulators", "sweep")
                and (name != "sweep" or k == "parameters")
            ):
                sub.append((f"{name}.{k}", v))
            else:
                lines.append(f"{json.dumps(k)} = {value(v)}")
        for n, b in sub:
            table(n, b)

    for name, body in cfg.items():
        table(name, body)
    return "\n".join(lines) + "\n"


# -- 8. impossible hardware ------------------------------------------------------------------
@pytest.mark.slow
def test_a_dsp_budget_above_the_board_is_a_config_error(tmp_path):
    cfg = write_config(tmp_path, extra='[simulators.fpga]\nboard = "Ultra96"\ndsp_budget = 5000')
    line = one_line_error(cli(["run", cfg, "--output", tmp_path / "o"], tmp_path))
    assert "simulators.fpga.dsp_budget: 5000 is outside board 'Ultra96'" in line
    assert "allowed values: 1..360" in line and not (tmp_path / "o").exists()
    # in a sweep, the bad pair (a big budget on the small board) is found before anything runs
    sweep = {
        **SWEEP_BASE,
        "run": {**SWEEP_BASE["run"], "output": str(tmp_path / "s")},
        "simulators": {"fpga": {"board": "ZC706"}},
        "sweep": {
            "method": "random",
            "points": 8,
            "parameters": {
                "arch": "all",
                "simulators.fpga.board": ["ZC706", "Ultra96"],
                "simulators.fpga.dsp_budget": {"low": 128, "high": 900, "integer": True},
            },
        },
    }
    (tmp_path / "s.toml").write_text(_toml(sweep))
    line = one_line_error(cli(["sweep", tmp_path / "s.toml", "--workers", "0"], tmp_path))
    assert "'Ultra96'" in line and "simulators.fpga.board = 'Ultra96'" in line
    assert not (tmp_path / "s").exists()


def test_the_shipped_board_sweep_is_valid_on_every_board(tmp_path):
    from dse.configfile import read_config_file
    from dse.sweeps import plan_sweep

    repo = Path(__file__).resolve().parents[1]
    plan = plan_sweep(read_config_file(repo / "examples" / "sweep_fpga_boards.toml"))
    assert len(plan.points) == 2000


# -- 12. paths and plugins relative to the config --------------------------------------------
def test_config_paths_and_plugins_resolve_from_the_config_folder(tmp_path):
    from conftest import reference_data

    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "tables").mkdir()
    (lab / "tables" / "nb201.csv").write_bytes(
        reference_data("nasbench201_naslib.csv").read_bytes()
    )
    (lab / "my_plugin.py").write_text(
        "from dse.plugin import PROXIES, MetricProvider\n\n\n@PROXIES.register('lab_nodes')\n"
        "class Nodes(MetricProvider):\n"
        "    name, metrics, cost = 'lab_nodes', ('lab_nodes',), 0.1\n"
        "    units = {'lab_nodes': 'nodes'}\n\n"
        "    def evaluate(self, graph, arch, space):\n"
        "        return {'lab_nodes': float(graph.number_of_nodes())}\n"
    )
    (lab / "exp.toml").write_text(
        '[run]\nname = "lab"\nplugins = ["my_plugin"]\noutput = "runs"\n\n'
        '[space]\nname = "nasbench201"\n'
        'restrict = { file = "tables/nb201.csv", column = "arch_str" }\n\n'
        '[proxies.tabular]\nfile = "tables/nb201.csv"\ncolumn = "val_acc_cifar10"\n\n'
        '[proxies.lab_nodes]\n\n[[objectives]]\nmetric = "accuracy"\ndirection = "max"\n\n'
        '[search]\ndriver = "random"\nmax_evaluations = 20\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no help from the path
    proc = cli(["run", lab / "exp.toml", "--quiet"], elsewhere, env)
    assert proc.returncode == 0, proc.stderr
    runs = list((lab / "runs").iterdir())  # run.output is relative to the config, too
    assert len(runs) == 1 and not (elsewhere / "runs").exists()
    df = load(runs[0])
    assert (df.status == "ok").all() and df.lab_nodes.gt(0).all()
    # a CLI-given path stays relative to where the command runs
    proc = cli(["run", lab / "exp.toml", "--quiet", "--output", "here"], elsewhere, env)
    assert proc.returncode == 0 and (elsewhere / "here").is_dir()


# -- 4, 5, 7. reports ------------------------------------------------------------------------
def _fpga_run(tmp_path, board: str, seed: int, name: str):
    cfg = {
        "run": {"name": name, "seed": seed},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "simulators": {"fpga": {"board": board}},
        "objectives": [
            {"metric": "hook_flops", "direction": "max"},
            {"metric": "fpga_latency_ms", "direction": "min"},
        ],
        "search": {"driver": "random", "max_evaluations": 30},
    }
    return dse.run(cfg, output=tmp_path, progress=False).path


def test_runs_of_different_problems_are_reported_side_by_side(tmp_path):
    a = [_fpga_run(tmp_path, "ZC706", s, "a") for s in (0, 1)]
    b = _fpga_run(tmp_path, "ZCU102", 0, "b")
    page = dse.report([*a, b], out=tmp_path / "rep").read_text()
    assert "These runs solve 2 different problems" in page
    assert "Problem A" in page and "Problem B" in page and "board=ZCU102" in page
    # each problem has its own driver table: the ZC706 seeds are averaged, the ZCU102 run is not
    sections = page.split("<h2 class='problem'>")
    assert len(sections) == 3 and all("<h2>Drivers</h2>" in s for s in sections[1:])
    front = pd.read_csv(tmp_path / "rep" / "pareto.csv")
    assert set(front.problem) == {"A", "B"}
    same = dse.report(a, out=tmp_path / "same").read_text()
    assert "different problems" not in same


def test_a_sweep_report_keeps_the_hardware_and_drops_designs_that_do_not_fit(tmp_path):
    swept = dse.sweep(
        {
            "run": {"name": "hw", "seed": 2},
            "space": {"name": "nasbench201"},
            "proxies": {"analytic": {}},
            "simulators": {"fpga": {"board": "Ultra96", "architecture": "pipelined"}},
            "sweep": {
                "method": "random",
                "points": 60,
                "parameters": {
                    "arch": "all",
                    "simulators.fpga.board": ["Ultra96", "ZCU102"],
                    "simulators.fpga.dsp_fraction": {"low": 0.02, "high": 1.0, "log": True},
                },
            },
        },
        output=tmp_path,
        workers=0,
        progress=False,
    )
    df = load(swept.path)
    assert (df.fpga_feasible == 0).any()  # some designs do not fit their board
    page = dse.report(
        [swept.path], out=tmp_path / "rep", objectives=["fpga_latency_ms:min", "fpga_dsp:min"]
    ).read_text()
    front = pd.read_csv(tmp_path / "rep" / "pareto.csv")
    assert {"simulators.fpga.board", "simulators.fpga.dsp_fraction"} <= set(front.columns)
    merged = front.merge(df[["eval_id", "fpga_feasible"]], on="eval_id")
    assert (merged.fpga_feasible == 1).all()  # a design that does not fit is not on the front
    assert "fpga_latency_ms [ms]" in page and "fpga_dsp [DSPs]" in page


@pytest.mark.slow
def test_report_objectives_are_validated_like_configs(finished, tmp_path):
    cfg, out, run = finished
    line = one_line_error(cli(["report", run, "--objectives", "accuracy:max"], tmp_path))
    assert "no run records metric 'accuracy'; allowed values: [" in line and "'params'" in line
    line = one_line_error(cli(["report", run, "--objectives", "params:up"], tmp_path))
    assert "direction: 'up' is not allowed; allowed values: 'min', 'max'" in line
    # no direction: the run's own ("hook_flops" is declared max)
    ok = cli(
        ["report", run, "--objectives", "hook_flops", "params", "--out", tmp_path / "r"], tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert "hook_flops (max)" in (tmp_path / "r" / "index.html").read_text()
    line = one_line_error(cli(["report", run, "--objectives", "macs"], tmp_path))
    assert "declare no direction for 'macs'; give macs:min or macs:max" in line
