"""Medusa decoding cost: acceptance (closed form and Monte Carlo), step latency on the GPU
roofline, and a discrete-event decode loop (dissertation 6.4.1.1 and 6.4.3.3).

Terms (6.4.1.1): *acceleration rate* = tokens per decoding step; *overhead* = Medusa step latency
/ vanilla step latency; *speedup* = acceleration rate / overhead.

A Medusa step for ``b`` requests with context ``s`` verifies ``q`` candidate tokens each: the
backbone's parallel-decode phase of table 6.3 (``LlmWorkload``), plus the ``K`` Medusa heads
(eq. in 6.3.1.1: ``W_1`` of ``d x d`` with SiLU and residual, ``W_2`` of ``d x V``) on every
candidate's hidden state, as the reference implementation runs them, plus the verification
bookkeeping of :mod:`~dse.simulators.medusa.verify` (tree mask, top-k, candidate assembly,
acceptance, KV update), which 6.4.3.3's estimate leaves out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import simpy

from dse.catalogs.medusa_heads import HeadAccuracy
from dse.catalogs.medusa_trees import Tree
from dse.simulators.gpu.llm import LlmWorkload, StepShape
from dse.simulators.gpu.model import CLASS_INDEX, PRECISION_INDEX, precision_of_bits
from dse.simulators.medusa.acceptance import Acceptance, acceptance_draws, longest_accepted
from dse.simulators.medusa.verify import TreeShape, scaled_linear_workload, verification_seconds

LOG_FIT = 0.477  # 6.4.3.3: acc_rate = 0.477 log(candidates), from figure 6.6a


def log_acceleration(candidates, coefficient: float = LOG_FIT) -> np.ndarray:
    """The logarithmic fit of 6.4.3.3 (natural log), never below one token per step."""
    return np.maximum(1.0, coefficient * np.log(np.asarray(candidates, dtype=float)))


def heads_seconds(workload: LlmWorkload, heads: int, rows) -> np.ndarray:
    """Seconds for ``heads`` Medusa heads on ``rows`` hidden states: per head a ``d x d`` linear
    layer (SiLU and residual fused) and a ``d x V`` linear layer, each a kernel reading its
    weights once (6.3.1.1)."""
    c = workload.config
    r = np.asarray(rows, dtype=float)
    a, w, h, v = c.act_bits / 8, c.weight_bits / 8, c.hidden, c.vocab
    cls = CLASS_INDEX["linear"]
    prec = PRECISION_INDEX[precision_of_bits(max(c.act_bits, c.weight_bits))]
    w1 = workload.model.seconds(cls, prec, 2 * r * h * h, 2 * r * h * a + h * h * w)
    w2 = workload.model.seconds(cls, prec, 2 * r * h * v, r * (h + v) * a + h * v * w)
    return heads * (w1 + w2)


#: The one fitted parameter of the step cost: the share of the decode kernels' memory
#: efficiency that the backbone's linear layers keep when they multiply ``q`` candidate rows
#: at once (small-M GEMMs instead of the GEMVs of one-token decoding). Fitted by
#: ``python benchmarks/medusa_sim.py --fit`` to table 6.1's Vicuna-7B overhead (1.22: A100,
#: batch 1, sequence 1024, the 64-candidate sparse tree of the packaged head accuracies) and
#: checked on Vicuna-13B/33B and Zephyr-7B (tests/test_medusa.py).
VERIFY_LINEAR_EFFICIENCY = 0.839


@dataclass(frozen=True)
class SpeedupModel:
    """Closed-form Medusa speedup on one model and device (arrays broadcast).

    A step costs the backbone's parallel-decode phase (its linear layers at
    ``linear_efficiency`` of their decode memory efficiency), the heads on every candidate row,
    and the bookkeeping kernels of :mod:`~dse.simulators.medusa.verify` (for ``tree``, or an
    upper-bound tree shape when none is given); ``heads = 0`` gives the backbone alone, as
    6.4.3.3's estimate does (no bookkeeping, no fitted efficiency)."""

    workload: LlmWorkload
    heads: int = 5
    tree: TreeShape | None = None
    linear_efficiency: float = VERIFY_LINEAR_EFFICIENCY

    def __post_init__(self):
        if not 0 < self.linear_efficiency <= 1:
            raise ValueError(f"linear_efficiency: must be in (0, 1], got {self.linear_efficiency}")

    @functools.cached_property
    def _verify_workload(self) -> LlmWorkload:
        """The workload whose linear layers run at ``linear_efficiency`` of their bandwidth."""
        return scaled_linear_workload(self.workload, self.linear_efficiency)

    def vanilla_seconds(self, batch=1, seq=1024) -> np.ndarray:
        return self.workload.phase_seconds("decode", batch, seq)

    def step_seconds(self, shape: StepShape, tree: TreeShape | None = None) -> np.ndarray:
        """A verification step over ``shape`` (the class docstring)."""
        if not self.heads:  # the backbone alone: 6.4.3.3's roofline estimate, nothing fitted
            return self.workload.step_seconds(shape)
        shape_of_tree = tree or self.tree
        if shape_of_tree is None:  # a step's token count mixes requests and candidates
            raise ValueError(
                "tree: a Medusa step needs its tree's shape (TreeShape.of(tree), or tree= on the "
                "model); medusa_seconds bounds it from the candidate count"
            )
        return (
            self._verify_workload.step_seconds(shape)
            + heads_seconds(self.workload, self.heads, shape.tokens)
            + verification_seconds(self.workload, self.heads, shape, shape_of_tree)
        )

    def medusa_seconds(self, candidates, batch=1, seq=1024) -> np.ndarray:
        shape = StepShape.phase("parallel_decode", batch, seq, candidates)
        q = np.asarray(candidates)
        if not self.heads or self.tree is not None:
            return self.step_seconds(shape)
        if q.ndim == 0:
            return self.step_seconds(shape, TreeShape.bound(q, self.heads))
        # one tree shape per candidate count: the bookkeeping grows with the tree
        return np.stack(
            [
                self.step_seconds(
                    StepShape.phase("parallel_decode", batch, seq, qi),
                    TreeShape.bound(qi, self.heads),
                )
                for qi in q.ravel()
            ]
        ).reshape(np.broadcast(q, np.asarray(batch), np.asarray(seq)).shape)

    def with_linear_efficiency(self, value: float) -> SpeedupModel:
        return SpeedupModel(self.workload, self.heads, self.tree, value)

    def overhead(self, candidates, batch=1, seq=1024) -> np.ndarray:
        return self.medusa_seconds(candidates, batch, seq) / self.vanilla_seconds(batch, seq)

    def sweep(self, candidates, batch=1, seq=1024, acceleration=None) -> dict[str, np.ndarray]:
        """Acceleration (default: the log fit), overhead and speedup over broadcast arrays."""
        acc = (
            log_acceleration(candidates)
            if acceleration is None
            else np.asarray(acceleration, dtype=float)
        )
        over = self.overhead(candidates, batch, seq)
        return {
            "acceleration": np.broadcast_to(acc, over.shape),
            "overhead": over,
            "speedup": acc / over,
        }


#: table 6.1 (Medusa-2, A100): model -> (acceleration rate, overhead, Medusa speedup)
TABLE_6_1 = {
    "vicuna-7b": (3.47, 1.22, 2.83),
    "zephyr-7b": (3.14, 1.18, 2.66),
    "vicuna-13b": (3.51, 1.23, 2.83),
    "vicuna-33b": (3.01, 1.27, 2.35),
}


def fit_linear_efficiency(
    model: SpeedupModel, tree: TreeShape, overhead: float, batch: int = 1, seq: int = 1024
) -> float:
    """The ``linear_efficiency`` at which ``model``'s step over ``tree`` has ``overhead``
    (bisection; the overhead falls as the efficiency rises)."""
    shape = StepShape.phase("parallel_decode", batch, seq, tree.candidates)
    vanilla = float(model.vanilla_seconds(batch, seq))

    def over(e: float) -> float:
        return float(model.with_linear_efficiency(e).step_seconds(shape, tree)) / vanilla

    lo, hi = 1e-3, 1.0
    if over(hi) > overhead:
        raise ValueError(f"overhead: {overhead} is below the model's floor {over(hi):.3f}")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if over(mid) > overhead else (lo, mid)
    return (lo + hi) / 2


def speculative_speedup(workload: LlmWorkload, spec: Speculative, batch=1, seq=1024) -> np.ndarray:
    """Classic speculative decoding's speedup over vanilla decoding: ``spec.gamma`` draft steps
    and one target step on ``gamma + 1`` tokens yield :attr:`Speculative.tokens_per_step`."""
    step = spec.gamma * spec.draft.phase_seconds("decode", batch, seq) + workload.phase_seconds(
        "parallel_decode", batch, seq, spec.gamma + 1
    )
    return spec.tokens_per_step * workload.phase_seconds("decode", batch, seq) / step


class AcceptanceSampler:
    """Monte Carlo acceptance under independent heads: each step, head ``k``'s correct rank is
    drawn from ``a[k]`` (or none), and the accepted length is the root plus the longest tree
    path that matches the drawn ranks. Its mean equals :func:`expected_acceptance`."""

    def __init__(self, tree: Tree, acc: HeadAccuracy, seed: int = 0):
        self.tree, self.acc = tree, acc
        self.rng = np.random.default_rng(seed)
        _, self.child = tree.index()
        depth = min(tree.depth, acc.heads)
        a = acc.table(self.child.shape[1])[:depth]
        none = 1.0 - a.sum(axis=1, keepdims=True)
        self.cdf = np.cumsum(np.concatenate([a, none], axis=1), axis=1)
        self.depth = depth

    def sample(self, n: int) -> np.ndarray:
        """Tokens accepted in ``n`` independent steps."""
        u = self.rng.random((n, self.depth))
        ranks = (u[:, :, None] > self.cdf[None, :, :]).sum(
            axis=2
        )  # == width means no rank is right
        node = np.zeros(n, dtype=np.int64)
        length = np.ones(n, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        width = self.child.shape[1]
        for k in range(self.depth):
            r = ranks[:, k]
            nxt = np.where(alive & (r < width), self.child[node, np.minimum(r, width - 1)], -1)
            alive &= nxt >= 0
            node = np.where(alive, nxt, node)
            length += alive
        return length


@dataclass
class DecodeResult:
    """A simulated decode run: per-step records and the summary figures."""

    step_s: np.ndarray  # Medusa (or vanilla) step latencies
    vanilla_step_s: np.ndarray  # vanilla latency of the same batch state
    tokens: np.ndarray  # tokens produced per step, summed over the batch
    active: np.ndarray  # requests in each step
    latency_s: np.ndarray  # per request: arrival to last token
    summary: dict[str, float] = field(default_factory=dict)


class PooledSampler:
    """Tokens per step for a sampling scheme: drawn from the token model's Monte Carlo pool."""

    def __init__(
        self, tree: Tree, acc: HeadAccuracy, rule: Acceptance, seed: int = 0, pool: int = 4000
    ):
        self.pool = longest_accepted(
            tree, acceptance_draws(acc, rule, pool, max(10, acc.ranks), seed)
        )
        self.rng = np.random.default_rng(seed + 1)

    def sample(self, n: int) -> np.ndarray:
        return self.rng.choice(self.pool, size=n)


@dataclass(frozen=True)
class Speculative:
    """Classic speculative decoding: ``draft`` proposes ``gamma`` tokens one at a time, each
    accepted with probability ``alpha`` until the first rejection (Leviathan et al. 2023)."""

    draft: LlmWorkload
    gamma: int = 4
    alpha: float = 0.7

    def __post_init__(self):
        if self.gamma < 1 or not 0 <= self.alpha < 1:
            raise ValueError(
                f"gamma must be >= 1 and alpha in [0, 1), got {self.gamma}, {self.alpha}"
            )

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens per step: ``(1 - alpha**(gamma+1)) / (1 - alpha)``."""
        return (1 - self.alpha ** (self.gamma + 1)) / (1 - self.alpha)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Tokens per step: accepted drafts (truncated geometric) plus the target's own token."""
        run = rng.geometric(1 - self.alpha, size=n) - 1  # accepted before the first rejection
        return np.minimum(run, self.gamma) + 1


def simulate_decoding(
    model: SpeedupModel,
    requests: list[tuple[float, int, int]],
    *,
    tree: Tree | None,
    acc: HeadAccuracy | None = None,
    batch: int = 1,
    seed: int = 0,
    acceptance: Acceptance = Acceptance(),
    speculative: Speculative | None = None,
) -> DecodeResult:
    """Step-by-step decoding (simpy) of ``requests`` = (arrival seconds, context tokens, tokens to
    generate), at most ``batch`` at a time (continuous batching: a finished request's slot is
    refilled at the next step). Each step verifies ``tree`` (``None``: vanilla decoding) for every
    active request, costs the step on the GPU model at the batch's real context lengths, and
    samples each request's accepted tokens under ``acceptance`` (greedy: exact Monte Carlo of the
    head accuracies; sampling schemes: the token model of acceptance.py). With ``speculative``
    (and no tree) each step runs the draft ``gamma`` times and the target on ``gamma + 1``
    tokens."""
    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    if tree is not None and acc is None:
        raise ValueError("acc: a tree needs head accuracies")
    if tree is not None and speculative is not None:
        raise ValueError(
            "tree and speculative: choose Medusa (a tree) or speculative decoding, not both"
        )
    spec_rng = np.random.default_rng(seed)
    if tree is None:
        sampler = None
    elif acceptance.closed_form:
        sampler = AcceptanceSampler(tree, acc, seed)
    else:
        sampler = PooledSampler(tree, acc, acceptance, seed)
    q = tree.candidates if tree is not None else (speculative.gamma + 1 if speculative else 1)
    env = simpy.Environment()
    waiting: list[int] = []
    arrived = simpy.Store(env)
    ctx = np.array([r[1] for r in requests], dtype=float)
    left = np.array([r[2] for r in requests], dtype=float)
    done_at = np.zeros(len(requests))
    steps, vanilla, produced, active_n = [], [], [], []

    def source():
        for i in np.argsort([r[0] for r in requests], kind="stable"):
            yield env.timeout(max(0.0, requests[i][0] - env.now))
            yield arrived.put(int(i))

    def engine():
        running: list[int] = []
        finished = 0
        while finished < len(requests):
            while arrived.items:
                waiting.append((yield arrived.get()))
            while waiting and len(running) < batch:
                running.append(waiting.pop(0))
            if not running:
                waiting.append((yield arrived.get()))
                continue
            idx = np.array(running)
            shape = StepShape.requests(np.full(len(idx), q), ctx[idx])
            wl = model.workload
            t = float(
                model.step_seconds(shape, TreeShape.of(tree))
                if tree is not None
                else wl.step_seconds(shape)
            )
            if speculative is not None:
                for g in range(speculative.gamma):
                    t += float(
                        speculative.draft.step_seconds(
                            StepShape.requests(np.ones(len(idx)), ctx[idx] + g)
                        )
                    )
            t_van = float(wl.step_seconds(StepShape.requests(np.ones(len(idx)), ctx[idx])))
            yield env.timeout(t)
            if sampler is not None:
                got = sampler.sample(len(idx)).astype(float)
            elif speculative is not None:
                got = speculative.sample(spec_rng, len(idx)).astype(float)
            else:
                got = np.ones(len(idx))
            got = np.minimum(got, left[idx])
            left[idx] -= got
            ctx[idx] += got
            (
                steps.append(t),
                vanilla.append(t_van),
                produced.append(got.sum()),
                active_n.append(len(idx)),
            )
            still = []
            for i in running:
                if left[i] <= 0:
                    done_at[i] = env.now
                    finished += 1
                else:
                    still.append(i)
            running = still

    env.process(source())
    env.run(until=env.process(engine()))
    step_s, van_s, tokens = np.array(steps), np.array(vanilla), np.array(produced)
    latency = done_at - np.array([r[0] for r in requests])
    per_request_steps = tokens / np.array(active_n)
    acc_rate = float(tokens.sum() / np.sum(active_n))
    overhead = float(step_s.sum() / van_s.sum())
    summary = {
        "steps": float(len(step_s)),
        "acceleration_rate": acc_rate,
        "overhead": overhead,
        "speedup": acc_rate / overhead,
        "tokens_per_s": float(tokens.sum() / env.now),
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p90_s": float(np.percentile(latency, 90)),
        "latency_p99_s": float(np.percentile(latency, 99)),
        "mean_tokens_per_request_step": float(per_request_steps.mean()),
    }
    return DecodeResult(step_s, van_s, tokens, np.array(active_n), latency, summary)
