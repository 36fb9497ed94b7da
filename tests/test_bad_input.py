"""Bad input is one line naming the field, exit 2, nothing written (issue: Reliability II)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import dse
from dse.params import ConfigError


def good(**changes) -> dict:
    cfg = {
        "run": {"name": "bad"},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "objectives": [{"metric": "params"}],
        "constraints": [{"metric": "params", "max": 1e6}],
        "search": {"driver": "random", "max_evaluations": 5},
    }
    for section, value in changes.items():
        cfg[section] = value
    return cfg


@pytest.mark.parametrize(
    "run_id",
    ["../../escaped_run", "/tmp/absolute_run", ".", "", "a/b", "a\x00b", "x" * 101, "-rf"],
)
def test_a_run_id_that_is_not_one_folder_name_is_refused_and_writes_nothing(tmp_path, run_id):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--run-id: must be 1-100 letters"):
        dse.run(good(), run_id=run_id, output=out, progress=False)
    assert not out.exists() and not (tmp_path / "escaped_run").exists()


@pytest.mark.parametrize("name", ["a\x00b", "../up", ".hidden", "with space"])
def test_a_run_name_that_is_not_one_folder_name_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="run.name: must be 1-100 letters"):
        dse.run(good(run={"name": name}), output=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"objectives": [{"metric": "params", "ref": math.nan}]}, "objectives[0].ref"),
        ({"search": {"driver": "random", "max_seconds": math.nan}}, "search.max_seconds"),
        ({"constraints": [{"metric": "params", "max": math.nan}]}, "constraints[0].max"),
        ({"constraints": [{"metric": "params", "min": -math.inf}]}, "constraints[0].min"),
        (
            {"simulators": {"fpga": {"board": "ZC706", "dsp_fraction": math.nan}}},
            "simulators.fpga.dsp_fraction",
        ),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, changes, field):
    """A NaN bound used to drop the constraint (20 of 20 feasible) and a NaN went into the
    manifest as bare NaN."""
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dse.run(good(**changes), output=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


TRUTH = Path(__file__).resolve().parents[1] / "data" / "nasbench201_naslib.csv"


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """``dse ARGV`` in this process: (exit code, standard error)."""
    from dse.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--truth", "{empty}"], "--truth: '{empty}' is empty"),
        (["--truth", "{binary}"], "--truth: '{binary}' is not a CSV table"),
        (["--truth", "{missing}"], "--truth: '{missing}' does not exist"),
        (["--truth", "{folder}"], "--truth: '{folder}' is not a file"),
        (["--truth", "{truth}", "--target", "nope"], "--target: 'nope' is not a column"),
        (["--truth", "{truth}", "--arch-column", "nope"], "--arch-column: 'nope' is not a column"),
        (["--truth", "{truth}", "--proxies", "nope"], "--proxies: ['nope'] not allowed"),
        (["--truth", "{truth}", "--space", "nope"], "--space: unknown space 'nope'"),
        (["--truth", "{truth}", "--space-param", "nope=1"], "--space-param: space.nope: unknown"),
        (["--truth", "{truth}", "--space-param", "nope"], "--space-param: expected KEY=VALUE"),
        (["--truth", "{truth}", "--limit", "-1"], "argument --limit: must be >= 0"),
        (["--truth", "{truth}", "--workers", "-1"], "argument --workers: must be >= 1"),
        (["--truth", "{truth}", "--plugins", "no_such_module"], "--plugins[0]: cannot import"),
    ],
)
def test_proxy_eval_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    """Each of these was a traceback (exit 1): an empty or binary table, an unknown target,
    proxy, column, space or space parameter, a negative limit or worker count."""
    files = {
        "empty": tmp_path / "empty.csv",
        "binary": tmp_path / "binary.csv",
        "missing": tmp_path / "missing.csv",
        "folder": tmp_path,
        "truth": TRUTH,
    }
    files["empty"].write_text("")
    files["binary"].write_bytes(bytes(range(128, 256)) * 4)
    fill = {k: str(v) for k, v in files.items()}
    out = tmp_path / "card"
    argv = ["proxy-eval", *(a.format(**fill) for a in args), "--limit", "3", "--out", str(out)]
    if "--limit" in args:
        argv = argv[:-4] + argv[-2:]
    code, err = cli(argv, capsys)
    assert code == 2, err
    assert message.format(**fill) in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_calibrate_names_an_unknown_space_and_loads_a_plugin_space(tmp_path):
    """``dse calibrate --space nope`` was an UnknownPluginError traceback, and a plugin space
    could not be named at all: --plugins imports it."""
    import subprocess
    import sys

    (tmp_path / "lab_space.py").write_text(
        "from dse.plugin import SPACES, GraphBuilder, IntRange, SearchSpace\n\n\n"
        "@SPACES.register('lab_chain')\n"
        "class Lab(SearchSpace):\n"
        "    name = 'lab_chain'\n"
        "    variables = (IntRange('depth', 1, 3),)\n\n"
        "    def parse(self, text):\n"
        "        return {'depth': int(text)}\n\n"
        "    def to_graph(self, arch):\n"
        "        b = GraphBuilder()\n"
        "        x = b.input((3, 8, 8))\n"
        "        for _ in range(arch['depth']):\n"
        "            x = b.conv(x, 8, 3)\n"
        "        b.classifier(x, 10)\n"
        "        return b.build()\n"
    )
    (tmp_path / "lab.csv").write_text("arch,latency_ms\n1,0.10\n2,0.21\n3,0.29\n")
    base = [sys.executable, "-m", "dse.cli", "calibrate", "--device", "A100-80GB-PCIe"]
    base += ["--measured", "lab.csv", "--folds", "3"]
    nope = subprocess.run(
        [*base, "--space", "nope", "--out", "a.toml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert nope.returncode == 2 and "--space: unknown space 'nope'" in nope.stderr
    lab = [*base, "--space", "lab_chain", "--plugins", "lab_space", "--plugin-dir", "."]
    done = subprocess.run([*lab, "--out", "b.toml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.toml").is_file() and not (tmp_path / "a.toml").exists()


RUN_TOML = """
[run]
name = "cli"
[space]
name = "nasbench201"
[proxies.analytic]
[[objectives]]
metric = "params"
[search]
driver = "random"
max_evaluations = 4
"""


#: one NAS-Bench-201 cell, as its tables write it
CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    + "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        (
            lambda d: (d / "c.toml").write_bytes(b"\xff\xfe[run]\n"),
            ["run", "{d}/c.toml"],
            "not UTF-8 text",
        ),
        (
            lambda d: (d / "c.toml").write_text(
                RUN_TOML + "[sweep]\nx = " + "[" * 2000 + "]" * 2000
            ),
            ["run", "{d}/c.toml"],
            "nested too deep",
        ),
        (
            lambda d: (d / "c.toml").write_text(
                RUN_TOML.replace('"random"', '"optuna"\nstorage = "sqlite:///no/such/folder/s.db"')
            ),
            ["run", "{d}/c.toml"],
            "search.storage: the folder",
        ),
        (
            lambda d: (d / "c.toml").write_text(RUN_TOML + 'scheduler = "tcp://127.0.0.1:1"\n'),
            ["run", "{d}/c.toml"],
            "search.scheduler: no Dask scheduler answers",
        ),
        (
            lambda d: ((d / "c.toml").write_text(RUN_TOML), (d / "afile").write_text("x")),
            ["run", "{d}/c.toml", "--output", "{d}/afile"],
            "--output: '{d}/afile' is a file, not a folder",
        ),
        (
            lambda d: (d / "c.toml").write_text(RUN_TOML),
            ["run", "{d}/c.toml", "--output", "{d}/" + "y" * 300],
            "is longer than 255 bytes",
        ),
        (
            lambda d: (d / "c.toml").write_text(
                RUN_TOML.split("[[objectives]]")[0]
                + '[sweep]\nmethod = "random"\npoints = 1000000000000\n[sweep.parameters]\n'
                'arch = "all"\n'
            ),
            ["sweep", "{d}/c.toml"],
            "sweep.points: 1,000,000,000,000 is more than 10,000,000",
        ),
        (
            lambda d: (d / "afile").write_text(""),
            ["proxy-fit", "--truth", "{d}/afile", "--name", "n"],
            "--truth: '{d}/afile' is empty",
        ),
        (
            lambda d: None,
            ["dps", "--truth", str(TRUTH), "--target", "nope"],
            "--target/--arch-column: ['nope'] not in",
        ),
        (  # was drawn: text on a log axis
            lambda d: (d / "m.csv").write_text("tflops,operational_intensity\nabc,1\n"),
            ["roofline", "--device", "A100-80GB-PCIe", "--measured", "{d}/m.csv", "--out", "r.png"],
            "--measured: tflops: row 1 of {d}/m.csv is not a positive number",
        ),
        (  # pandas' own message, without the option
            lambda d: (d / "m.csv").write_text(""),
            ["roofline", "--device", "A100-80GB-PCIe", "--measured", "{d}/m.csv", "--out", "r.png"],
            "--measured: '{d}/m.csv' is empty",
        ),
        (  # the file was not named
            lambda d: (d / "c.toml").write_text('name = "x"\n[[[\n'),
            ["cost", "--network", "resnet18", "--device", "Pixel-3", "--calibration", "{d}/c.toml"],
            "--cpu: cpu.calibration: {d}/c.toml: not valid TOML (",
        ),
        (  # pandas reads an empty cell, NA or null as a float: each was a traceback
            lambda d: (d / "m.csv").write_text(f"arch,latency_ms\n{CELL},5\n,6\n"),
            ["calibrate", "--device", "Pixel-3", "--measured", "{d}/m.csv", "--out", "{d}/o.toml"],
            "--measured: row 2 of {d}/m.csv has no 'arch' (an empty cell)",
        ),
        (
            lambda d: (d / "a.csv").write_text(f"arch\nnull\n{CELL}\n"),
            ["cost", "--space", "nasbench201", "--archs", "{d}/a.csv", "--device", "Pixel-3"],
            "--archs: row 1 of {d}/a.csv has no 'arch' (an empty cell)",
        ),
        (
            lambda d: (d / "t.csv").write_text(f"arch_str,acc\n{CELL},0.9\nNA,0.8\n"),
            ["proxy-eval", "--truth", "{d}/t.csv", "--target", "acc", "--proxies", "params"],
            "--truth: row 2 of {d}/t.csv has no 'arch_str' (an empty cell)",
        ),
        (
            lambda d: (d / "t.csv").write_text(f"arch_str,acc\n{CELL},0.9\n  ,0.8\n"),
            ["proxy-fit", "--truth", "{d}/t.csv", "--target", "acc", "--name", "n"],
            "--truth: row 2 of {d}/t.csv has no 'arch_str' (an empty cell)",
        ),
    ],
)
def test_commands_refuse_bad_input_in_one_line_and_write_nothing(
    tmp_path, capsys, monkeypatch, setup, argv, message
):
    """Each was a traceback (exit 1), and several left a run folder behind."""
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    setup(work)
    before = sorted(p.name for p in work.iterdir())
    code, err = cli([a.format(d=work) for a in argv], capsys)
    assert code == 2, err
    assert message.format(d=work) in err and "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    assert sorted(p.name for p in work.iterdir()) == before and not (tmp_path / "results").exists()


def test_resuming_a_received_run_asks_before_importing_its_plugins(tmp_path, monkeypatch):
    """A run folder from elsewhere names plugin modules and the folders to import them from;
    resuming it imports them (runs their code), so it asks for --trust-plugins, unless the
    user gives the config (and so their own folders)."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab_nodes.py").write_text(
        "from dse.plugin import PROXIES, MetricProvider\n\n\n"
        "@PROXIES.register('lab_nodes2')\n"
        "class Nodes(MetricProvider):\n"
        "    name, metrics, units = 'lab_nodes2', ('lab_nodes2',), {'lab_nodes2': 'nodes'}\n\n"
        "    def evaluate(self, graph, arch, space):\n"
        "        return {'lab_nodes2': float(graph.number_of_nodes())}\n"
    )
    cfg = lab / "exp.toml"
    cfg.write_text(
        '[run]\nname = "lab"\nplugins = ["lab_nodes"]\n[space]\nname = "nasbench201"\n'
        '[proxies.lab_nodes2]\n[[objectives]]\nmetric = "lab_nodes2"\n'
        '[search]\ndriver = "random"\nmax_evaluations = 4\n'
    )
    out = tmp_path / "out"
    dse.run(cfg, run_id="got", output=out, progress=False)
    with pytest.raises(ConfigError, match="--trust-plugins: .* imports plugin modules"):
        dse.run(resume=out / "got", max_evaluations=8, progress=False)
    dse.run(cfg, resume=out / "got", max_evaluations=8, progress=False)  # the user's config
    dse.run(resume=out / "got", max_evaluations=12, progress=False, trust_plugins=True)
    assert len(dse.results.load(out / "got")) >= 4


def test_os_errors_are_told_apart():
    """Every OSError read "cannot write ...; make room and continue with --resume", also for a
    missing file, no permission or a name too long: only a full disk says that now."""
    import errno

    from dse.cli import os_error_line

    full = os_error_line(OSError(errno.ENOSPC, "No space left on device", "evals/part-3"))
    assert "the disk is full" in full and "--resume" in full
    lines = {
        "missing": os_error_line(FileNotFoundError(errno.ENOENT, "No such file", "t.csv")),
        "denied": os_error_line(PermissionError(errno.EACCES, "Permission denied", "out")),
        "long": os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300)),
        "file": os_error_line(NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b")),
        "peer": os_error_line(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")),
    }
    assert all("make room" not in line for line in lines.values())
    assert "went away" in lines["missing"] and "no permission" in lines["denied"]
    assert "shorten" in lines["long"] and "folder" in lines["file"] and "Dask" in lines["peer"]


def test_report_out_naming_a_file_is_refused_before_writing(tmp_path, capsys):
    run = dse.run(good(), run_id="r", output=tmp_path / "runs", progress=False).path
    target = tmp_path / "afile"
    target.write_text("x")
    code, err = cli(["report", str(run), "--out", str(target)], capsys)
    assert code == 2 and f"--out: '{target}' is a file, not a folder" in err
    assert target.read_text() == "x"
