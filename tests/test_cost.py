"""dse cost: networks priced on a GPU or FPGA from the command line, errors beside them."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import TESTS, reference_data

DSE = [sys.executable, "-m", "dse.cli", "cost"]


def cost(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([*DSE, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_a_table_of_cells_is_costed_with_the_calibration_and_its_error(tmp_path):
    table = tmp_path / "cells.csv"
    pd.read_csv(reference_data("nasbench201_naslib.csv")).head(12).to_csv(table, index=False)
    out = tmp_path / "pred.csv"
    proc = cost(
        "--space",
        "nasbench201",
        "--archs",
        str(table),
        "--device",
        "Titan-RTX",
        "--board",
        "ZC706",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out)
    assert len(df) == 12 and (df.gpu_latency_ms > 0).all() and (df.fpga_latency_ms > 0).all()
    assert set(df.gpu_calibration) == {"Titan-RTX"} and set(df.fpga_calibration) == {"ZC706"}
    assert df.gpu_error.str.contains("median error").all()


@pytest.mark.slow
def test_a_zoo_network_and_a_users_model(tmp_path):
    zoo = cost("--network", "resnet18", "--device", "A100-80GB-PCIe")
    assert zoo.returncode == 0, zoo.stderr
    assert "11689512" in zoo.stdout and "not validated for this network's ops" in zoo.stdout
    model = cost(
        "--model",
        "dse_test_plugins:tiny_model",
        "--input-shape",
        "3,32,32",
        "--device",
        "Titan-RTX",
        "--out",
        str(tmp_path / "m.csv"),
    )
    assert model.returncode == 0, model.stderr
    row = pd.read_csv(tmp_path / "m.csv").iloc[0]
    assert row.params == 3 * 8 * 9 + 8 + 16 + 8 * 10 + 10 and row.gpu_latency_ms > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--network", "resnet18"], "--device/--board: name a device"),
        (["--network", "resnet999", "--device", "Titan-RTX"], "--network: 'resnet999' is not"),
        (["--network", "resnet18", "--model", "a:b", "--device", "Titan-RTX"], "exactly one"),
        (["--space", "nasbench201", "--device", "Titan-RTX"], "--archs: --space needs"),
        (["--network", "resnet18", "--device", "Voodoo-5"], "Voodoo-5"),
        (["--model", "nope:make", "--input-shape", "3,8,8", "--device", "Titan-RTX"], "--model"),
        (["--model", "dse_test_plugins:tiny_model", "--device", "Titan-RTX"], "--input-shape"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    from dse.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    code = main(["cost", *args, "--out", str(tmp_path / "x.csv")])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "x.csv").exists()
