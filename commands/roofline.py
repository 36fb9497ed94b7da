"""Roofline figures (like dissertation fig. 6.8) and the ``dse roofline`` command.

The device's roof (bandwidth slope and compute ceiling at one precision) on log-log axes, with
one marker group per operator group and phase: for an LLM ``qkv``, ``qk/pv`` and
``up/gate/down`` in ``init`` (prefill), ``ar`` (decoding) and ``medusa`` (parallel decoding);
for a network, one group per op class. Points sit at the operator's operational intensity and
the calibrated model's FLOP/s; measured points (a CSV with ``tflops`` and
``operational_intensity`` columns, e.g. tables 6.4-6.6) are drawn as crosses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from dse import outputs
from dse.catalogs.devices import Device
from dse.commands.cost import input_shape, model_graph, onnx_graph
from dse.graph import make_op
from dse.inputs import read_table, require_numbers
from dse.params import ConfigError
from dse.registry import COMMANDS

#: what matplotlib writes without extra backends
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")

GROUPS = {
    "q_proj": "qkv",
    "k_proj": "qkv",
    "v_proj": "qkv",
    "qk": "qk/pv",
    "pv": "qk/pv",
    "gate_proj": "up/gate/down",
    "up_proj": "up/gate/down",
    "down_proj": "up/gate/down",
}
PHASE_LABEL = {"prefill": "init", "decode": "ar", "parallel_decode": "medusa"}


def llm_points(workload, phases, batch, seq, candidates) -> pd.DataFrame:
    """One point per (operator group, phase, setting): summed FLOPs over summed seconds."""
    frames = []
    for phase in phases:
        q = candidates if phase == "parallel_decode" else [1]
        b, s, c = (a.ravel() for a in np.meshgrid(batch, seq, q, indexing="ij"))
        df = workload.roofline(phase, b, s, c)
        df = df[df["operator"].isin(GROUPS)].assign(group=lambda d: d["operator"].map(GROUPS))
        agg = df.groupby(["group", "batch", "seq", "candidates"], as_index=False)[
            ["flops", "bytes", "seconds"]
        ].sum()
        agg["label"] = agg["group"] + " " + PHASE_LABEL[phase]
        frames.append(agg)
    out = pd.concat(frames, ignore_index=True)
    out["oi"] = out["flops"] / out["bytes"]
    out["flops_per_s"] = out["flops"] / out["seconds"]
    return out


def graph_points(coster, graph) -> pd.DataFrame:
    """One point per kernel-launching node of ``graph``, labelled by op class."""
    df = coster.kernels(graph)
    df = df[df["kernels"] > 0].copy()
    df["label"] = df["op_class"]
    df["flops_per_s"] = df["flops"] / df["seconds"]
    return df[df["flops"] > 0]


def plot_roofline(
    device: Device,
    precision: str,
    points: pd.DataFrame,
    path: str | Path,
    measured: pd.DataFrame | None = None,
    title: str | None = None,
) -> Path:
    """Draw the roofline and ``points`` (columns oi, flops_per_s, label) to ``path``
    (PNG/SVG/PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peak, bw = device.peak(precision), device.memory_bandwidth
    fig, ax = plt.subplots(figsize=(7, 5))
    oi_all = points["oi"].to_numpy()
    lo = min(0.1, float(oi_all.min()) / 2) if len(oi_all) else 0.1
    hi = max(10 * peak / bw, float(oi_all.max()) * 2) if len(oi_all) else 10 * peak / bw
    x = np.geomspace(lo, hi, 200)
    ax.plot(x, np.minimum(peak, x * bw) / 1e12, color="black", lw=1.5)
    ax.plot(x, x * bw / 1e12, "k--", lw=0.8, label=f"{bw / 1e9:,.0f} GB/s")
    ax.axhline(
        peak / 1e12,
        color="k",
        ls=":",
        lw=0.8,
        label=f"{peak / 1e12:,.0f} TFLOP/s ({device.precision(precision)})",
    )
    for label, grp in points.groupby("label", sort=True):
        ax.scatter(grp["oi"], grp["flops_per_s"] / 1e12, s=14, alpha=0.8, label=label)
    if measured is not None and len(measured):
        ax.scatter(
            measured["operational_intensity"],
            measured["tflops"],
            marker="x",
            color="black",
            s=16,
            label="measured",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("operational intensity (FLOP/byte)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(title or f"{device.name} roofline")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


#: bits of a network's weights and activations at each --precision (others: 32)
PRECISION_BITS = {"fp16": 16, "bf16": 16, "int8": 8, "fp8": 8}


def at_bits(graph: nx.DiGraph, bits: int) -> nx.DiGraph:
    """A copy of ``graph`` with every op's weights and activations at ``bits``."""
    g = graph.copy()
    for n in g:
        op = g.nodes[n]["op"]
        attrs = {**op.attrs(), "weight_bits": bits, "act_bits": bits}
        g.nodes[n]["op"] = make_op(op.kind, op.in_shapes, **attrs)
    return g


def _network(args: argparse.Namespace) -> tuple[str, nx.DiGraph] | None:
    """(label, graph) of the network to plot (a zoo network, an ONNX file or a PyTorch model:
    a --model with a colon names one), or None for an LLM."""
    if args.network:
        from dse.spaces.zoo import build

        return args.network, build(args.network)
    if args.onnx:
        return Path(args.onnx).stem, onnx_graph(args.onnx)
    if args.model and ":" in args.model:
        return args.model, model_graph(args.model, args.input_shape)
    return None


def read_measured(path: str) -> pd.DataFrame:
    """The measured points to draw beside the model's: a table with positive ``tflops`` and
    ``operational_intensity`` (FLOPs per byte) columns; anything else is one line naming
    ``--measured``."""
    table = read_table(path, "--measured")
    columns = ("tflops", "operational_intensity")
    if not set(columns) <= set(table.columns):
        raise ConfigError(f"--measured: {path} needs columns tflops, operational_intensity")
    for column in columns:
        table[column] = require_numbers(table, column, "--measured", path, strict=True)
    return table


@COMMANDS.register("roofline")
class RooflineCommand:
    """Draw a GPU's roofline with an LLM's or a network's operators on it (like fig. 6.8)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--device", default="A100-80GB-PCIe", help="catalog device (default A100-80GB-PCIe)"
        )
        p.add_argument("--devices-file", help="TOML file with extra devices")
        p.add_argument(
            "--calibration", default="auto", help="auto, none, a shipped name or a TOML path"
        )
        p.add_argument("--precision", default="fp16", help="roof and LLM precision (default fp16)")
        what = p.add_mutually_exclusive_group()
        what.add_argument(
            "--model",
            help="LLM preset (default llama-7b), e.g. llama-33b; or a PyTorch model, "
            "module:function returning an nn.Module (with --input-shape)",
        )
        what.add_argument("--network", help="a zoo network instead, e.g. resnet18, mobilenet_v2")
        what.add_argument("--onnx", help="an ONNX model file instead (the onnx extra)")
        p.add_argument("--input-shape", type=input_shape, help="a PyTorch --model's input")
        p.add_argument(
            "--phases", default="prefill,decode", help="LLM phases: prefill,decode,parallel_decode"
        )
        p.add_argument(
            "--batch",
            type=_ints,
            default=[1, 2, 4, 8, 16, 32, 64],
            help="LLM batch sizes / network batch (first value)",
        )
        p.add_argument(
            "--seq",
            type=_ints,
            default=[128, 256, 512, 1024, 2048, 4096, 8192],
            help="LLM sequence lengths",
        )
        p.add_argument(
            "--candidates",
            type=_ints,
            default=[16, 32, 64],
            help="parallel-decoding candidate tokens",
        )
        p.add_argument(
            "--measured", help="CSV of measured points (tflops, operational_intensity) to overlay"
        )
        p.add_argument("--csv", help="also write the plotted points to this CSV")
        p.add_argument("--force", action="store_true", help="replace an existing --csv file")
        p.add_argument("--out", default="roofline.png", help="figure path (.png, .svg or .pdf)")

    def run(self, args: argparse.Namespace) -> int:
        from dse.catalogs.llms import get_llm
        from dse.simulators.gpu.kernels import GraphCoster
        from dse.simulators.gpu.llm import PHASES, LlmWorkload
        from dse.simulators.gpu.model import GpuCostModel

        if args.csv:  # a table of points is kept (the figure is redrawn: it holds no rows)
            outputs.claim(args.csv, "--csv", args.force)
        try:
            if Path(args.out).suffix.lower() not in FIGURE_SUFFIXES:
                raise ValueError(
                    f"--out: {args.out!r} has no figure suffix; allowed values: "
                    f"{', '.join(FIGURE_SUFFIXES)}"
                )
            model = GpuCostModel.create(args.device, args.calibration, args.devices_file)
            model.device.precision(args.precision)
            network = _network(args)
            if network is not None:
                label, graph = network
                graph = at_bits(graph, PRECISION_BITS.get(args.precision, 32))
                points = graph_points(GraphCoster(model, args.batch[0], args.precision), graph)
                title = f"{label} (batch {args.batch[0]}) on {args.device}"
            else:
                phases = [p for p in args.phases.split(",") if p]
                for ph in phases:
                    if ph not in PHASES:
                        raise ValueError(
                            f"--phases: {ph!r} is not allowed; allowed values: {list(PHASES)}"
                        )
                llm = get_llm(args.model or "llama-7b")
                points = llm_points(
                    LlmWorkload(llm, model), phases, args.batch, args.seq, args.candidates
                )
                title = f"{llm.name} operators on {args.device}"
            measured = read_measured(args.measured) if args.measured else None
        except (ValueError, OSError) as exc:
            raise ConfigError(str(exc)) from None
        path = plot_roofline(model.device, args.precision, points, args.out, measured, title)
        if args.csv:
            outputs.write(args.csv, points.to_csv(index=False))
        print(f"wrote {path} ({len(points)} points)" + (f" and {args.csv}" if args.csv else ""))
        return 0
