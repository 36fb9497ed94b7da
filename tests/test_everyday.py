"""Everyday use: the CLI follows the conventions users of optuna, pymoo and nn-Meter expect."""

from __future__ import annotations

import subprocess
import sys

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
