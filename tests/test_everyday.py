"""Everyday use: the CLI follows the conventions users of optuna, pymoo and nn-Meter expect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dse
from dse.results import load

DSE = [sys.executable, "-m", "dse.cli"]


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*DSE, *args], capture_output=True, text=True, cwd=cwd)


def test_version_is_the_installed_package_version():
    from importlib import metadata

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"dse {metadata.version('dse')}"


@pytest.mark.parametrize(
    "what, expected",
    [
        ("devices", ["A100-80GB-PCIe", "H100-SXM", "Titan-RTX"]),
        ("boards", ["ZC706", "ZCU102"]),
        ("llms", ["vicuna-7b", "llama-33b"]),
        ("calibrations", ["ZC706", "A100-80GB-PCIe", "GTX-1080-Ti"]),
    ],
)
@pytest.mark.slow
def test_list_names_the_catalogs_a_config_chooses_from(what, expected):
    """Users learned device, board and LLM names from error messages before."""
    proc = cli("list", what)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert set(expected) <= set(names)
    if what == "calibrations":
        assert "median error" in proc.stdout


def test_help_lines_are_whole_sentences():
    """A docstring's first line was cut mid-sentence ('...networks, with its cross-validated')."""
    proc = cli("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "with its cross-validated error." in text


@pytest.mark.slow
def test_run_seed_overrides_the_config_and_a_resume_keeps_its_own(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[run]\nname = "s"\nseed = 0\n[space]\nname = "nasbench201"\n[proxies.analytic]\n'
        '[[objectives]]\nmetric = "params"\n[search]\ndriver = "random"\nmax_evaluations = 6\n'
    )
    out = tmp_path / "out"
    seven = cli("run", str(cfg), "--seed", "7", "--run-id", "s7", "--output", str(out), "--quiet")
    zero = cli("run", str(cfg), "--run-id", "s0", "--output", str(out), "--quiet")
    assert seven.returncode == 0 and zero.returncode == 0, seven.stderr + zero.stderr
    assert dse.results.manifest(out / "s7")["config"]["run"]["seed"] == 7
    assert list(load(out / "s7").arch_hash) != list(load(out / "s0").arch_hash)
    again = cli("run", "--resume", str(out / "s7"), "--seed", "3")
    assert again.returncode == 2 and "--seed: a resumed run keeps its own seed" in again.stderr
    negative = cli("run", str(cfg), "--seed", "-1")
    assert negative.returncode == 2 and "must be >= 0" in negative.stderr


def test_a_device_without_launch_overhead_is_accepted(tmp_path):
    """launch_overhead_us = 0 (an idealised device) was refused as 'expected a positive number'."""
    from dse.catalogs.devices import load_devices

    devices = tmp_path / "devices.toml"
    devices.write_text(
        "[Ideal]\nfp32_tflops = 10\nmemory_bandwidth_gbs = 500\nmemory_gb = 16\nsms = 40\n"
        "launch_overhead_us = 0\n"
    )
    assert load_devices(devices)["Ideal"].launch_overhead_s == 0.0
    devices.write_text(
        devices.read_text().replace("launch_overhead_us = 0", "launch_overhead_us = -1")
    )
    with pytest.raises(ValueError, match="launch_overhead_us: expected a number >= 0"):
        load_devices(devices)


@pytest.mark.slow
def test_a_sweep_on_a_local_cluster_prints_its_dask_dashboard(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        '[run]\nname = "dash"\n[space]\nname = "nasbench201"\n[proxies.analytic]\n'
        '[sweep]\nmethod = "random"\npoints = 20\nworkers = 2\n[sweep.parameters]\narch = "all"\n'
    )
    proc = cli("sweep", str(cfg), "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "dse: Dask dashboard: http://127.0.0.1:" in proc.stderr


@pytest.mark.slow
def test_optuna_dashboard_opens_the_runs_study_with_its_trials(tmp_path):
    """optuna-dashboard, started on the run's SQLite study, serves every trial with its
    objective values, the objectives' names and the user attributes a reader needs."""
    import json
    import socket
    import time
    import urllib.request

    db = tmp_path / "study.db"
    cfg = {
        "run": {"name": "dash"},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "objectives": [
            {"metric": "hook_flops", "direction": "max"},
            {"metric": "params", "direction": "min"},
        ],
        "search": {
            "driver": "optuna",
            "sampler": "tpe",
            "storage": f"sqlite:///{db}",
            "study_name": "dash",
            "max_evaluations": 12,
        },
    }
    result = dse.run(cfg, output=tmp_path / "out", progress=False)
    rows = load(result.path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "optuna-dashboard"), f"sqlite:///{db}"]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=2))
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        (study,) = studies["study_summaries"]
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{study['study_id']}"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert detail["objective_names"] == ["-hook_flops", "params"]
    trials = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert len(trials) >= 8
    by_id = rows.set_index("arch_id")
    for t in trials:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        row = by_id.loc[attrs["arch_id"]]
        assert float(attrs["params"]) == pytest.approx(row["params"])
        assert [float(v) for v in t["values"]] == pytest.approx([-row["hook_flops"], row["params"]])


def test_an_error_line_says_when_the_network_is_outside_the_validation(tmp_path):
    """The A100 calibration was validated on Llama-33B operators: beside a CNN's latency the
    line says it was not validated for this network's ops, instead of 1.9%-5.6%; on the
    networks a calibration was validated on, the measured error stands."""

    def fidelity(space: str, device: str) -> str:
        cfg = {
            "run": {"name": "fid"},
            "space": {"name": space},
            "simulators": {"gpu": {"device": device}},
            "objectives": [{"metric": "gpu_latency_ms"}],
            "search": {"driver": "random", "max_evaluations": 2},
        }
        result = dse.run(cfg, output=tmp_path, progress=False)
        (entry,) = dse.results.manifest(result.path)["fidelity"]["gpu_latency_ms"]
        return dse.fidelity.Fidelity.from_dict(entry).line("gpu_latency_ms")

    outside = fidelity("zoo", "A100-80GB-PCIe")
    assert "not validated for this network's ops" in outside and "llm" in outside
    assert "median error" not in outside
    inside = fidelity("nasbench201", "Titan-RTX")
    assert "median error" in inside and "not validated" not in inside
    listed = cli("list", "calibrations").stdout
    assert "[covers: llm]" in listed and "[covers: nasbench201]" in listed


@pytest.mark.slow
def test_a_fitted_calibration_records_the_space_it_covers(tmp_path):
    measured = tmp_path / "m.csv"
    cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
        "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    ]
    measured.write_text(
        "arch,latency_ms\n" + "".join(f"{c},{1 + i * 0.3}\n" for i, c in enumerate(cells))
    )
    out = tmp_path / "cal.toml"
    proc = cli(
        "calibrate",
        "--device",
        "Titan-RTX",
        "--measured",
        str(measured),
        "--folds",
        "2",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert 'covers = ["nasbench201"]' in out.read_text()
