"""dse cost: networks priced on a GPU or FPGA from the command line, errors beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

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
        (
            ["--model", "lab/net.py:make", "--input-shape", "3,8,8", "--device", "Titan-RTX"],
            "names a file; give its module, 'net:make', and its folder, 'lab', as --plugin-dir",
        ),
        (["--network", "resnet18", "--board", "ZC706", "--batch-size", "8"], "--batch-size: 8"),
        (
            ["--network", "resnet18", "--device", "Pixel-3", "--calibration", "Samsung-A50"],
            "calibration: 'Samsung-A50' was fitted on 'Samsung-A50', and the device is 'Pixel-3'",
        ),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    from dse.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    code = main(["cost", *args, "--out", str(tmp_path / "x.csv")])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "x.csv").exists()


def test_the_csv_a_device_was_calibrated_from_is_costed_as_it_is(tmp_path, capsys):
    """``dse calibrate`` and ``dse cost`` read the same CSV without ``--arch-column``: its
    ``arch`` column, else its ``arch_str`` (HELP's FBNet table, NAS-Bench-201's); a table with
    neither is one line naming the option and the table's columns, nothing written."""
    from dse.cli import main
    from dse.commands.calibrate import read_measurements
    from dse.spaces.nasbench201 import NasBench201Space

    cells = pd.read_csv(reference_data("nasbench201_naslib.csv")).head(4)
    for column in ("arch", "arch_str"):
        out = tmp_path / f"pred-{column}.csv"
        table = tmp_path / f"{column}.csv"
        measured = pd.DataFrame({column: cells.arch_str, "latency_ms": 1.0})
        measured.to_csv(table, index=False)
        archs, _ = read_measurements(str(table), None, NasBench201Space())
        assert len(archs) == 4
        args = ["cost", "--space", "nasbench201", "--archs", str(table), "--device", "Pixel-3"]
        assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
        assert len(pd.read_csv(out)) == 4
    out = tmp_path / "pred.csv"
    table = tmp_path / "cells.csv"
    pd.DataFrame({"cell": cells.arch_str}).to_csv(table, index=False)
    args = ["cost", "--space", "nasbench201", "--archs", str(table), "--device", "Pixel-3"]
    assert main([*args, "--out", str(out)]) == 2 and not out.exists()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--arch-column" in lines[0] and "['cell']" in lines[0], lines


def test_a_space_without_a_string_form_is_read_from_json_objects_by_both(tmp_path, capsys):
    """EDD's MBConv chains have no string form: one CSV of JSON objects of their variables
    calibrates a device and is costed as it is (``dse cost`` refused the space before)."""
    import json

    import numpy as np

    from dse.cli import main
    from dse.registry import SPACES

    space = SPACES.create("mbconv")
    rng = np.random.default_rng(0)
    archs = [json.dumps(space.sample(rng)) for _ in range(6)]
    table = tmp_path / "m.csv"
    pd.DataFrame({"arch": archs, "latency_ms": np.linspace(5, 10, 6)}).to_csv(table, index=False)
    cal = tmp_path / "c.toml"
    device = ["--device", "Pixel-3", "--space", "mbconv"]
    assert main(["calibrate", *device, "--measured", str(table), "--out", str(cal)]) == 0
    out = tmp_path / "p.csv"
    assert (
        main(["cost", *device, "--archs", str(table), "--calibration", str(cal), "--out", str(out)])
        == 0
    )
    pred = pd.read_csv(out)
    assert len(pred) == 6 and (pred.cpu_latency_ms > 0).all()
    assert list(pred.network) == [space.arch_id(json.loads(a)) for a in archs]
    capsys.readouterr()
    pd.DataFrame({"arch": ["k3_e4-skip"]}).to_csv(table, index=False)
    assert main(["cost", *device, "--archs", str(table), "--out", str(tmp_path / "q.csv")]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "space 'mbconv' has no string form; give a JSON" in lines[0]


def test_a_board_is_costed_with_the_calibration_named(tmp_path, capsys):
    """``dse calibrate --board`` then ``dse cost --board --calibration``: the FPGA's latency is
    the user's calibration's, with its error (it was the shipped one whatever was named);
    beside a ``--device``, ``--calibration`` is the device's and ``--board-calibration`` the
    board's; ``--board-calibration`` without a board is one line, nothing written."""
    from dse.cli import main

    cells = pd.read_csv(reference_data("nasbench201_naslib.csv")).head(12)
    table = tmp_path / "cells.csv"
    cells[["arch_str"]].to_csv(table, index=False)
    measured = tmp_path / "measured.csv"
    # a board twice as slow as the shipped calibration says, and 1 ms more a network
    pd.DataFrame({"arch": cells.arch_str, "latency_ms": 1.0}).to_csv(measured, index=False)
    shipped = tmp_path / "shipped.csv"
    base = ["cost", "--space", "nasbench201", "--archs", str(table), "--board", "ZC706"]
    assert main([*base, "--out", str(shipped)]) == 0
    ms = pd.read_csv(shipped).fpga_latency_ms
    pd.DataFrame({"arch": cells.arch_str, "latency_ms": 2 * ms + 1}).to_csv(measured, index=False)
    mine = tmp_path / "mine.toml"
    fit = ["calibrate", "--board", "ZC706", "--measured", str(measured), "--name", "mine"]
    assert main([*fit, "--out", str(mine)]) == 0, capsys.readouterr().err
    runs = {
        "alone": ["--calibration", str(mine)],
        "beside": [
            "--device",
            "Pixel-3",
            "--calibration",
            "none",
            "--board-calibration",
            str(mine),
        ],
    }
    for label, extra in runs.items():
        out = tmp_path / f"{label}.csv"
        assert main([*base, *extra, "--out", str(out)]) == 0, capsys.readouterr().err
        df = pd.read_csv(out)
        assert (
            set(df.fpga_calibration) == {"mine"}
            and df.fpga_error.str.contains("measured.csv").all()
        )
        relative = (df.fpga_latency_ms - (2 * ms + 1)).abs() / (2 * ms + 1)
        assert relative.median() < 0.05, relative.describe()
    assert set(pd.read_csv(tmp_path / "beside.csv").cpu_calibration) == {"none"}
    capsys.readouterr()
    out = tmp_path / "x.csv"
    bad = ["cost", "--network", "resnet18", "--device", "Pixel-3", "--board-calibration", "none"]
    assert main([*bad, "--out", str(out)]) == 2 and not out.exists()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--board-calibration" in lines[0], lines


def test_a_table_written_is_kept_unless_force(tmp_path, capsys):
    """``dse cost --out`` twice: the second is one line naming ``--out``, the first table as it
    was; ``--force`` replaces it, whole."""
    from dse.cli import main

    out = tmp_path / "pred.csv"
    first = ["cost", "--network", "resnet18", "--device", "Pixel-3", "--out", str(out)]
    assert main(first) == 0
    before = out.read_bytes()
    again = ["cost", "--network", "mobilenet_v2", "--device", "Pixel-3", "--out", str(out)]
    assert main(again) == 2 and out.read_bytes() == before
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--out: " in lines[0] and "--force" in lines[0], lines
    assert main([*again, "--force"]) == 0
    assert list(pd.read_csv(out).network) == ["mobilenet_v2"]
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]  # no temporary file left


def test_an_unmapped_op_is_one_line_each_with_its_source_and_nothing_is_written(
    tmp_path, capsys, monkeypatch
):
    from dse.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    out = tmp_path / "x.csv"
    args = ["--model", "dse_test_plugins:unmapped_model", "--input-shape", "4,8"]
    code = main(["cost", *args, "--device", "Titan-RTX", "--out", str(out)])
    head, *ops = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert head.startswith("dse: error: --model: 2 operator(s) have no IR translation")
    assert [op.split()[0] for op in ops] == ["cumsum.default", "erf.default"]
    assert all("dse_test_plugins.py" in op and "in forward" in op for op in ops)


def test_roofline_draws_a_users_model_and_its_onnx_export_alike(tmp_path, monkeypatch, capsys):
    """``dse roofline --model module:function`` (a PyTorch model) and ``--onnx`` (its export)
    put the same operators at the same intensity and FLOP/s (fp16: the bits follow)."""
    import dse_test_plugins
    import torch

    from dse.cli import main

    onnx = pytest.importorskip("onnx")
    monkeypatch.syspath_prepend(str(TESTS))
    path = tmp_path / "tiny.onnx"
    module = dse_test_plugins.tiny_model().eval()
    kwargs = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, **kwargs)
    assert onnx.load(str(path)).graph.node
    tables = []
    for what in (
        ["--model", "dse_test_plugins:tiny_model", "--input-shape", "3,32,32"],
        ["--onnx", str(path)],
    ):
        csv = tmp_path / f"{len(tables)}.csv"
        args = ["roofline", *what, "--out", str(tmp_path / "r.svg"), "--csv", str(csv)]
        assert main(args) == 0, capsys.readouterr().err
        tables.append(pd.read_csv(csv))
    assert len(tables[0]) >= 3
    pd.testing.assert_frame_equal(tables[0], tables[1])
    code = main(["roofline", "--model", "dse_test_plugins:tiny_model", "--out", "x.svg"])
    assert code == 2 and "--input-shape" in capsys.readouterr().err
