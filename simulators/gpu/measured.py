"""Measured operator throughput in the dissertation's format (tables 6.4-6.6), as model inputs.

Each CSV row gives, for one setting, the measured TFLOP/s and operational intensity of an
operator group: attention matrix multiplications (QK^T and PV, two kernels) or the MLP linear
layers (up, gate, down: three kernels). :func:`table_points` pairs every row with the FLOPs and
bytes our :class:`~dse.simulators.gpu.llm.LlmWorkload` computes for it, so a calibration can be
fitted (seconds = FLOPs / measured FLOP/s) and the model's intensity checked against the table.

Files (``llama33b_a100pcie_*.csv`` in the shared data):

* ``attention_batch16``: columns seq_len, candidate_tokens (batch 16), table 6.4
* ``attention_seq1024``: columns batch_size, candidate_tokens (sequence 1024), table 6.5
* ``mlp_linear``: columns batch_size, candidate_tokens (independent of sequence), table 6.6
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dse.simulators.gpu.llm import LlmWorkload, StepShape
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, precision_of_bits
from dse.simulators.gpu.roofline import OP_CLASSES

#: table stem -> (operators, fixed settings)
TABLES = {
    "attention_batch16": (("qk", "pv"), {"batch_size": 16}),
    "attention_seq1024": (("qk", "pv"), {"seq_len": 1024}),
    "mlp_linear": (("gate_proj", "up_proj", "down_proj"), {"seq_len": 1024}),
}


def table_points(
    folder: str | Path, workload: LlmWorkload, prefix: str = "llama33b_a100pcie_"
) -> pd.DataFrame:
    """All rows of the three tables with the model's FLOPs, bytes and op class per row."""
    frames = []
    for stem, (operators, fixed) in TABLES.items():
        path = Path(folder) / f"{prefix}{stem}.csv"
        df = pd.read_csv(path)
        for key, value in fixed.items():
            df[key] = value
        shape = StepShape.phase(
            "parallel_decode",
            df["batch_size"].to_numpy(),
            df["seq_len"].to_numpy(),
            df["candidate_tokens"].to_numpy(),
        )
        ops = workload.operators(shape)
        idx = [ops.names.index(o) for o in operators]
        classes = {int(ops.op_class[j]) for j in idx}
        if len(classes) != 1:
            raise ValueError(f"{stem}: operators {operators} span several op classes")
        df["table"] = stem
        df["op_class"] = OP_CLASSES[classes.pop()]
        df["kernels"] = len(idx)
        df["flops"] = ops.flops[idx].sum(axis=0)
        df["bytes"] = ops.bytes[idx].sum(axis=0)
        df["model_oi"] = df["flops"] / df["bytes"]
        df["measured_seconds"] = df["flops"] / (df["tflops"] * 1e12)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def predicted_tflops(
    points: pd.DataFrame, workload: LlmWorkload, calibrated: bool = True
) -> np.ndarray:
    """Model TFLOP/s for each row of :func:`table_points` (``calibrated=False``: the roofline)."""
    c = workload.config
    prec = PRECISION_INDEX[precision_of_bits(max(c.act_bits, c.weight_bits, c.kv_bits))]
    cls = points["op_class"].map(CLASS_INDEX).to_numpy()
    secs = workload.model.seconds(
        cls,
        prec,
        points["flops"].to_numpy(),
        points["bytes"].to_numpy(),
        points["kernels"].to_numpy(),
        calibrated=calibrated,
    )
    return points["flops"].to_numpy() / secs / 1e12
