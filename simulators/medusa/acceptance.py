"""Acceptance schemes (dissertation 6.3.3.1): which candidate tokens a decoding step keeps.

* ``greedy`` (temperature 0): a candidate is kept when it is the model's argmax. Head ``k``'s
  rank-``i`` prediction is right with the measured probability ``a[k, i]``; ranks exclude each
  other, so the expected tokens per step has the closed form of 6.3.3.3
  (:func:`dse.catalogs.medusa_trees.expected_acceptance`).
* ``typical`` (temperature ``T > 0``, thresholds ``epsilon`` and ``delta``): a candidate ``x`` is
  kept when ``p(x) > min(epsilon, delta * exp(-H(p)))`` under the model's tempered distribution
  ``p``; several siblings may pass, and the step keeps the longest accepted prefix.
* ``rejection`` (speculative sampling, temperature ``T > 0``): one chain is drafted by sampling
  each head's tempered distribution ``q`` and each token is kept with probability
  ``min(1, p(x) / q(x))`` until the first rejection; it reproduces the model's distribution.

Sampling schemes need the model's and the heads' distributions, which the head accuracies alone
do not give. :class:`TokenModel` supplies them with a stated assumption: at every position the
model's logits over a vocabulary of ``vocab`` candidates are i.i.d. normal with standard deviation
``logit_std`` (which sets how peaked the tempered distributions are); head ``k``'s logits are, with
probability ``1 - miss_k``, the model's plus normal noise of scale ``sigma_k``, and otherwise
unrelated to them. ``sigma_k`` and ``miss_k`` reproduce the measured top-1 and top-R cumulative
accuracies (R = 5 for the packaged table). :meth:`TokenModel.draws` samples per step, head and rank
whether the
candidate would be accepted; :func:`longest_accepted` turns draws into tokens per step for any
tree, so one set of draws scores every tree of a search.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dse.catalogs.medusa_heads import HeadAccuracy
from dse.catalogs.medusa_trees import Tree

SCHEMES = ("greedy", "typical", "rejection")


@dataclass(frozen=True)
class Acceptance:
    """An acceptance scheme and its parameters."""

    scheme: str = "greedy"
    temperature: float = 0.0
    epsilon: float = 0.09
    delta: float = 0.3

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(
                f"scheme: {self.scheme!r} is not allowed; allowed values: {list(SCHEMES)}"
            )
        if self.temperature < 0:
            raise ValueError(f"temperature: must be >= 0, got {self.temperature}")
        if self.scheme == "rejection" and self.temperature == 0:
            raise ValueError(
                "temperature: rejection sampling needs a temperature > 0 (at 0 use 'greedy')"
            )
        if not 0 <= self.epsilon <= 1 or self.delta < 0:
            raise ValueError(
                f"epsilon must be in [0, 1] and delta >= 0, got {self.epsilon}, {self.delta}"
            )

    @property
    def closed_form(self) -> bool:
        """Greedy decoding, or typical acceptance at temperature 0 (which reverts to greedy)."""
        return self.scheme == "greedy" or (self.scheme == "typical" and self.temperature == 0)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class TokenModel:
    """Synthetic model and head distributions fitted to measured head accuracies.

    Per head two numbers are fitted: the noise scale ``sigma`` and the probability ``miss`` that
    the head has no information (its logits independent of the model's). They reproduce the
    measured top-1 and top-R cumulative accuracies, R being the table's widest rank."""

    def __init__(
        self,
        acc: HeadAccuracy,
        vocab: int = 512,
        logit_std: float = 3.0,
        fit_samples: int = 3000,
        seed: int = 0,
    ):
        self.acc, self.vocab, self.logit_std = acc, vocab, logit_std
        rng = np.random.default_rng(seed)
        z = rng.normal(0.0, logit_std, (fit_samples, vocab))
        noise = rng.normal(0.0, 1.0, (fit_samples, vocab))
        best = z.argmax(axis=1)
        cumulative = acc.a.cumsum(axis=1)
        fits = [
            self._fit(z, noise, best, top1, topr, acc.ranks)
            for top1, topr in zip(cumulative[:, 0], cumulative[:, -1])
        ]
        self.sigma = np.array([f[0] for f in fits])
        self.miss = np.array([f[1] for f in fits])

    @staticmethod
    def _fit(z, noise, best, top1: float, topr: float, ranks: int) -> tuple[float, float]:
        """(sigma, miss) with ``(1 - miss) C_1(sigma) = top1`` and ``C_R / C_1 = topr / top1``,
        where ``C_r`` is the informed head's top-r agreement (bisection on common random numbers:
        deterministic). ``C_R / C_1`` grows with sigma from 1."""
        target = topr / max(top1, 1e-12)
        lo, hi = 1e-3 * z.std(), 1e2 * z.std()
        for _ in range(36):
            mid = np.sqrt(lo * hi)
            h = z + mid * noise
            rank = (h > np.take_along_axis(h, best[:, None], 1)).sum(axis=1)
            c1, cr = np.mean(rank == 0), np.mean(rank < ranks)
            lo, hi = (lo, mid) if cr / max(c1, 1e-12) > target else (mid, hi)
        sigma = float(np.sqrt(lo * hi))
        h = z + sigma * noise
        c1 = float(np.mean(h.argmax(axis=1) == best))
        return sigma, float(np.clip(1.0 - top1 / max(c1, 1e-12), 0.0, 1.0))

    def draws(self, rule: Acceptance, steps: int, ranks: int, seed: int = 0) -> np.ndarray:
        """(steps, heads, ranks) bool: would head ``k``'s rank-``i`` candidate be accepted."""
        rng = np.random.default_rng(seed)
        heads = self.acc.heads
        out = np.zeros((steps, heads, ranks), dtype=bool)
        for k in range(heads):
            z = rng.normal(0.0, self.logit_std, (steps, self.vocab))
            informed = z + self.sigma[k] * rng.normal(0.0, 1.0, (steps, self.vocab))
            blind = rng.normal(0.0, self.logit_std, (steps, self.vocab))
            h = np.where(rng.random((steps, 1)) < self.miss[k], blind, informed)
            if rule.scheme == "rejection":
                p, q = _softmax(z, rule.temperature), _softmax(h, rule.temperature)
                u = rng.random((steps, 1))
                x = (
                    (q.cumsum(axis=1) < u).sum(axis=1).clip(max=self.vocab - 1)[:, None]
                )  # drafted token
                keep = rng.random((steps, 1)) < np.minimum(
                    1.0, np.take_along_axis(p, x, 1) / np.take_along_axis(q, x, 1)
                )
                out[:, k, 0] = keep[:, 0]  # one drafted chain: rank 0 stands for the sampled draft
                continue
            top = np.argpartition(-h, ranks - 1, axis=1)[:, :ranks]
            cand = np.take_along_axis(top, np.argsort(-np.take_along_axis(h, top, 1), axis=1), 1)
            if rule.closed_form:
                out[:, k, :] = cand == z.argmax(axis=1)[:, None]
                continue
            p = _softmax(z, rule.temperature)
            entropy = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1, keepdims=True)
            threshold = np.minimum(rule.epsilon, rule.delta * np.exp(-entropy))
            out[:, k, :] = np.take_along_axis(p, cand, 1) > threshold
            out[:, k, :] |= (
                cand == z.argmax(axis=1)[:, None]
            )  # the argmax always passes (max probability)
        return out


def longest_accepted(tree: Tree, accepted: np.ndarray) -> np.ndarray:
    """Tokens per step for each draw: the root plus the deepest tree path whose every token is
    accepted (``accepted``: steps x heads x ranks)."""
    parent, _ = tree.index()
    steps, heads, ranks = accepted.shape
    n = len(parent)
    ok = np.zeros((steps, n), dtype=bool)
    ok[:, 0] = True
    depth = np.zeros(n, dtype=np.int64)
    best = np.zeros(steps, dtype=np.int64)
    for j, p in enumerate(tree.paths, start=1):  # parents precede children
        k, i = len(p) - 1, p[-1]
        depth[j] = len(p)
        if k < heads and i < ranks:
            ok[:, j] = ok[:, parent[j]] & accepted[:, k, i]
            best = np.where(ok[:, j], np.maximum(best, depth[j]), best)
    return best + 1


@lru_cache(maxsize=16)
def _token_model(acc_key: tuple, seed: int) -> TokenModel:
    return TokenModel(HeadAccuracy(np.array(acc_key[0]), acc_key[1]), seed=seed)


@lru_cache(maxsize=64)
def _draws_cached(
    acc_key: tuple, rule: Acceptance, steps: int, ranks: int, seed: int
) -> np.ndarray:
    return _token_model(acc_key, seed).draws(rule, steps, ranks, seed)


def acceptance_draws(
    acc: HeadAccuracy, rule: Acceptance, steps: int = 4000, ranks: int = 10, seed: int = 0
) -> np.ndarray:
    """:meth:`TokenModel.draws`, cached per (accuracies, rule, steps, ranks, seed)."""
    key = (tuple(map(tuple, acc.a.tolist())), acc.name)
    return _draws_cached(key, rule, steps, ranks, seed)
