"""Few-shot calibration of a new GPU: a handful of measured networks, a shipped prior.

A user with a new device measures ten networks, not a thousand. What does not transfer between
devices is mostly the host: eager PyTorch's per-kernel launch and dispatch cost (27 us on the
Titan RTX host of HW-NAS-Bench, 41 us on its GTX 1080 Ti host), which dominates batch-1
latency. So the fit starts from the nearest shipped calibration (the *prior*) and frees, in
order, only what the measurements can support:

1. ``overhead``: the per-kernel overhead alone (the efficiencies stay the prior's);
2. ``efficiency``: plus the shared compute and memory efficiencies;
3. ``pool``: plus the memory efficiency of pooling kernels (cuDNN pooling runs far below
   bandwidth on some devices).

Each candidate is a maximum-a-posteriori fit in log space: the squared log ratio of predicted
to measured seconds over ``NOISE**2`` plus a Gaussian pull of each free parameter towards the
prior's value (``PRIOR_SD``, natural-log units); the others are held at the prior. The
candidate kept is the one with the lowest grouped cross-validation error (all batch sizes of an
architecture in one fold), and the same out-of-fold predictions are the calibration's
:class:`~dse.fidelity.Validation` (they are slightly optimistic, since they also chose the
candidate). Prediction goes through :class:`GpuCostModel`, the simulator's own cost path.

With measured tables of other GPUs, the kept candidate is then mixed with them
(:func:`dse.measured_tables.cross_validate_mix`); last, one factor per kernel class and
roofline regime on top of that (``regimes``, :mod:`dse.simulators.gpu.regimes`), kept only
where it cross-validates better by more than :data:`WITHIN_SE` standard errors on the same
folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import networkx as nx
import numpy as np
from scipy.optimize import minimize

from dse.catalogs.devices import Device
from dse.fidelity import cross_validate, once_per_fold
from dse.measured_tables import (
    MixChoice,
    cross_validate_mix,
    earned_mix,
    mix_candidates,
    mix_note,
)
from dse.robust import NOISE
from dse.simulators.gpu.calibration import graph_counts
from dse.simulators.gpu.kernels import GraphCoster
from dse.simulators.gpu.model import GpuCostModel
from dse.simulators.gpu.regimes import (
    describe,
    fit_regime_factors,
    regime_columns,
    regime_scales,
)
from dse.simulators.gpu.roofline import Calibration, Efficiency

#: prior standard deviation of each parameter in natural-log units: the host overhead within a
#: factor of e, each efficiency within a factor of about 4.5. The efficiencies are loose because
#: GPUs differ that much: fitted on 1,000 NAS-Bench-201 cells at batch 256 alone, the Titan
#: RTX's convolutions reach 0.19 of peak, the GTX 1080 Ti's 1.0 and the Titan X's 0.61, and the
#: 1080 Ti's pooling 0.18 of bandwidth (ln 5 = 1.6). Held within 1.6x (0.5), ten cells at batch
#: 256 moved the 1080 Ti prior's 1.0 only to about 0.83 on the Titan RTX, which then ranked its
#: other cells at 0.93 (worst of five draws 0.84; ``benchmarks/device_families.py``); 1.5 gives
#: 0.987; 2.0 gives 0.990 there but ranks ``benchmarks/few_shot_calibration.py``'s batch 256
#: worse (the Titan RTX from ten cells 0.961 against 1.5's 0.981)
PRIOR_SD = np.array([1.5, 1.5, 1.0, 1.5])
RESTARTS = 3
#: parameter order of the fit vector x (all natural logs)
PARAMETERS = ("log_eta_compute", "log_eta_memory", "log_overhead_us", "log_eta_memory_pool")
#: the nested candidates, simplest first: name -> indices of the free parameters
CANDIDATES = {"overhead": (2,), "efficiency": (0, 1, 2), "pool": (0, 1, 2, 3)}
#: the kept candidate (and mix) gains factors per class and roofline regime
#: (:mod:`dse.simulators.gpu.regimes`) only where they cross-validate better by more than this
#: many standard errors of its folds (the one-standard-error rule, as the CPU's fit). On HELP's
#: GPUs (``benchmarks/device_families.py``), keeping whichever is lower lets them in by noise
#: where they cost ranking (FBNet at batch 32 on the Titan RTX, 0.976 -> 0.970, worst seed
#: 0.949; NAS-Bench-201 at batch 1 on the Titan X, 0.981 -> 0.973); with the rule, no row
#: ranks lower by more than 0.001 and batch 256 keeps its gain
WITHIN_SE = 1.0


def prior_vector(prior: Calibration, device: Device) -> np.ndarray:
    """The prior calibration as a fit vector (see :data:`PARAMETERS`)."""
    d, pool = prior.default, prior.efficiency("pool")
    over = d.overhead_s if d.overhead_s is not None else device.launch_overhead_s
    return np.log([d.compute, d.memory, max(over * 1e6, 1e-3), pool.memory])


def to_calibration(x: np.ndarray, prior: Calibration, name: str, note: str = "") -> Calibration:
    """Fit vector -> Calibration: the prior's per-class tables kept, their overhead replaced by
    the fitted one, the default and pooling efficiencies set from ``x``."""
    eta_c, eta_m, pool = (float(min(1.0, np.exp(v))) for v in (x[0], x[1], x[3]))
    over = float(np.exp(x[2]) * 1e-6)
    classes = {c: replace(e, overhead_s=over) for c, e in prior.classes.items()}
    classes["pool"] = Efficiency(eta_c, pool, over)
    return Calibration(name, Efficiency(eta_c, eta_m, over), classes, note)


class MeasurementDesign:
    """Measured (architecture, batch size) points of one device, ready for fast prediction:
    kernel-table counts per graph, costed per batch size through :class:`GpuCostModel`."""

    def __init__(self, device: Device, graphs: Sequence[nx.DiGraph], batches: Sequence[int]):
        self.device = device
        self.coster = GraphCoster(GpuCostModel(device))
        self.counts = graph_counts(self.coster, graphs).astype(float)
        self.rows = {int(b): self.coster.row_costs(int(b)) for b in sorted(set(batches))}

    def predict(self, calibration: Calibration, arch: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """Seconds of each (arch index, batch size) point under ``calibration``."""
        model = GpuCostModel(self.device, calibration)
        out = np.empty(len(arch))
        for b in self.rows:
            at = batch == b
            if at.any():
                out[at] = self.counts[arch[at]] @ self.coster.mixed_seconds(model, b)
        return out

    def on_tables(self, tables: Sequence[str], arch: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """(points x tables): seconds of each (arch index, batch size) point priced by each
        measured table alone (weight 1; rows it lacks by its device's own model)."""
        return np.stack(
            [self.predict(Calibration(t, tables={t: 1.0}, roofline_weight=0.0), arch, batch)
             for t in tables],
            axis=1,
        )  # fmt: skip


def fit_map(
    design: MeasurementDesign,
    arch: np.ndarray,
    batch: np.ndarray,
    seconds: np.ndarray,
    prior: Calibration,
    free: Sequence[int],
) -> np.ndarray:
    """The maximum-a-posteriori fit vector with the parameters ``free`` fitted, the others at the
    prior (deterministic: Nelder-Mead from the prior)."""
    x0 = prior_vector(prior, design.device)
    free_idx = np.asarray(free)
    log_y = np.log(seconds)

    def vector(z):
        x = x0.copy()
        x[free_idx] = z
        return x

    def loss(z):
        cal = to_calibration(vector(z), prior, "fit")
        r = np.log(design.predict(cal, arch, batch)) - log_y
        pull = (z - x0[free_idx]) / PRIOR_SD[free_idx]
        return float(np.sum(r**2) / NOISE**2 + np.sum(pull**2))

    z = x0[free_idx]
    for _ in range(RESTARTS):  # a restart escapes Nelder-Mead's early collapse of the simplex
        z = minimize(
            loss, z, method="Nelder-Mead", options=dict(maxiter=2000, xatol=1e-5, fatol=1e-9)
        ).x
    return vector(z)


@dataclass(frozen=True)
class FewShotFit:
    """The kept calibration, which candidate it is, every candidate's cross-validated mean
    squared log error, and the out-of-fold predictions (seconds, one per measurement)."""

    calibration: Calibration
    candidate: str
    cv_loss: dict[str, float]
    out_of_fold: np.ndarray


def fit_few_shot(
    design: MeasurementDesign,
    arch: np.ndarray,
    batch: np.ndarray,
    seconds: np.ndarray,
    prior: Calibration,
    name: str,
    data: str,
    folds: int = 5,
    seed: int = 0,
    candidates: Sequence[str] = tuple(CANDIDATES),
    covers: Sequence[str] = (),
    tables: Sequence[str] = (),
    regimes: bool = True,
) -> FewShotFit:
    """Calibrate from measurements ``seconds`` of (``arch`` index into the design's graphs,
    ``batch`` size) points, starting from ``prior`` (see the module docstring); ``covers``:
    the spaces the measured architectures are of (what the validation covers). With
    ``tables`` (shipped measured kernel tables, :mod:`dse.simulators.gpu.tables`), the kept
    candidate mixed with them (``"tables"``: :func:`dse.measured_tables.cross_validate_mix`;
    measured at one batch size, with each of their sections at its batch-size ratio,
    :func:`dse.measured_tables.mix_candidates`)."""
    arch = np.asarray(arch, dtype=np.int64)
    batch = np.asarray(batch, dtype=np.int64)
    seconds = np.asarray(seconds, dtype=float)
    if not (len(arch) == len(batch) == len(seconds)) or not len(arch):
        raise ValueError("measurements: need equal, non-empty arch, batch and seconds arrays")
    if np.any(~np.isfinite(seconds)) or np.any(seconds <= 0):
        raise ValueError("latency_ms: every measured latency must be a positive number")
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise ValueError(f"candidates: {unknown} not allowed; allowed values: {list(CANDIDATES)}")

    @once_per_fold  # the mix's and the regime factors' folds refit the kept candidate
    def fit_on(cand: str, train: np.ndarray) -> np.ndarray:
        """``fit_map`` of candidate ``cand`` on the points ``train``."""
        a, b, y = arch[train], batch[train], seconds[train]
        return fit_map(design, a, b, y, prior, CANDIDATES[cand])

    def held_out(cand: str, train: np.ndarray) -> np.ndarray:
        x = fit_on(cand, train)
        return design.predict(to_calibration(x, prior, "fold"), arch[~train], batch[~train])

    args = (arch, batch, seconds, data, folds, seed, covers)
    cv = cross_validate(list(candidates), held_out, *args)
    best = cv.candidate
    x = fit_on(best, np.ones(len(arch), dtype=bool))
    choice = MixChoice(cv, {})
    if tables:

        def kept(train: np.ndarray):
            cal = to_calibration(fit_on(best, train), prior, "fold")
            return lambda at: design.predict(cal, arch[at], batch[at])

        fitted = design.predict(to_calibration(x, prior, "fit"), arch, batch)
        sections = {t: design.coster.sources.load(t)[0].batch_sizes for t in tables}
        sources = mix_candidates(sections, batch)
        priced = design.on_tables(sources, arch, batch)
        choice = cross_validate_mix(cv, kept, fitted, sources, priced, seconds, args)
    mix = dict(tables=choice.tables, roofline_weight=choice.model_weight)
    cal = replace(to_calibration(x, prior, name), **mix)
    cv, scales = choice.cv, {}
    if regimes:

        def fold(train: np.ndarray) -> Calibration:  # the kept candidate and mix, on train
            fold_cal = to_calibration(fit_on(best, train), prior, "fold")
            if not choice.tables:
                return fold_cal
            own = design.predict(fold_cal, arch[train], batch[train])
            tables_w, own_w = earned_mix(sources, priced[train], own, seconds[train])
            return replace(fold_cal, tables=tables_w, roofline_weight=own_w)

        def with_factors(_: str, train: np.ndarray) -> np.ndarray:
            columns = regime_columns(design, fold(train), arch, batch)
            return columns[~train] @ fit_regime_factors(columns[train], seconds[train])

        own_cv = cross_validate(["regimes"], with_factors, *args)
        if own_cv.cv_loss["regimes"] < cv.cv_loss[cv.candidate] - WITHIN_SE * cv.standard_error:
            columns = regime_columns(design, cal, arch, batch)
            scales = regime_scales(fit_regime_factors(columns, seconds))
            cv = replace(own_cv, cv_loss={**cv.cv_loss, **own_cv.cv_loss})
        else:
            cv = replace(cv, cv_loss={**cv.cv_loss, **own_cv.cv_loss})
    note = (
        f"Few-shot calibration of {design.device.name} from {cv.validation.fitted_on} measured "
        f"architectures ({len(seconds)} measurements; {data}), prior {prior.name!r}; free "
        f"parameters: {best} (chosen by {cv.folds}-fold cross-validation among "
        f"{list(candidates)}){mix_note(choice)}{regime_note(scales)}."
    )
    cal = replace(cal, note=note, validation=cv.validation, regime_scales=scales)
    return FewShotFit(cal, cv.candidate, cv.cv_loss, cv.out_of_fold)


def regime_note(scales: dict[str, float]) -> str:
    """What a calibration's note says of its regime factors ("" without any)."""
    if not scales:
        return ""
    return (
        f"; per class and roofline regime, times {describe(scales)} (cross-validated on the "
        f"same folds, kept by {WITHIN_SE:g} standard error)"
    )
