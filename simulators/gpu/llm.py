"""Decoder-only transformer workloads on the roofline: operators per phase (dissertation table 6.3).

A decoding *step* processes ``T`` new tokens of ``R`` requests against their KV caches. With
per-request new tokens ``t_r`` and context (key) lengths ``c_r`` every operator's FLOPs and bytes
depend on four sums only, so one formula covers all phases and whole sweeps at once (numpy
broadcasting):

* ``tokens``  T = sum t_r      (rows of every linear layer)
* ``scores``  S = sum t_r c_r  (query-key pairs per head)
* ``keys``    K = sum c_r      (KV-cache tokens read)
* ``logits``  tokens whose next-token distribution is computed (lm_head rows)

Table 6.3's phases with b equal requests: prefill ``(t, c) = (s, s)``, decoding ``(1, s)``,
parallel (Medusa tree) decoding ``(q, s)``. Operators per layer: ``q/k/v_proj``, ``qk``
(QK^T), ``softmax``, ``pv`` (PV), ``o_proj``, ``gate/up/down_proj``, plus the element-wise
``norm``, ``rotary``, ``act_mul``, ``residual`` and ``kv_append``; once per step ``embed``,
``final_norm`` and ``lm_head``. With ``simplified=True`` only table 6.3's eight matrix
multiplications remain (the block the dissertation simulates in 6.4.3.3). Each operator
reads its inputs and weights once and writes its output once, which reproduces the
operational intensity of tables 6.4-6.6 (see tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dse.catalogs.llms import LlmConfig
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, GpuCostModel, precision_of_bits

PHASES = ("prefill", "decode", "parallel_decode")
TABLE_6_3 = ("q_proj", "k_proj", "v_proj", "qk", "pv", "gate_proj", "up_proj", "down_proj")


@dataclass
class StepShape:
    """The four sums that define a step's work (arrays broadcast): see the module docstring."""

    tokens: np.ndarray
    scores: np.ndarray
    keys: np.ndarray
    logits: np.ndarray

    @classmethod
    def phase(cls, phase: str, batch=1, seq=1024, candidates=1) -> StepShape:
        """Table 6.3's phases for ``batch`` equal requests with ``seq`` context tokens."""
        b, s, q = (np.asarray(x, dtype=float) for x in (batch, seq, candidates))
        if phase == "prefill":
            return cls(b * s, b * s * s, b * s, b)
        if phase == "decode":
            return cls(b, b * s, b * s, b)
        if phase == "parallel_decode":
            return cls(b * q, b * q * s, b * s, b * q)
        raise ValueError(f"phase: {phase!r} is not allowed; allowed values: {list(PHASES)}")

    @classmethod
    def requests(cls, new_tokens, context, logits=None) -> StepShape:
        """One step over requests with their own new-token counts and context lengths."""
        t, c = np.asarray(new_tokens, dtype=float), np.asarray(context, dtype=float)
        return cls(t.sum(), (t * c).sum(), c.sum(), t.sum() if logits is None else float(logits))


@dataclass
class Operators:
    """Per-operator arrays: FLOPs and bytes have shape (n_ops, *step shape)."""

    names: tuple[str, ...]
    op_class: np.ndarray
    precision: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    repeat: np.ndarray  # how many times per step (layers, or 1 for per-model ops)


class LlmWorkload:
    """A model config on a :class:`GpuCostModel`: operators, step latency, memory."""

    def __init__(self, config: LlmConfig, model: GpuCostModel, simplified: bool = False):
        self.config, self.model, self.simplified = config, model, simplified

    def operators(self, shape: StepShape) -> Operators:
        c = self.config
        h, i, n, kv, d, v = c.hidden, c.intermediate, c.heads, c.kv_heads, c.head_dim, c.vocab
        a, w, k = c.act_bits / 8, c.weight_bits / 8, c.kv_bits / 8
        T, S, K, L = shape.tokens, shape.scores, shape.keys, shape.logits

        def lin(rows, fin, fout):  # (FLOPs, bytes) of a linear layer
            return 2 * rows * fin * fout, (rows * fin + rows * fout) * a + fin * fout * w

        ops = {
            "q_proj": ("linear", *lin(T, h, n * d)),
            "k_proj": ("linear", *lin(T, h, kv * d)),
            "v_proj": ("linear", *lin(T, h, kv * d)),
            "qk": ("matmul", 2 * S * n * d, T * n * d * a + K * kv * d * k + S * n * a),
            "softmax": ("elementwise", 5 * S * n, 2 * S * n * a),
            "pv": ("matmul", 2 * S * n * d, S * n * a + K * kv * d * k + T * n * d * a),
            "o_proj": ("linear", *lin(T, n * d, h)),
            "gate_proj": ("linear", *lin(T, h, i)),
            "up_proj": ("linear", *lin(T, h, i)),
            "down_proj": ("linear", *lin(T, i, h)),
            "act_mul": ("elementwise", 5 * T * i, 3 * T * i * a),
            "norm": ("elementwise", 2 * 4 * T * h, 2 * (2 * T * h * a + h * w)),
            "rotary": ("elementwise", 3 * T * (n + kv) * d, 2 * T * (n + kv) * d * a),
            "residual": ("elementwise", 2 * T * h, 2 * 3 * T * h * a),
            "kv_append": ("elementwise", 0 * T, 2 * T * kv * d * (a + k)),
            "embed": ("elementwise", 0 * T, T * h * (w + a)),
            "final_norm": ("elementwise", 4 * L * h, 2 * L * h * a + h * w),
            "lm_head": ("linear", *lin(L, h, v)),
        }
        per_model = {"embed", "final_norm", "lm_head"}
        names = tuple(nm for nm in ops if not self.simplified or nm in TABLE_6_3)
        lin_prec = PRECISION_INDEX[precision_of_bits(max(c.act_bits, c.weight_bits))]
        att_prec = PRECISION_INDEX[precision_of_bits(max(c.act_bits, c.kv_bits))]
        act_prec = PRECISION_INDEX[precision_of_bits(c.act_bits)]
        prec = {"linear": lin_prec, "matmul": att_prec, "elementwise": act_prec}
        shape_ = np.broadcast(T, S, K, L).shape
        return Operators(
            names,
            np.array([CLASS_INDEX[ops[nm][0]] for nm in names]),
            np.array([prec[ops[nm][0]] for nm in names]),
            np.stack(
                [np.broadcast_to(np.asarray(ops[nm][1], dtype=float), shape_) for nm in names]
            ),
            np.stack(
                [np.broadcast_to(np.asarray(ops[nm][2], dtype=float), shape_) for nm in names]
            ),
            np.array([1 if nm in per_model else c.layers for nm in names], dtype=float),
        )

    def _op_seconds(self, ops: Operators, calibrated: bool = True) -> np.ndarray:
        extra = (1,) * (ops.flops.ndim - 1)
        return self.model.seconds(
            ops.op_class.reshape(-1, *extra),
            ops.precision.reshape(-1, *extra),
            ops.flops,
            ops.bytes,
            calibrated=calibrated,
        )

    def step_seconds(self, shape: StepShape) -> np.ndarray:
        """Latency of one step (seconds), summed over operators and layers."""
        ops = self.operators(shape)
        extra = (1,) * (ops.flops.ndim - 1)
        return (self._op_seconds(ops) * ops.repeat.reshape(-1, *extra)).sum(axis=0)

    def phase_seconds(self, phase: str, batch=1, seq=1024, candidates=1) -> np.ndarray:
        return self.step_seconds(StepShape.phase(phase, batch, seq, candidates))

    def request_seconds(
        self, prompt: int, output: int, candidates: int = 1, tokens_per_step: float = 1.0
    ) -> dict[str, float]:
        """Analytic latency of one request alone on the GPU: time to first token (the prefill
        step), then decode steps; ``tokens_per_step`` > 1 models an accepted-prefix length
        (Medusa's acceleration rate) with ``candidates`` tokens verified per step."""
        ttft = float(self.phase_seconds("prefill", 1, prompt))
        produced, ctx, decode = 1.0, float(prompt + 1), 0.0
        phase = "decode" if candidates == 1 else "parallel_decode"
        while produced < output:
            decode += float(self.phase_seconds(phase, 1, ctx, candidates))
            step = min(tokens_per_step, output - produced)
            produced += step
            ctx += step
        tpot = decode / (output - 1) if output > 1 else 0.0
        return {"ttft_s": ttft, "tpot_s": tpot, "latency_s": ttft + decode}

    def memory_bytes(self, batch, seq) -> np.ndarray:
        """Weights plus the KV cache of ``batch`` sequences of ``seq`` tokens (bytes)."""
        return (
            self.config.weight_bytes
            + np.asarray(batch) * np.asarray(seq) * self.config.kv_bytes_per_token
        )

    def max_batch(self, seq, memory_fraction: float = 0.9) -> np.ndarray:
        """Largest batch whose weights and KV cache fit in ``memory_fraction`` of device memory
        (0 when the weights alone do not fit)."""
        free = self.model.device.memory_bytes * memory_fraction - self.config.weight_bytes
        per_seq = np.asarray(seq, dtype=float) * self.config.kv_bytes_per_token
        return np.maximum(np.floor(free / per_seq), 0).astype(int)

    def roofline(self, phase: str, batch=1, seq=1024, candidates=1) -> pd.DataFrame:
        """One row per (operator, setting): FLOPs, bytes, operational intensity, roofline
        attainable FLOP/s, and the calibrated model's seconds and FLOP/s (per layer)."""
        b, s, q = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(x, dtype=float)) for x in (batch, seq, candidates))
        )
        ops = self.operators(StepShape.phase(phase, b, s, q))
        secs = self._op_seconds(ops)
        frames = []
        for j, nm in enumerate(ops.names):
            f, by = ops.flops[j], ops.bytes[j]
            oi = np.divide(f, by, out=np.zeros_like(f), where=by > 0)
            frames.append(
                pd.DataFrame(
                    {
                        "operator": nm,
                        "phase": phase,
                        "batch": b.astype(int),
                        "seq": s.astype(int),
                        "candidates": q.astype(int),
                        "flops": f,
                        "bytes": by,
                        "oi": oi,
                        "attainable_flops": self.model.attainable(ops.precision[j], f, by),
                        "seconds": secs[j],
                        "flops_per_s": f / secs[j],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)
