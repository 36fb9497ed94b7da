"""How often each Medusa head's top-i prediction is the token the model would produce.

``a[k, i]`` is the probability that head ``k`` (0: the first Medusa head, which predicts the token
after next) has the correct token at rank ``i`` exactly (0: its top-1). Ranks are mutually
exclusive, so a row sums to at most one: it is the difference of the cumulative top-k accuracies
that Medusa's training logs report. Section 6.3.3.3 assumes heads are independent, which gives
a candidate path ``[i_1, ..., i_k]`` the probability ``prod_j a[j, i_j]`` of being right.

The default calibration ships with the package (``head_topk_accuracy.csv``): cumulative top-1..5
accuracy of five Medusa-1 heads for Vicuna-7B/13B/33B v1.3 from the Medusa project's training logs
(the 33B run is marked failed there). Users load their own CSV of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_FILE = "head_topk_accuracy.csv"
_COLUMNS = ("model", "head")


@dataclass(frozen=True)
class HeadAccuracy:
    """Per-head, per-rank accuracies ``a`` (heads x ranks) of one model's Medusa heads."""

    a: np.ndarray
    name: str = ""
    #: per head, the ratio between consecutive ranks past the measured ones (a geometric tail,
    #: see :meth:`with_fitted_tail`); None: a rank past the table scores 0
    tail: np.ndarray | None = None

    def __post_init__(self):
        a = np.asarray(self.a, dtype=float)
        if a.ndim != 2 or a.size == 0:
            raise ValueError(
                f"accuracies: expected a non-empty (heads x ranks) table, got shape {a.shape}"
            )
        if np.any(a < 0) or np.any(a.sum(axis=1) > 1 + 1e-9):
            raise ValueError(
                "accuracies: each head's per-rank accuracies must be >= 0 and sum to <= 1 "
                "(cumulative top-k accuracies must be non-decreasing and <= 1)"
            )
        object.__setattr__(self, "a", a)
        if self.tail is not None:
            tail = np.asarray(self.tail, dtype=float)
            if tail.shape != (a.shape[0],) or np.any(tail < 0) or np.any(tail >= 1):
                raise ValueError(f"tail: one ratio in [0, 1) per head, got {tail}")
            object.__setattr__(self, "tail", tail)

    @property
    def heads(self) -> int:
        return self.a.shape[0]

    @property
    def ranks(self) -> int:
        return self.a.shape[1]

    def truncated(self, heads: int) -> HeadAccuracy:
        """The first ``heads`` heads."""
        if not 1 <= heads <= self.heads:
            raise ValueError(f"heads: must be in 1..{self.heads}, got {heads}")
        tail = None if self.tail is None else self.tail[:heads]
        return HeadAccuracy(self.a[:heads], self.name, tail)

    def table(self, ranks: int | None = None) -> np.ndarray:
        """Accuracies of ranks ``0..ranks-1`` (heads x ranks): the measured ones exactly, then
        the tail (zeros without one)."""
        ranks = self.ranks if ranks is None else ranks
        if ranks <= self.ranks:
            return self.a[:, :ranks]
        if self.tail is None:
            return np.pad(self.a, ((0, 0), (0, ranks - self.ranks)))
        steps = np.arange(1, ranks - self.ranks + 1)[None, :]
        extra = self.a[:, -1:] * self.tail[:, None] ** steps
        return np.concatenate([self.a, extra], axis=1)

    def with_fitted_tail(self) -> HeadAccuracy:
        """This table with a geometric tail per head, so every rank has an accuracy (Medusa's own
        trees use ranks up to 10, the logs report 5).

        The model: past the last measured rank ``R``, each rank keeps ``r`` of the previous one's
        accuracy, anchored at rank ``R``'s measured value. ``r`` is the least-squares slope of
        log accuracy against rank over ranks 2..R (top-1 sits far above the tail's trend), at most
        0.95, and small enough that the head's accuracies still sum to at most 1. The measured
        ranks are unchanged."""
        ratios = []
        for row in self.a:
            ranks = np.arange(1, len(row))
            values = row[1:]
            ok = values > 0
            if ok.sum() >= 2:
                slope = np.polyfit(ranks[ok], np.log(values[ok]), 1)[0]
                r = float(np.exp(slope))
            elif len(row) >= 2 and row[-2] > 0:
                r = float(row[-1] / row[-2])
            else:
                r = 0.0
            r = min(max(r, 0.0), 0.95)
            if row[-1] > 0:  # the whole geometric tail must fit in what the table leaves
                room = max(0.0, 1.0 - float(row.sum())) / row[-1]
                r = min(r, room / (1.0 + room))
            ratios.append(r)
        return HeadAccuracy(self.a, self.name, np.array(ratios))

    @classmethod
    def from_cumulative(cls, cumulative, name: str = "") -> HeadAccuracy:
        """From cumulative top-1..R accuracies per head (heads x R)."""
        c = np.asarray(cumulative, dtype=float)
        if c.ndim != 2 or np.any(np.diff(c, axis=1) < -1e-12):
            raise ValueError(
                "cumulative top-k accuracies must be a (heads x ranks) table, non-decreasing along "
                "ranks"
            )
        return cls(np.diff(c, axis=1, prepend=0.0), name)

    @classmethod
    def parametric(
        cls,
        heads: int = 5,
        top1: float = 0.6,
        head_decay: float = 0.6,
        rank_decay: float = 0.35,
        ranks: int = 10,
        name: str = "parametric",
    ) -> HeadAccuracy:
        """A decay model: head k's top-1 accuracy is ``top1 * head_decay**k`` and each further
        rank keeps ``rank_decay`` of the previous rank's (defaults near Vicuna-7B's heads)."""
        for field, value in (
            ("top1", top1),
            ("head_decay", head_decay),
            ("rank_decay", rank_decay),
        ):
            if not 0 < value <= 1:
                raise ValueError(f"{field}: must be in (0, 1], got {value}")
        k, i = np.arange(heads)[:, None], np.arange(ranks)[None, :]
        a = top1 * head_decay**k * rank_decay**i
        total = a.sum(axis=1, keepdims=True)
        return cls(np.where(total > 1, a / total, a), name)


def load_head_accuracy(
    model: str = "vicuna-7b-v1.3",
    path: str | Path | None = None,
    include_failed: bool = False,
    tail: bool = True,
) -> HeadAccuracy:
    """One model's head accuracies from a CSV with columns ``model, head, top1_cumulative, ...``
    (and optionally ``run_state``); default: the packaged Medusa-1 calibration. With ``tail``
    (default), ranks past the measured ones follow :meth:`HeadAccuracy.with_fitted_tail`."""
    if path is None:
        with resources.files("dse.catalogs").joinpath(DEFAULT_FILE).open() as f:
            df = pd.read_csv(f)
        where = f"packaged {DEFAULT_FILE}"
    else:
        df, where = pd.read_csv(path), str(path)
    missing = [c for c in _COLUMNS if c not in df.columns]
    tops = sorted(
        (c for c in df.columns if c.startswith("top") and c.endswith("_cumulative")),
        key=lambda c: int(c[3 : -len("_cumulative")]),
    )
    if missing or not tops:
        raise ValueError(
            f"{where}: needs columns model, head and top<i>_cumulative; missing "
            f"{missing or ['top1_cumulative']}"
        )
    rows = df[df.model == model]
    if rows.empty:
        raise ValueError(
            f"model: {model!r} is not in {where}; allowed values: {sorted(df.model.unique())}"
        )
    if "run_state" in rows.columns and not include_failed and (rows.run_state == "failed").any():
        raise ValueError(
            f"model: {model!r} comes from a run marked failed in {where}; "
            "pass include_failed=True to use it anyway"
        )
    rows = rows.sort_values("head")
    acc = HeadAccuracy.from_cumulative(rows[tops].to_numpy(), model)
    return acc.with_fitted_tail() if tail else acc
