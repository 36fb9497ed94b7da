"""Fitting a CPU calibration to measured networks: the whole table from many measurements, or
a few scales of a prior from ten.

Both are maximum-a-posteriori fits in log space: the squared log ratio of predicted to measured
latency over ``NOISE**2`` (the few-shot fit: its Cauchy loss, :mod:`dse.robust`, so one slow
measurement of ten does not set the scales) plus a Gaussian pull of each free log-parameter
towards the prior's.

* :func:`fit_table` (a shipped calibration, thousands of measured cells): every class's
  overhead and efficiency and the memory efficiency are free, loosely held (``TABLE_SD``) at
  the data sheet so classes the data never exercise keep their sheet values.
* :func:`fit_few_shot` (a new device, ten cells): the prior is the nearest shipped calibration
  of the family; what a new CPU changes is mostly how fast its runtime dispatches, how well its
  SIMD units are used and its memory system, so three log-scales are freed first (all
  overheads, all efficiencies, the memory efficiency), then each class's time on its own
  (:data:`SCALE_GROUPS`), in nested candidates chosen by grouped cross-validation as the GPU's
  few-shot fit does, a richer one only where it wins by more than the folds' noise
  (:data:`WITHIN_SE`); the out-of-fold predictions are the validation. Given measured tables
  of other CPUs (:mod:`dse.simulators.cpu.tables`), the kept roofline is mixed with them,
  ``r x roofline + sum_s w_s table_s`` with non-negative weights, kept whenever a table earns
  a weight and cross-validated on the same folds (:func:`dse.measured_tables.
  cross_validate_mix`).
* :func:`fit_few_shot_from`: the same from each of several priors (``dse calibrate``: the
  nearest shipped calibration, then the data sheet); a later prior's fit is kept only where it
  cross-validates better by :data:`WITHIN_SE` standard errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import networkx as nx
import numpy as np
from scipy.optimize import least_squares

from dse.catalogs.cpus import CpuDevice
from dse.fidelity import cross_validate, once_per_fold
from dse.measured_tables import MixChoice, cross_validate_mix, mix_candidates, mix_note
from dse.robust import NOISE, cauchy_residuals
from dse.simulators.cpu.calibration import CPU_CLASSES, CpuCalibration
from dse.simulators.cpu.model import CpuCostModel

#: prior spread of a table fit's log-parameters: a factor of e^2 either way
TABLE_SD = 2.0
K = len(CPU_CLASSES)


def _directions() -> dict[str, np.ndarray]:
    """Each group of few-shot log-scales as the columns (one a scale) it adds to a fit vector
    (:func:`to_vector`: K log overheads, K log efficiencies, the log memory efficiency)."""
    eye, ones, none = np.eye(K), np.ones((K, 1)), np.zeros((K, 1))
    return {
        "overhead": np.vstack([ones, none, [[0]]]),  # every overhead, one factor
        "compute": np.vstack([none, ones, [[0]]]),  # every efficiency, one factor
        "memory": np.vstack([none, none, [[1]]]),
        "classes": np.vstack([eye, -eye, np.zeros((1, K))]),  # each class's time, its own
    }


#: the few-shot fit's groups of free log-scales: name -> direction in the fit vector
SCALE_GROUPS = _directions()
#: prior spread of each group's log-scales. ``overhead``, ``compute`` and ``memory`` multiply
#: every class's overhead, every class's efficiency and the memory efficiency (a factor of e
#: either way a priori); ``classes`` gives each class's whole time (its overhead, and its
#: compute time through its efficiency) its own factor, held closer (e^0.5 = 1.65 either way):
#: a runtime's kernels for one class (the Pixel 3's TFLite convolution: 35x the per-call cost
#: of the Essential Phone's) need not be as fast, against the others, as on the prior's device
SCALE_SD = {"overhead": 1.0, "compute": 1.0, "memory": 1.0, "classes": 0.5}
#: nested few-shot candidates, simplest first: name -> the groups of scales it frees
CANDIDATES = {
    "overhead": ("overhead",),
    "compute": ("overhead", "compute"),
    "memory": ("overhead", "compute", "memory"),
    "classes": ("overhead", "compute", "memory", "classes"),
}
#: a richer candidate is kept only where it wins the cross-validation by more than this many
#: standard errors of the folds (the one-standard-error rule, :func:`dse.fidelity.
#: cross_validate`): two held-out cells a fold are noisy, and a scale the ten cells do not
#: need moves the classes they hardly run (on HELP's devices: a Xeon calibrated on
#: NAS-Bench-201 ranks FBNet 0.01-0.015 better for it, the Samsung A50's worst seed 0.929 ->
#: 0.948; the GPU's few-shot fit keeps the best, where the rule costs batch-256 ranking)
WITHIN_SE = 1.0


def to_vector(cal: CpuCalibration, device: CpuDevice) -> np.ndarray:
    """log [overhead_us per class, efficiency per class, memory efficiency]."""
    over, eta, eta_m = cal.arrays(device)
    return np.log(np.concatenate([np.maximum(over * 1e6, 1e-3), eta, [eta_m]]))


def to_calibration(x: np.ndarray, name: str, device: str, note: str = "") -> CpuCalibration:
    """A fit vector as a calibration (efficiencies capped at 1)."""
    e = np.exp(x)
    return CpuCalibration(
        name,
        {c: float(e[i]) for i, c in enumerate(CPU_CLASSES)},
        {c: float(min(1.0, e[K + i])) for i, c in enumerate(CPU_CLASSES)},
        float(min(1.0, e[2 * K])),
        device,
        note,
    )


class CpuDesign:
    """Measured (architecture, batch size) points of one CPU, ready for fast prediction: op-row
    counts per graph and row features per batch size."""

    def __init__(self, model: CpuCostModel, graphs: Sequence[nx.DiGraph], batches: Sequence[int]):
        self.model = model
        self.counts = model.counts(graphs).astype(float)
        self.rows = {int(b): model.features(int(b)) for b in sorted(set(batches))}

    def predict(self, x: np.ndarray, arch: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """Seconds of each (arch index, batch size) point under fit vector ``x``."""
        return self.priced(to_calibration(x, "fit", self.model.device.name), arch, batch)

    def priced(self, cal: CpuCalibration, arch: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """Seconds of each (arch index, batch size) point under calibration ``cal``."""
        out = np.empty(len(arch))
        for b, rows in self.rows.items():
            at = batch == b
            if at.any():
                out[at] = self.counts[arch[at]] @ self.model.row_seconds(rows, cal)
        return out

    def on_tables(self, tables: Sequence[str], arch: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """(points x tables): seconds of each (arch index, batch size) point priced by each
        measured table alone (weight 1), as this device's runtime runs it."""
        device = self.model.device.name
        return np.stack(
            [self.priced(CpuCalibration(device=device, tables={t: 1.0}, roofline_weight=0.0),
                         arch, batch)
             for t in tables],
            axis=1,
        )  # fmt: skip


def _map(design, arch, batch, seconds, x0, free, sd, expand, robust=False) -> np.ndarray:
    """MAP estimate of ``z`` (the free coordinates) with ``x = expand(z)``; ``robust``: the
    measurements' log residuals under the Cauchy loss (:mod:`dse.robust`), not squared."""
    log_y = np.log(seconds)
    noise = cauchy_residuals if robust else (lambda r: r)

    def residuals(z):
        pred = design.predict(expand(z), arch, batch)
        return np.concatenate([noise((np.log(pred) - log_y) / NOISE), (z - x0[free]) / sd])

    return least_squares(residuals, x0[free], method="trf", x_scale=1.0).x


def fit_table(
    design: CpuDesign,
    arch,
    batch,
    seconds,
    name: str,
    note: str = "",
) -> CpuCalibration:
    """Every parameter of the table from many measurements (see the module docstring)."""
    device = design.model.device
    x0 = to_vector(CpuCalibration(device=device.name), device)
    free = np.arange(len(x0))
    z = _map(
        design,
        np.asarray(arch),
        np.asarray(batch),
        np.asarray(seconds, float),
        x0,
        free,
        np.full(len(x0), TABLE_SD),
        lambda z: z,
    )
    return to_calibration(z, name, device.name, note)


def _scaled(x0: np.ndarray, groups: Sequence[str]):
    """``expand(z)``: the fit vector of free log-scales ``z`` of ``groups``
    (:data:`SCALE_GROUPS`, in order), and each scale's prior spread."""
    d = np.hstack([SCALE_GROUPS[g] for g in groups])
    sd = np.concatenate([np.full(SCALE_GROUPS[g].shape[1], SCALE_SD[g]) for g in groups])
    return (lambda z: x0 + d @ z), sd


@dataclass(frozen=True)
class CpuFewShot:
    """The kept calibration, its candidate, every candidate's cross-validated mean squared log
    error and the out-of-fold predictions (seconds)."""

    calibration: CpuCalibration
    candidate: str
    cv_loss: dict[str, float]
    out_of_fold: np.ndarray
    #: the name of the prior it started from
    prior: str = ""
    #: the standard error of the kept candidate's (or mix's) cross-validated error
    standard_error: float = float("nan")
    #: with several priors tried (:func:`fit_few_shot_from`): each one's cross-validated mean
    #: squared log error (its kept candidate's or mix's)
    prior_loss: dict[str, float] = field(default_factory=dict)


def fit_few_shot(
    design: CpuDesign,
    arch,
    batch,
    seconds,
    prior: CpuCalibration,
    name: str,
    data: str,
    folds: int = 5,
    seed: int = 0,
    covers: Sequence[str] = (),
    tables: Sequence[str] = (),
) -> CpuFewShot:
    """Calibrate a CPU from a few measured networks, starting from ``prior``; with ``tables``
    (shipped measured tables, :mod:`dse.simulators.cpu.tables`), the kept candidate mixed with
    them (``"tables"``, see the module docstring)."""
    arch, batch = np.asarray(arch, np.int64), np.asarray(batch, np.int64)
    seconds = np.asarray(seconds, dtype=float)
    if not (len(arch) == len(batch) == len(seconds)) or not len(arch):
        raise ValueError("measurements: need equal, non-empty arch, batch and seconds arrays")
    if np.any(~np.isfinite(seconds)) or np.any(seconds <= 0):
        raise ValueError("latency_ms: every measured latency must be a positive number")
    device = design.model.device
    x0 = to_vector(prior, device)

    @once_per_fold  # the mix's folds refit the kept candidate
    def fit(cand: str, train: np.ndarray) -> np.ndarray:
        """Candidate ``cand`` fitted on the points ``train``."""
        expand, sd = _scaled(x0, CANDIDATES[cand])
        zero = np.zeros(len(sd))
        free = list(range(len(sd)))
        a, b, y = arch[train], batch[train], seconds[train]
        return expand(_map(design, a, b, y, zero, free, sd, expand, True))

    def scales(cand: str, train: np.ndarray) -> np.ndarray:
        return design.predict(fit(cand, train), arch[~train], batch[~train])

    args = (arch, batch, seconds, data, folds, seed, covers)
    cv = cross_validate(list(CANDIDATES), scales, *args, within_se=WITHIN_SE)
    best = cv.candidate
    x = fit(best, np.ones(len(arch), bool))
    choice = MixChoice(cv, {})
    if tables:  # the kept roofline mixed with the measured tables, on the same folds

        def kept_fit(train: np.ndarray):
            x = fit(best, train)
            return lambda at: design.predict(x, arch[at], batch[at])

        sections = {t: design.model.source(t)[0].batch_sizes for t in tables}
        sources = mix_candidates(sections, batch)
        priced, fitted = design.on_tables(sources, arch, batch), design.predict(x, arch, batch)
        choice = cross_validate_mix(cv, kept_fit, fitted, sources, priced, seconds, args)
    cv = choice.cv
    note = (
        f"Few-shot calibration of {device.name} from {cv.validation.fitted_on} measured "
        f"architectures ({len(seconds)} measurements; {data}), prior {prior.name!r}; free "
        f"scales: {best} (chosen by {cv.folds}-fold cross-validation among "
        f"{list(CANDIDATES)}: the simplest within {WITHIN_SE:g} standard error of the "
        f"best){mix_note(choice)}."
    )
    cal = to_calibration(x, name, device.name, note)
    mix = dict(tables=choice.tables, roofline_weight=choice.model_weight)
    cal = replace(cal, validation=cv.validation, **mix)
    return CpuFewShot(cal, cv.candidate, cv.cv_loss, cv.out_of_fold, prior.name, cv.standard_error)


def fit_few_shot_from(
    priors: Sequence[CpuCalibration], fit: Callable[[CpuCalibration], CpuFewShot]
) -> CpuFewShot:
    """``fit(prior)`` (:func:`fit_few_shot` of the same measurements, folds and tables) from each
    of ``priors``, the first the default: a later prior's fit replaces the kept one only where
    it cross-validates better by more than :data:`WITHIN_SE` standard errors of the kept one's
    error (the rule the nested candidates follow). Its note names the priors tried and their
    errors. ``dse calibrate --prior auto`` tries the nearest shipped calibration, then the data
    sheet (:func:`dse.commands.calibrate.auto_cpu_priors`)."""
    if not priors:
        raise ValueError("priors: need at least one prior calibration")
    fits = [fit(p) for p in priors]
    if len(fits) == 1:
        return fits[0]
    losses = [f.cv_loss[f.candidate] for f in fits]
    best = 0
    for i in range(1, len(fits)):
        if losses[i] < losses[best] - WITHIN_SE * fits[best].standard_error:
            best = i
    tried = ", ".join(f"{p.name!r} ({loss:.4f})" for p, loss in zip(priors, losses, strict=True))
    note = (
        f"{fits[best].calibration.note} Prior kept by the same cross-validation (mean squared "
        f"log error; a later one must win by {WITHIN_SE:g} standard error) among {tried}."
    )
    loss = {p.name: v for p, v in zip(priors, losses, strict=True)}
    kept = fits[best]
    return replace(kept, calibration=replace(kept.calibration, note=note), prior_loss=loss)
