"""Measured operator tables: one device's seconds per distinct operator, and mixes of them.

nn-Meter prices a network as the sum of its kernels' measured latencies; HELP calibrates a new
device from ten measurements by what it learned on other devices. A table is the first of these
for one shipped device: for each distinct operator of its measured networks (keyed by the
numbers its family's cost model reads: a class and a few counts per sample), the seconds that
best explain the measurements (:func:`fit_operator_table`). A new device of the family can then
be priced as a non-negative mix of the shipped tables and its own calibrated model
(:func:`mix_weights`), cross-validated on the same folds as the model's own candidates
(:func:`cross_validate_mix`): devices that share a runtime and its kernels share its cliffs
(cuDNN's or oneDNN's choice of kernel by shape, a phone's whole-millisecond timer), which no
roofline of FLOPs and bytes has.

This module is the family-independent part (the table, its TOML form, the fits); each family
says what its keys are (a :class:`TableFormat`) and where its tables ship.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dse.catalog import number_table
from dse.fidelity import CrossValidated, cross_validate
from dse.robust import NOISE, cauchy_weights

#: how strongly a table's operators are held to the device's own model (relative error of an
#: operator of mean cost, against one network's): enough to split the cost of operators that
#: always occur together (a space's ReLU-conv-BN triplets) as the model does, not to move a fit
#: the measurements determine
PRIOR_WEIGHT = 0.1
#: the least an operator of a table costs, as a fraction of the device's own model: a kernel
#: that runs costs something (a launch, a dispatch), however well the others explain the data
FLOOR = 0.1


@dataclass(frozen=True)
class TableFormat:
    """A family's table columns: ``columns[0]`` names the operator's class (one of
    ``classes``, or ``"view"``, index -1), the next ones are its numeric key, the last is
    ``seconds``."""

    columns: tuple[str, ...]
    classes: tuple[str, ...]

    @property
    def width(self) -> int:
        """Numbers in a key (the class index included)."""
        return len(self.columns) - 1

    def parse(self, data: Mapping[str, Any], where: str) -> OperatorTable:
        """An :class:`OperatorTable` from its TOML form (:meth:`OperatorTable.to_toml`): one
        ``[[batch]]`` section (``batch_size``, ``rows``) per measured batch size, or, for a
        table of one batch size, ``batch_size`` (default 1) and ``rows`` at the top."""
        if list(data.get("columns", [])) != list(self.columns):
            raise ValueError(f"{where}.columns: expected {list(self.columns)}")
        sections = data.get("batch", [data])
        if not isinstance(sections, list) or not all(isinstance(x, dict) for x in sections):
            raise ValueError(f"{where}.batch: expected [[batch]] sections (batch_size, rows)")
        index = {c: i for i, c in enumerate(self.classes)} | {"view": -1}
        batches, keys, seconds = [], [], []
        for b, section in enumerate(sections):
            at = f"{where}.batch[{b}]" if "batch" in data else where
            size = section.get("batch_size", 1)
            if not isinstance(size, int) or size < 1 or size in batches:
                raise ValueError(f"{at}.batch_size: expected a batch size >= 1 not listed before")
            for n, row in enumerate(section.get("rows", [])):
                if len(row) != len(self.columns) or row[0] not in index:
                    raise ValueError(
                        f"{at}.rows[{n}]: expected [class, {self.width - 1} numbers, seconds]; "
                        f"classes: {sorted(index)}"
                    )
                keys.append([index[row[0]], *map(float, row[1:-1])])
                seconds.append(float(row[-1]))
                batches.append(size)
        return OperatorTable(
            str(data.get("device", where)),
            np.array(batches, dtype=np.int64),
            np.array(keys, dtype=float).reshape(-1, self.width),
            np.array(seconds, dtype=float),
            str(data.get("source", "")),
            self,
        )


@dataclass(frozen=True, eq=False)
class OperatorTable:
    """``seconds[i]``: the measured cost of one operator with key ``keys[i]`` (a row of its
    family's :class:`TableFormat`) at batch size ``batches[i]`` on ``device``. A table may hold
    several batch sizes (one section each): a GPU at batch 256 runs other kernels, at another
    share of its roofline, than at batch 1, and the other devices' measurements at the batch
    size priced are what a mix needs."""

    device: str
    batches: np.ndarray
    keys: np.ndarray
    seconds: np.ndarray
    source: str
    format: TableFormat

    def __post_init__(self):
        w, n = self.format.width, len(self.keys)
        sizes = {len(self.seconds), len(self.batches), n}
        if self.keys.ndim != 2 or self.keys.shape[1] != w or len(sizes) > 1:
            raise ValueError(f"table {self.device!r}: need (n, {w}) keys, n batch sizes, n seconds")
        if not np.all(np.isfinite(self.seconds)) or np.any(self.seconds < 0):
            raise ValueError(f"table {self.device!r}: seconds must be finite and >= 0")

    @property
    def batch_sizes(self) -> list[int]:
        """The batch sizes the table has operators at, ascending."""
        return sorted(set(self.batches.tolist()))

    def lookup(self, keys: np.ndarray, batch_size: int) -> np.ndarray:
        """Seconds of each row of ``keys`` at ``batch_size``; NaN where the table has no such
        operator at that batch size."""
        index = self._index.get(int(batch_size), {})
        out = np.full(len(keys), np.nan)
        for j, k in enumerate(np.asarray(keys).tolist()):
            i = index.get(tuple(k))
            if i is not None:
                out[j] = self.seconds[i]
        return out

    def seconds_or(
        self, keys: np.ndarray, batch_size: int, fallback: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """Seconds of each row of ``keys``: the table's where it has the operator at
        ``batch_size``, else ``fallback()``'s (every row's seconds on the table's device by its
        own model; called only when some row is missing)."""
        measured = self.lookup(keys, batch_size)
        missing = np.isnan(measured)
        if missing.any():
            measured[missing] = fallback()[missing]
        return measured

    @functools.cached_property
    def _index(self) -> dict[int, dict[tuple, int]]:
        """Batch size -> row of each key (built once: a table is read at every population's
        pricing)."""
        index: dict[int, dict[tuple, int]] = {}
        for i, (b, k) in enumerate(zip(self.batches.tolist(), self.keys.tolist(), strict=True)):
            index.setdefault(b, {})[tuple(k)] = i
        return index

    def describe(self) -> str:
        """One line: its batch sizes, its operators (with several sections: and its rows, one
        per operator and batch size measured) and where its numbers come from."""
        source = " ".join(self.source.split())
        sizes = "/".join(map(str, self.batch_sizes))
        operators = f"{len(np.unique(self.keys, axis=0))} operators"
        if len(self.batch_sizes) > 1:
            operators += f" in {len(self.keys)} rows"
        return f"batch {sizes}, {operators}: {source}"

    def to_toml(self) -> str:
        lines = [f'device = "{self.device}"']
        if self.source:
            lines.append('source = """\n' + self.source.strip() + '\n"""')
        lines.append(f"columns = {list(self.format.columns)!r}".replace("'", '"'))
        for b in self.batch_sizes:
            lines += ["", "[[batch]]", f"batch_size = {b}", "rows = ["]
            at = self.batches == b
            for k, s in zip(self.keys[at].tolist(), self.seconds[at].tolist(), strict=True):
                name = self.format.classes[int(k[0])] if k[0] >= 0 else "view"
                numbers = ", ".join(str(int(v)) if v == int(v) else repr(v) for v in k[1:])
                lines.append(f'  ["{name}", {numbers}, {s!r}],')
            lines.append("]")
        return "\n".join(lines) + "\n"


def joined_tables(tables: Sequence[OperatorTable], source: str) -> OperatorTable:
    """One device's tables of different batch sizes as one table (one section each)."""
    devices = {t.device for t in tables}
    sizes = [b for t in tables for b in t.batch_sizes]
    if len(devices) != 1 or len({t.format for t in tables}) != 1 or len(set(sizes)) < len(sizes):
        raise ValueError("tables: need one device's tables of one format, each batch size once")
    return OperatorTable(
        tables[0].device,
        np.concatenate([t.batches for t in tables]),
        np.concatenate([t.keys for t in tables]),
        np.concatenate([t.seconds for t in tables]),
        source,
        tables[0].format,
    )


def fit_operator_table(
    keys: np.ndarray,
    counts: np.ndarray,
    seconds: np.ndarray,
    model_seconds: np.ndarray,
    device: str,
    format: TableFormat,
    batch_size: int = 1,
    source: str = "",
) -> OperatorTable:
    """The table that best explains measured ``seconds`` of networks whose operator counts are
    ``counts`` (networks x rows of ``keys``): non-negative least squares in relative error,
    ``min sum_n (counts[n] @ t / seconds[n] - 1)^2 + PRIOR_WEIGHT^2 sum_i (t_i - m_i)^2 /
    (m_i mean(m))``, ``t >= FLOOR x m``, where ``m`` is the device's own model's seconds per row
    (``model_seconds``): without it, operators that always occur together take their cost in
    arbitrary shares (often all of it on one, zero on the rest), and a network that has one
    without the others would be priced wrong. Weighted by ``1 / m_i``, the pull splits what
    the measurements give such a group in the model's proportions (each ``t_i / m_i`` the
    same); and no operator costs less than ``FLOOR x m_i``. Rows with the same
    key are one operator; views, operators the model runs for free and operators no network
    runs are left out."""
    from scipy.optimize import nnls

    keys = np.asarray(keys, dtype=float)
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    merged = np.zeros((len(counts), len(unique)))
    np.add.at(merged.T, inverse.ravel(), np.asarray(counts, dtype=float).T)
    model = np.asarray(model_seconds, dtype=float)[first]
    used = (merged.sum(0) > 0) & (unique[:, 0] >= 0) & (model > 0)
    y = np.asarray(seconds, dtype=float)
    m = model[used]
    pull = PRIOR_WEIGHT / np.sqrt(m * m.mean())
    a = np.vstack([merged[:, used] / y[:, None], np.diag(pull)])
    b = np.concatenate([np.ones(len(y)), pull * m])
    floor = FLOOR * m  # t = floor + u, u >= 0
    u, _ = nnls(a, b - a @ floor, maxiter=20 * int(used.sum()))
    batches = np.full(int(used.sum()), batch_size, dtype=np.int64)
    return OperatorTable(device, batches, unique[used], floor + u, source, format)


@dataclass(frozen=True)
class MixSource:
    """One entry of a calibration's mix: measured table ``table`` read at ``ratio`` times the
    batch size priced. A GPU at batch 64 can run its kernels as another, narrower GPU runs
    them at batch 32 (the same work per streaming multiprocessor), so a device measured at one
    batch size is also mixed with the others' sections at other batch sizes, each at its
    ratio to the measured one (:func:`mix_candidates`). In a calibration's ``[tables]`` the key
    is the table's name (ratio 1: the batch size priced) or ``NAME@Rx``
    (``"Titan-X-Pascal@0.5x"``: at half the batch size priced)."""

    table: str
    ratio: float = 1.0

    @classmethod
    def parse(cls, key: str, where: str = "tables") -> MixSource:
        """A ``[tables]`` key: ``NAME`` or ``NAME@Rx`` with ``R`` a number > 0."""
        name, at, suffix = key.rpartition("@")
        if not at:
            return cls(key)
        try:
            ratio = float(suffix[:-1]) if suffix.endswith("x") else float("nan")
        except ValueError:
            ratio = float("nan")
        if not name or not np.isfinite(ratio) or ratio <= 0:
            raise ValueError(
                f"{where}.{key}: expected a table's name, or NAME@Rx with R a batch-size ratio "
                "> 0 (e.g. 'Titan-X-Pascal@0.5x')"
            )
        return cls(name, ratio)

    @property
    def key(self) -> str:
        """The ``[tables]`` key (:meth:`parse`'s inverse)."""
        return self.table if self.ratio == 1 else f"{self.table}@{self.ratio:.12g}x"

    def describe(self) -> str:
        """How a note names it: ``Titan-X-Pascal at 0.5x the batch size``."""
        if self.ratio == 1:
            return self.table
        return f"{self.table} at {self.ratio:.3g}x the batch size"

    def seconds(
        self,
        table: OperatorTable,
        keys: np.ndarray,
        batch_size: int,
        own: Callable[[float], np.ndarray],
    ) -> np.ndarray:
        """Seconds of each row of ``keys`` priced at ``batch_size``: ``table``'s at ``ratio x
        batch_size`` where it has the operator at that (whole) batch size, else ``own(batch)``
        (every row on the table's device by its own model at that batch size)."""
        batch = batch_size * self.ratio
        whole = round(batch)
        if abs(batch - whole) > 1e-9 * batch or whole < 1:  # the key's 12 digits: 1/3 reads 1
            return own(batch)
        return table.seconds_or(keys, whole, lambda: own(whole))


def mix_sources(tables: Mapping[str, float]) -> list[tuple[MixSource, float]]:
    """A calibration's ``[tables]`` as (source, weight) pairs."""
    return [(MixSource.parse(k), w) for k, w in tables.items()]


#: the largest ratio of batch sizes a fit reads a bigger section of a table at: a GPU up to
#: this much narrower than a table's (its streaming multiprocessors: the GTX 1080 Ti's 28
#: against the Titan RTX's 72 and the H100's 132) runs a batch as that one runs up to 4x the
#: batch (the same work per multiprocessor); a bigger section than that is another regime
#: (saturated against launch-bound) at the batch size priced
MAX_RATIO = 4.0


def mix_candidates(sections: Mapping[str, Sequence[int]], batches: np.ndarray) -> list[str]:
    """The ``[tables]`` keys a few-shot fit tries for measurements at ``batches``, given each
    table's measured batch sizes (``sections``): every table at the batch size priced; where
    every measurement is at one batch size ``b`` (a device measured where it is deployed),
    also a table's other sections ``b'`` at ratio ``b' / b`` (:class:`MixSource`): a smaller
    one at any ratio (a wider GPU runs batch ``b`` as a narrower one runs ``b' < b``; and a
    batch-1 section holds each kernel's fixed cost, its launch and dispatch and the algorithm
    picked for its shape, which every batch size pays), a bigger one up to :data:`MAX_RATIO`.
    With several batch sizes measured, one ratio would read other sections for each, so only
    the batch size priced is tried. (Chosen on HELP's GPUs, ``benchmarks/device_families.py``:
    every ratio, FBNet at batch 1 ranked 0.006 lower on the GTX 1080 Ti; bigger sections
    only within 4x, the Titan RTX's FBNet at batch 32 lost the GTX 1080 Ti's batch-1 section,
    0.976 -> 0.968.)"""
    sizes = sorted(set(np.asarray(batches).tolist()))
    out = []
    for name, have in sections.items():
        out.append(MixSource(name).key)
        if len(sizes) == 1:
            b = sizes[0]
            near = [s for s in sorted(have) if s != b and s / b <= MAX_RATIO]
            out += [MixSource(name, s / b).key for s in near]
    return out


def check_mix(name: str, tables: Mapping[str, float], roofline_weight: float) -> None:
    """A calibration's mix (``tables``: :class:`MixSource` key -> weight, and its model's
    weight) is valid: keys that parse, finite weights >= 0, and the model's weight 1 where
    nothing is mixed."""
    for key in tables:
        try:
            MixSource.parse(key)
        except ValueError as exc:
            raise ValueError(f"calibration {name!r}: {exc}") from None
    weights = {f"tables.{s}": w for s, w in tables.items()}
    for where, w in {**weights, "roofline_weight": roofline_weight}.items():
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"calibration {name!r}: {where}: must be a weight >= 0, got {w}")
    if not tables and roofline_weight != 1:
        raise ValueError(
            f"calibration {name!r}: roofline_weight: must be 1 without [tables], got "
            f"{roofline_weight}"
        )


def mix_toml(tables: Mapping[str, float]) -> list[str]:
    """The ``[tables]`` section of a calibration's TOML (empty without a mix)."""
    if not tables:
        return []
    return ["\n[tables]", *(f'"{s}" = {w:.6g}' for s, w in tables.items())]


def mix_of(data: Mapping[str, Any], where: str) -> dict[str, float]:
    """The ``[tables]`` section of a calibration read from TOML: table -> weight."""
    return number_table(data, "tables", where, "device")


#: the least share of a mix's mean predicted latency a table must carry to be kept in it
#: (below it, its weight is the least-squares solver's rounding)
MIN_SHARE = 1e-3


#: reweighting steps of the mix's Cauchy fit (it settles in 3-6 on HELP's devices)
MIX_STEPS = 10


def mix_weights(on_tables: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Non-negative weights of columns (each a measured table's, or a model's, seconds for the
    same points) whose mix best predicts ``seconds`` in relative error, under the Cauchy loss
    (:mod:`dse.robust`: one slow measurement of ten does not set the weights):
    ``min sum_n log(1 + ((on_tables[n] @ w / seconds[n] - 1) / NOISE)^2)``, ``w >= 0``, by
    iteratively reweighted non-negative least squares from the least-squares weights."""
    from scipy.optimize import nnls

    a, one = on_tables / seconds[:, None], np.ones(len(seconds))
    w, _ = nnls(a, one)
    for _ in range(MIX_STEPS if w.any() else 0):
        s = np.sqrt(cauchy_weights((a @ w - 1) / NOISE))
        step, _ = nnls(a * s[:, None], s)
        if not step.any():
            break
        settled = np.allclose(step, w, rtol=1e-9, atol=0)
        w = step
        if settled:
            break
    if not w.any():  # no column helps: the one nearest in the mean, scaled
        j = int(np.argmin(np.abs(np.log(on_tables.mean(0) / seconds.mean()))))
        w[j] = seconds.mean() / on_tables[:, j].mean()
    return w


@dataclass(frozen=True)
class MixChoice:
    """The cross-validation that is the calibration's record (with a mix: the mix's, its losses
    including the model's own candidates) and each mixed table's weight (only those above 0)
    and the model's."""

    cv: CrossValidated
    tables: dict[str, float]
    model_weight: float = 1.0


def cross_validate_mix(
    cv: CrossValidated,
    kept: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
    fitted: np.ndarray,
    tables: Sequence[str],
    priced: np.ndarray,
    seconds: np.ndarray,
    cv_args: tuple,
) -> MixChoice:
    """The model ``cv`` kept (a family's own candidates, cross-validated) mixed with measured
    ``tables``, ``priced`` (points x tables: each table alone): non-negative weights of the
    tables and of the model itself (:func:`mix_weights`). ``kept(train)`` fits the kept
    candidate on ``train`` and returns ``predict(at) -> seconds`` (for the folds); ``fitted``:
    the seconds of every point under the kept candidate fitted on all of them (the
    calibration's own fit, which the mix's weights are read against); ``cv_args``: the rest of
    :func:`~dse.fidelity.cross_validate`'s arguments, so the mix is cross-validated on the same
    folds (fitted again in each), which gives its validation record.

    The mix nests the model alone (weight 1 on it, 0 on every table), so it is kept whenever a
    table earns a weight, not only where its cross-validated error is lower: with ten
    measurements, two held out per fold, that comparison is noise (on HELP's ten devices, 2
    spaces x 5 seeds, keeping the mix never ranked worse, and choosing by the comparison cost
    up to 0.04 Spearman on a seed)."""

    def columns(predict: Callable[[np.ndarray], np.ndarray], at: np.ndarray) -> np.ndarray:
        return np.column_stack([priced[at], predict(at)])

    def mixed(_: str, train: np.ndarray) -> np.ndarray:
        predict = kept(train)
        return columns(predict, ~train) @ _earned_weights(columns(predict, train), seconds[train])

    mix, model_weight = earned_mix(tables, priced, fitted, seconds)
    if not mix:  # no table earned a weight: the model alone
        return MixChoice(cv, {})
    own = cross_validate(["tables"], mixed, *cv_args)
    return MixChoice(replace(own, cv_loss={**cv.cv_loss, **own.cv_loss}), mix, model_weight)


def earned_mix(
    tables: Sequence[str], priced: np.ndarray, fitted: np.ndarray, seconds: np.ndarray
) -> tuple[dict[str, float], float]:
    """The mix of measured ``tables`` (``priced``: points x tables) and the model (``fitted``:
    its seconds for the same points) that best predicts ``seconds``: each table that earns a
    weight (:func:`_earned_weights`) and the model's weight (1 when none does)."""
    w = _earned_weights(np.column_stack([priced, fitted]), seconds)
    mix = {t: float(v) for t, v in zip(tables, w[:-1], strict=True) if v > 0}
    return mix, (float(w[-1]) if mix else 1.0)


def _earned_weights(columns: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """:func:`mix_weights` of ``columns`` (tables, then the model), with the tables that carry
    under :data:`MIN_SHARE` of the mean latency left out (weight 0) and the rest refitted."""
    w = mix_weights(columns, seconds)
    share = w * columns.mean(0) / seconds.mean()
    earned = [*np.flatnonzero(share[:-1] > MIN_SHARE).tolist(), columns.shape[1] - 1]
    if len(earned) < columns.shape[1]:
        w = np.zeros(len(w))
        w[earned] = mix_weights(columns[:, earned], seconds)
    return w


def mix_note(choice: MixChoice) -> str:
    """What a calibration's note says of its mix ("" without one)."""
    if not choice.tables:
        return ""
    weights = ", ".join(f"{s.describe()} {w:.3g}" for s, w in mix_sources(choice.tables))
    return (
        f", mixed with the measured tables of {weights} and the model at "
        f"{choice.model_weight:.3g} (cross-validated on the same folds)"
    )
