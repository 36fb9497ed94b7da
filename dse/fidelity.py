"""How wrong a simulated number is known to be: validation records that travel with the figures.

A simulator's metric is only as good as the measurements behind its calibration. A
:class:`Validation` says which data checked a calibration, how (cells held out of the fit, or
k-fold cross-validation on a user's own measurements) and the error it found per condition
(one :class:`ErrorStats` per batch size, say): Spearman rho and the median and 90th-percentile
relative error ``|predicted / measured - 1|``. A provider that can say how far each of its
metrics is from measurement has a ``fidelity()`` method returning a :class:`Fidelity` per
metric; the runner writes them into the manifest, and ``dse show``, ``dse report`` and
``dse list`` print :meth:`Fidelity.line` beside the figures. A metric nothing backs says so
("uncalibrated: data sheet only") instead of looking as good as a measured one.

The helpers :func:`error_stats` and :func:`grouped_folds` are the one way every calibration
(GPU, FPGA, shipped or a user's) computes its error, so the figures compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class ErrorStats:
    """Prediction error on ``n`` measurements of one condition (e.g. ``"batch 1"``).

    ``median`` and ``p90``: the median and 90th percentile of ``|predicted / measured - 1|``
    (fractions, 0.1 = 10%); ``spearman``: rank correlation of predicted and measured (NaN with
    fewer than three points or no spread)."""

    condition: str
    n: int
    spearman: float
    median: float
    p90: float

    @classmethod
    def of(cls, condition: str, predicted, measured) -> ErrorStats:
        p, y = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
        if p.shape != y.shape or p.size == 0:
            raise ValueError(f"{condition}: need equal, non-empty predicted and measured arrays")
        rel = np.abs(p / y - 1.0)
        from scipy.stats import spearmanr  # here: importing scipy.stats costs 0.45 s of start-up

        rho = float(spearmanr(p, y)[0]) if p.size >= 3 and np.ptp(p) > 0 else float("nan")
        return cls(condition, int(p.size), rho, float(np.median(rel)), float(np.quantile(rel, 0.9)))

    def describe(self) -> str:
        """``median error 9.8%, 90th pct 14.5%``"""
        return f"median error {self.median:.1%}, 90th pct {self.p90:.1%}"

    def detail(self) -> str:
        """``batch 1, 14,263 points, Spearman 0.975``"""
        rho = "" if np.isnan(self.spearman) else f", Spearman {self.spearman:.3f}"
        return f"{self.condition}, {self.n:,} points{rho}"


@dataclass(frozen=True)
class Validation:
    """How a calibration was checked: ``data`` (what was measured), ``method`` (``"held-out"``:
    cells the fit never saw; ``"k-fold"``: out-of-fold predictions of the same fitting
    procedure), ``held_out`` (which cells, in words) and the error per condition."""

    data: str
    method: str
    held_out: str
    errors: tuple[ErrorStats, ...]
    fitted_on: int = 0  # measurements (architectures) the shipped fit used
    #: what the validation covers: the spaces whose networks were measured (``nasbench201``),
    #: or a workload kind (``llm``: a decoder's operators); empty: not recorded (older files)
    covers: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in ("held-out", "k-fold"):
            raise ValueError(
                f"validation.method: {self.method!r} is not allowed; allowed values: "
                "'held-out', 'k-fold'"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = [asdict(e) for e in self.errors]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "validation") -> Validation:
        allowed = {"data", "method", "held_out", "errors", "fitted_on", "covers"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown field; allowed: {sorted(allowed)}")
        fields_ = {"condition", "n", "spearman", "median", "p90"}
        errors = []
        for i, e in enumerate(data.get("errors", [])):
            if set(e) != fields_:
                raise ValueError(
                    f"{where}.errors[{i}]: expected the fields {sorted(fields_)}, got {sorted(e)}"
                )
            errors.append(
                ErrorStats(
                    str(e["condition"]),
                    int(e["n"]),
                    float(e["spearman"]),
                    float(e["median"]),
                    float(e["p90"]),
                )
            )
        return cls(
            str(data.get("data", "")),
            str(data.get("method", "held-out")),
            str(data.get("held_out", "")),
            tuple(errors),
            int(data.get("fitted_on", 0)),
            tuple(str(c) for c in data.get("covers", ())),
        )

    def to_toml(self, table: str = "validation") -> str:
        """The ``[validation]`` table of a calibration file (TOML)."""

        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        out = [
            f"[{table}]",
            f"data = {q(self.data)}",
            f"method = {q(self.method)}",
            f"held_out = {q(self.held_out)}",
            f"fitted_on = {self.fitted_on}",
            f"covers = [{', '.join(q(c) for c in self.covers)}]",
        ]
        for e in self.errors:
            out += [
                "",
                f"[[{table}.errors]]",
                f"condition = {q(e.condition)}",
                f"n = {e.n}",
                f"spearman = {'nan' if np.isnan(e.spearman) else f'{e.spearman:.6g}'}",
                f"median = {e.median:.6g}",
                f"p90 = {e.p90:.6g}",
            ]
        return "\n".join(out) + "\n"

    def for_condition(self, condition: str) -> tuple[ErrorStats, ...]:
        """The error of ``condition`` if it was validated, else every condition's."""
        exact = tuple(e for e in self.errors if e.condition == condition)
        return exact or self.errors


#: what a metric without any calibration or validation behind it says
UNCALIBRATED = "uncalibrated: data sheet only"


@dataclass(frozen=True)
class Fidelity:
    """The expected error of one simulated metric under the configuration that produced it.

    ``calibration``: the calibration's name (``""``: none); ``errors``: the validation's error
    for the run's condition (several when the condition was not validated); ``note``: what
    backs the number when no error is known (e.g. :data:`UNCALIBRATED`)."""

    calibration: str = ""
    data: str = ""
    method: str = ""
    errors: tuple[ErrorStats, ...] = ()
    note: str = UNCALIBRATED
    derived_from: str = ""  # another metric whose error this one carries (throughput: latency)
    condition: str = ""  # the run's condition (e.g. "batch 8"), when it was not validated
    #: the validation's coverage (:attr:`Validation.covers`)
    covers: tuple[str, ...] = ()

    def within(self, scope: str) -> Fidelity:
        """This fidelity for networks of ``scope`` (a space's name): itself where the
        validation covers it (or records no coverage), else a note that the error was never
        measured on such networks (an A100 calibration validated on Llama operators says
        nothing of a CNN)."""
        scoped = tuple(e for e in self.errors if e.condition.startswith(f"{scope}, "))
        if scoped:  # a validation of several spaces: this space's errors only
            exact = tuple(e for e in scoped if e.condition == f"{scope}, {self.condition}")
            if exact or not self.condition:
                return replace(self, errors=exact or scoped, condition="")
            return replace(self, errors=scoped)
        if not self.covers or scope in self.covers:
            return self
        return replace(
            self,
            errors=(),
            note=f"not validated for this network's ops: the error was measured on "
            f"{', '.join(self.covers)} ({self.data}), not on {scope}",
        )

    @classmethod
    def validated(
        cls, calibration: str, validation: Validation, condition: str, derived_from: str = ""
    ) -> Fidelity:
        errors = validation.for_condition(condition)
        exact = len(errors) == 1 and errors[0].condition == condition
        return cls(
            calibration,
            validation.data,
            validation.method,
            errors,
            "",
            derived_from,
            "" if exact or not condition else condition,
            validation.covers,
        )

    @classmethod
    def of_calibration(
        cls, calibration: str, validation: Validation | None, condition: str
    ) -> Fidelity:
        """A calibration's fidelity at ``condition``: its validation's error, or a note that it
        was never validated."""
        if validation is None:
            return cls(calibration, note="calibrated, not validated against held-out data")
        return cls.validated(calibration, validation, condition)

    @property
    def known(self) -> bool:
        return bool(self.errors)

    def line(self, metric: str) -> str:
        """One line a user reads beside the figures, e.g. ``gpu_latency_ms: median error 9.8%,
        90th pct 21%, Titan-RTX calibration, NAS-Bench-201 held-out cells (batch 1, ...)``."""
        via = f" (from {self.derived_from})" if self.derived_from else ""
        if not self.errors:
            cal = f" ({self.calibration} calibration)" if self.calibration else ""
            return f"{metric}: {self.note}{cal}{via}"
        if len(self.errors) == 1:
            err, detail = self.errors[0].describe(), self.errors[0].detail()
            if self.condition:  # measured at another condition than the figure's
                detail = f"validated at {detail} only, not {self.condition}"
        else:
            med = [e.median for e in self.errors]
            p90 = [e.p90 for e in self.errors]
            err = (
                f"median error {min(med):.1%}-{max(med):.1%}, 90th pct {min(p90):.1%}-"
                f"{max(p90):.1%}"
            )
            detail = f"at {', '.join(e.condition for e in self.errors)}"
            if self.condition:
                detail = f"validated {detail} only, not {self.condition}"
        how = "held-out cells" if self.method == "held-out" else "cross-validated"
        return (
            f"{metric}: {err}, {self.calibration} calibration, {self.data}, {how} ({detail}){via}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = [asdict(e) for e in self.errors]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fidelity:
        errors = tuple(ErrorStats(**e) for e in data.get("errors", []))
        return cls(**{**data, "errors": errors, "covers": tuple(data.get("covers", ()))})


def shipped_fidelity(
    names: Sequence[str], load: Callable[[str], Any], condition: str = ""
) -> dict[str, Fidelity]:
    """Each shipped calibration (``load(name)``: anything with ``name`` and ``validation``)
    with its validated error at ``condition``: what a simulator's ``calibrations()`` lists."""
    out = {}
    for name in names:
        cal = load(name)
        out[name] = Fidelity.of_calibration(cal.name, cal.validation, condition)
    return out


def fidelity_lines(fidelity: Mapping[str, Any], metrics: Sequence[str] | None = None) -> list[str]:
    """Lines for a manifest's ``fidelity`` table (metric -> list of Fidelity dicts, one per
    distinct configuration of a sweep), restricted to ``metrics`` when given."""
    out = []
    for metric, entries in fidelity.items():
        if metrics is not None and metric not in metrics:
            continue
        for entry in entries:
            out.append(Fidelity.from_dict(entry).line(metric))
    return out


def short_error(entries: Sequence[Mapping[str, Any]]) -> str:
    """A few words for a hover: ``median error 9.8%`` (a range over several configurations or
    conditions), or the first words of the note (``uncalibrated``)."""
    fids = [Fidelity.from_dict(e) for e in entries]
    med = [e.median for f in fids for e in f.errors]
    if med and all(f.known for f in fids):
        lo, hi = min(med), max(med)
        return f"median error {lo:.1%}" + (f"-{hi:.1%}" if hi > lo else "")
    notes = sorted({f.note.split(":")[0].split(",")[0] for f in fids if not f.known})
    return "; ".join(notes)


def merged_fidelity(manifests: Sequence[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """Each metric's distinct fidelity entries over several runs' manifests."""
    out: dict[str, list[dict]] = {}
    for m in manifests:
        for metric, entries in m.get("fidelity", {}).items():
            seen = out.setdefault(metric, [])
            seen.extend(e for e in entries if e not in seen)
    return out


def grouped_folds(n_groups: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test-group indices of ``folds``-fold cross-validation over ``n_groups`` architectures
    (leave-one-out when ``folds >= n_groups``); seeded, so the same data give the same folds.
    Every measurement of one architecture (all its batch sizes) stays in one fold."""
    if n_groups < 2:
        raise ValueError(f"cross-validation needs at least 2 architectures, got {n_groups}")
    k = min(folds, n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    return [np.sort(part) for part in np.array_split(order, k)]


@dataclass(frozen=True)
class CrossValidated:
    """The candidate cross-validation kept, every candidate's mean squared log error, the kept
    one's out-of-fold predictions and its :class:`Validation`; ``standard_error``: of the kept
    one's error, from its per-fold errors (NaN with one fold)."""

    candidate: str
    cv_loss: dict[str, float]
    out_of_fold: np.ndarray
    validation: Validation
    folds: int
    standard_error: float = float("nan")


def cross_validate(
    candidates: Sequence[str],
    predict_held_out: Callable[[str, np.ndarray], np.ndarray],
    arch: np.ndarray,
    batch: np.ndarray,
    seconds: np.ndarray,
    data: str,
    folds: int = 5,
    seed: int = 0,
    covers: Sequence[str] = (),
    within_se: float = 0.0,
) -> CrossValidated:
    """Grouped k-fold cross-validation of nested calibration candidates (simplest first):
    ``predict_held_out(candidate, train)`` fits on the measurements where ``train`` is true and
    predicts the others (seconds). The candidate with the lowest mean squared log error is kept
    (ties: the simpler); with ``within_se`` > 0, the simplest whose error is within
    ``within_se`` standard errors of that lowest one (the standard error of the lowest's
    per-fold errors; 1 is the one-standard-error rule, Hastie, Tibshirani and Friedman, *The
    Elements of Statistical Learning*, sec. 7.10: a richer candidate must win by more than the
    folds' noise). Its out-of-fold errors per batch size are the calibration's validation
    (slightly optimistic: they also chose it). Every device family's few-shot fit uses this."""
    groups, group_of = np.unique(arch, return_inverse=True)
    test_sets = grouped_folds(len(groups), folds, seed)
    log_y = np.log(seconds)
    cv_loss: dict[str, float] = {}
    oof: dict[str, np.ndarray] = {}
    fold_loss: dict[str, list[float]] = {}
    for cand in candidates:
        pred = np.empty(len(seconds))
        fold_loss[cand] = []
        for test_groups in test_sets:
            test = np.isin(group_of, test_groups)
            pred[test] = predict_held_out(cand, ~test)
            fold_loss[cand].append(float(np.mean((np.log(pred[test]) - log_y[test]) ** 2)))
        oof[cand], cv_loss[cand] = pred, float(np.mean((np.log(pred) - log_y) ** 2))

    def standard_error(cand: str) -> float:
        k = len(test_sets)
        return float(np.std(fold_loss[cand], ddof=1) / np.sqrt(k)) if k > 1 else float("nan")

    best = min(candidates, key=lambda c: (cv_loss[c], list(candidates).index(c)))
    if within_se > 0 and len(test_sets) > 1:
        margin = within_se * standard_error(best)
        best = next(c for c in candidates if cv_loss[c] <= cv_loss[best] + margin)
    validation = Validation(
        data=data,
        method="k-fold",
        held_out=f"{len(test_sets)}-fold cross-validation over {len(groups)} architectures",
        errors=tuple(
            ErrorStats.of(f"batch {b}", oof[best][batch == b], seconds[batch == b])
            for b in np.unique(batch)
        ),
        fitted_on=len(groups),
        covers=tuple(covers),
    )
    return CrossValidated(
        best, cv_loss, oof[best], validation, len(test_sets), standard_error(best)
    )


def once_per_fold(fit: Callable[[str, np.ndarray], T]) -> Callable[[str, np.ndarray], T]:
    """``fit(candidate, train)``, computed once per candidate and training mask: a few-shot fit
    cross-validates its candidates, then its kept candidate again on the same folds (for a mix
    of measured tables, for factors on top), and reuses the folds' fits."""
    done: dict[tuple[str, bytes], T] = {}

    def cached(candidate: str, train: np.ndarray) -> T:
        key = (candidate, np.asarray(train).tobytes())
        if key not in done:
            done[key] = fit(candidate, train)
        return done[key]

    return cached


def fit_scale_and_overhead(simulated, n_layers, measured) -> tuple[float, float]:
    """(scale, per-layer time after scaling) of ``measured = scale x simulated + per_layer x
    n_layers``, minimising the squared relative error (linear: weighted least squares)."""
    a = np.stack([np.asarray(simulated, float), np.asarray(n_layers, float)], 1)
    y = np.asarray(measured, dtype=float)
    coef, *_ = np.linalg.lstsq(a / y[:, None], np.ones_like(y), rcond=None)
    scale, per_layer = float(coef[0]), float(max(coef[1], 0.0))
    if not scale > 0:
        raise ValueError("measured latencies: the fitted scale is not positive (check the units)")
    return scale, per_layer


def validated_scale_and_overhead(
    simulated,
    n_layers,
    measured,
    condition: str | Sequence[str],
    data: str,
    folds: int,
    seed: int,
    covers,
    groups=None,
) -> tuple[float, float, Validation]:
    """:func:`fit_scale_and_overhead` on every measured point, and its grouped k-fold validation:
    what FPGA and ASIC calibrations are. ``condition``: one label for every point (``"one
    frame"``), or one per point (an ASIC measured at several batch sizes: ``"batch 4"``), each
    with its own error record; ``groups``: the architecture of each point (default: one point
    each), whose points are held out together."""
    sim, layers, y = (np.asarray(a, dtype=float) for a in (simulated, n_layers, measured))
    owner = np.arange(len(y)) if groups is None else np.unique(groups, return_inverse=True)[1]
    if not (len(sim) == len(layers) == len(y) == len(owner)) or owner.max(initial=-1) < 2:
        raise ValueError("measurements: need at least 3 measured architectures")
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("latency_ms: every measured latency must be a positive number")
    labels = np.full(len(y), condition) if isinstance(condition, str) else np.asarray(condition)
    pred = np.empty(len(y))
    n_arch = int(owner.max()) + 1
    test_sets = grouped_folds(n_arch, folds, seed)
    for test_groups in test_sets:
        test = np.isin(owner, test_groups)
        s, c = fit_scale_and_overhead(sim[~test], layers[~test], y[~test])
        pred[test] = s * sim[test] + c * layers[test]
    scale, per_layer = fit_scale_and_overhead(sim, layers, y)
    order = sorted(set(labels.tolist()), key=lambda c: (len(c), c))  # batch 1, 2, ..., 16
    validation = Validation(
        data=data,
        method="k-fold",
        held_out=f"{len(test_sets)}-fold cross-validation over {n_arch} architectures",
        errors=tuple(ErrorStats.of(c, pred[labels == c], y[labels == c]) for c in order),
        fitted_on=n_arch,
        covers=tuple(covers),
    )
    return scale, per_layer, validation
