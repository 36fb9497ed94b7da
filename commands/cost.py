"""``dse cost``: price networks on hardware from the command line, as nn-Meter's ``predict``
does, with each figure's validated error beside it.

What is costed: a table of architectures of a space (``--space S --archs CSV``), a zoo network
(``--network NAME``), or the user's own PyTorch model (``--model module:function``, a function
that returns an ``nn.Module``, with ``--input-shape``), imported by :func:`dse.graph.from_torch`,
or an ONNX file (``--onnx model.onnx``, :func:`dse.graph.from_onnx`).
Where: a device of any family (``--device``: a GPU, a CPU or phone, an ASIC; its family picks the
simulator) and/or an FPGA board (``--board``), each through its simulator with its
calibration. Printed and written (``--out PRED.csv``): every network's parameters and MACs,
each simulator's metrics, the calibration used and its error for these networks (``not
validated for this network's ops`` where the calibration was validated on other networks).

    dse cost --network resnet18 --device A100-80GB-PCIe --board ZCU102
    dse cost --space nasbench201 --archs data/nasbench201_naslib.csv --device Titan-RTX --out p.csv
    dse cost --model mylab.models:resnet --input-shape 3,224,224 --device H100-SXM
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from dse import outputs
from dse.graph import totals
from dse.inputs import (
    add_plugin_arguments,
    arch_from_text,
    at_least,
    import_requested_plugins,
    plugin,
    read_arch_table,
    space_from,
)
from dse.params import ConfigError
from dse.registry import COMMANDS, SIMULATORS, SPACES


def input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes such as 3,224,224, got {text!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return shape


def onnx_graph(path: str) -> Any:
    """The IR of ONNX file ``path`` (``--onnx``); bad input is a ConfigError naming the flag."""
    from dse.graph import GraphError, from_onnx

    if not Path(path).is_file():
        raise ConfigError(f"--onnx: {path!r} is not a file")
    try:
        return from_onnx(path)
    except GraphError as exc:
        raise ConfigError(f"--onnx: {exc}") from None


def model_graph(spec: str, input_shape: tuple[int, ...] | None) -> Any:
    """The IR of the module ``"module:function"`` returns (``--model``), traced on one sample of
    ``input_shape`` (``--input-shape``)."""
    import torch

    from dse.graph import GraphError, from_torch
    from dse.spaces.torch_space import load_factory

    if input_shape is None:
        raise ConfigError("--input-shape: a --model needs its input's shape, e.g. 3,224,224")
    try:
        module = load_factory(spec)()
        return from_torch(module, (torch.randn(1, *input_shape),), name=spec)
    except (ValueError, GraphError) as exc:
        raise ConfigError(f"--model: {exc}") from None


def _networks(args: argparse.Namespace) -> tuple[str, list[tuple[str, Any]]]:
    """(scope, [(id, graph)]): what to cost, and the networks' space (for the error lines)."""
    chosen = [a for a in ("space", "network", "model", "onnx") if getattr(args, a) is not None]
    if len(chosen) != 1:
        raise ConfigError("--space/--network/--model/--onnx: give exactly one of them")
    if args.onnx is not None:
        return "onnx", [(Path(args.onnx).stem, onnx_graph(args.onnx))]
    if args.network is not None:
        zoo = SPACES.create("zoo")
        try:
            arch = zoo.parse(args.network)
        except ValueError as exc:  # "network: 'x' is not allowed; allowed values: [...]"
            raise ConfigError(f"--{exc}") from None
        return "zoo", [(args.network, zoo.to_graph(arch))]
    if args.model is not None:
        return "torch", [(args.model, model_graph(args.model, args.input_shape))]
    if args.archs is None:
        raise ConfigError("--archs: --space needs a table of architectures (CSV or Parquet)")
    space = space_from(args)
    table, column = read_arch_table(args.archs, "--archs", args.arch_column)
    out = []
    for i, text in enumerate(table[column].astype(str)):
        try:
            arch = arch_from_text(space, text)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"--archs: row {i + 1}: {exc}") from None
        out.append((space.arch_id(arch), space.to_graph(arch)))
    return args.space, out


def _simulators(args: argparse.Namespace) -> list[Any]:
    if args.board_calibration is not None and args.board is None:
        raise ConfigError("--board-calibration: calibrates --board; name an FPGA board too")
    if args.device is None and args.batch_size != 1:
        raise ConfigError(
            f"--batch-size: {args.batch_size} sets --device's batch; an FPGA board prices one "
            "frame (allowed without --device: 1)"
        )
    specs = []
    if args.device is not None:
        params: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size}
        if args.devices_file:
            params["devices_file"] = args.devices_file
        if args.calibration:
            params["calibration"] = args.calibration
        specs.append((device_family(args.device, args.devices_file), params))
    if args.board is not None:
        params = {"board": args.board, "calibration": _board_calibration(args)}
        if args.boards_file:
            params["boards_file"] = args.boards_file
        specs.append(("fpga", params))
    if not specs:
        raise ConfigError(
            "--device/--board: name a device (--device: a GPU, CPU or ASIC) or an FPGA board"
        )
    return [plugin(SIMULATORS, name, p, "--simulator", f"--{name}", name) for name, p in specs]


def _board_calibration(args: argparse.Namespace) -> str:
    """The FPGA board's calibration: ``--board-calibration``, else ``--calibration`` when the
    board is the only target (``dse cost --board ZC706 --calibration mine.toml``, as after
    ``dse calibrate --board``), else the board's shipped one (``auto``)."""
    if args.board_calibration is not None:
        return args.board_calibration
    if args.calibration and args.device is None:
        return args.calibration
    return "auto"


def device_family(name: str, devices_file: str | None) -> str:
    """The family of catalog device ``name`` (its simulator's name); exit 2 listing them all."""
    from dse.catalogs.devices import load_all_devices

    try:
        devices = load_all_devices(devices_file)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name not in devices:
        raise ConfigError(f"--device: {name!r} is not allowed; allowed values: {sorted(devices)}")
    return devices[name].family


@COMMANDS.register("cost")
class CostCommand:
    """Cost networks on a GPU, CPU, ASIC or FPGA: params, MACs, latency (energy on an ASIC), and
    each figure's validated error."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        what = p.add_argument_group("what to cost (one of)")
        what.add_argument("--space", help="a space whose architectures --archs lists")
        what.add_argument("--network", help="a zoo network (dse list shows the zoo space)")
        what.add_argument("--model", help="module:function returning a torch.nn.Module")
        what.add_argument("--onnx", help="an ONNX model file (the onnx extra)")
        p.add_argument("--archs", help="CSV or Parquet of architectures of --space")
        p.add_argument(
            "--arch-column",
            help="their column (default: arch, else arch_str, whichever the table has)",
        )
        p.add_argument(
            "--space-param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a parameter of --space (repeatable)",
        )
        p.add_argument("--input-shape", type=input_shape, help="a --model's input, e.g. 3,224,224")
        add_plugin_arguments(p)
        p.add_argument("--device", help="a GPU, CPU or ASIC of the catalog (dse list devices)")
        p.add_argument("--devices-file", default=None)
        p.add_argument(
            "--calibration",
            default=None,
            help="the calibration of --device (of --board when it is the only target): auto, "
            "none, a shipped name or a TOML path (default: auto)",
        )
        p.add_argument(
            "--batch-size",
            type=at_least(1),
            default=1,
            help="--device's batch size (an FPGA board prices one frame)",
        )
        p.add_argument("--board", help="an FPGA board (dse list boards)")
        p.add_argument("--boards-file", default=None)
        p.add_argument(
            "--board-calibration",
            default=None,
            help="the calibration of --board beside a --device (default: auto)",
        )
        p.add_argument("--out", default=None, help="write the table as CSV")
        p.add_argument("--force", action="store_true", help="replace an existing --out file")

    def run(self, args: argparse.Namespace) -> int:
        if args.out:
            outputs.claim(args.out, "--out", args.force)
        import_requested_plugins(args)
        sims = _simulators(args)  # refuses a bad device or board before any network is built
        scope, networks = _networks(args)
        rows = []
        for name, g in networks:
            t = totals(g)
            rows.append({"network": name, "params": t.params, "macs": t.macs})
        errors = {}
        for sim in sims:
            values = sim.evaluate_population([g for _, g in networks])
            fidelity = sim.metric_fidelity(scope)
            for m in sim.metrics:
                for row, v in zip(rows, values[m]):
                    row[m] = float(v)
            latency = next(m for m in sim.metrics if m.endswith("latency_ms"))
            errors[sim.name] = fidelity[latency].line(latency)
            cal = fidelity[latency].calibration or "none"
            for row in rows:
                row[f"{sim.name}_calibration"] = cal
        df = pd.DataFrame(rows)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            shown = [c for c in df.columns if not c.endswith("_calibration")]
            print(df[shown].head(50).to_string(index=False))
        for line in errors.values():
            print(f"expected error: {line}")
        if args.out:
            for name, line in errors.items():
                df[f"{name}_error"] = line
            outputs.write(args.out, df.to_csv(index=False))
            print(f"wrote {args.out} ({len(df)} networks)")
        return 0
