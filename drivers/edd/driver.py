"""``[search] driver = "edd"``: EDD's differentiable co-search as a search driver.

The run is like any other: the space is ``mbconv``, the configured simulator (``[simulators.fpga]``
with ``architecture = "recursive"`` or ``"pipelined"`` on a ``target = "fpga"`` space, or
``[simulators.gpu]`` on a ``target = "gpu"`` space) prices the supernet with its own tables and
re-tunes every derived design with its own allocator. Each epoch's derived architecture is
proposed to the run, so it is a record in the Parquet store (with every configured metric), and
``dse show`` and ``dse report`` read the run. Per epoch the driver also writes
``RUN/driver/edd_epochs.json`` (the supernet's validation accuracy, temperature, the expected
and derived cost, the simulated metrics, and after the last epoch the retrained test accuracy)
and a checkpoint ``RUN/driver/edd.pt``, both atomically; ``dse run --resume`` replays the finished
epochs' proposals from the table and continues training from the checkpoint. One proposal per
epoch counts against ``max_evaluations``.

Config::

    [search]
    driver = "edd"
    max_evaluations = 20          # at least epochs
    epochs = 20                   # any EddConfig field (drivers/edd/search.py)
    alpha = 1.0
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import torch

from dse.drivers.edd.search import EddConfig, EddSearch, retrain
from dse.drivers.edd.tables import FpgaLayerCost, GpuKernelCost, MBConvChainSpace
from dse.params import ConfigError, create
from dse.registry import DRIVERS
from dse.results.store import atomic_write_bytes
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem

CHECKPOINT, EPOCHS = "edd.pt", "edd_epochs.json"


def _simulator(providers, target: str):
    """The configured simulator that prices a ``target`` space's supernet: the one with the
    capability EDD's tables read (a GPU kernel coster, or FPGA layer rows and Phi/Psi)."""
    want = GpuKernelCost if target == "gpu" else FpgaLayerCost
    for p in providers:
        if isinstance(p, want):
            return p
    section = "gpu" if target == "gpu" else "fpga"
    raise ValueError(
        f"edd on a target = {target!r} space prices the supernet with the [simulators.{section}] "
        "simulator; add it to the config"
    )


def _columns(row: dict[str, Any]) -> dict[str, float]:
    """An epoch's row as the driver's record columns."""
    return {
        "edd_epoch": float(row["epoch"]),
        "edd_tau": row["tau"],
        "edd_val_accuracy": row["val_accuracy"],
        "edd_expected_perf_ms": row["expected_perf_s"] * 1e3,
        "edd_expected_dsp": row["expected_dsp"],
        "edd_derived_perf_ms": row["derived_perf_s"] * 1e3,
        "edd_derived_dsp": row["derived_dsp"],
        "edd_retrained_accuracy": row.get("retrained_test_accuracy", float("nan")),
    }


@DRIVERS.register("edd")
class EddDriver(Driver):
    """EDD differentiable co-search of the mbconv space (torch; the simulators' own cost)."""

    name = "edd"
    record_metrics = (
        "edd_epoch",
        "edd_tau",
        "edd_val_accuracy",
        "edd_expected_perf_ms",
        "edd_expected_dsp",
        "edd_derived_perf_ms",
        "edd_derived_dsp",
        "edd_retrained_accuracy",
    )
    units = {
        "edd_epoch": "epoch",
        "edd_tau": "temperature",
        "edd_val_accuracy": "fraction",
        "edd_expected_perf_ms": "ms",
        "edd_expected_dsp": "DSPs",
        "edd_derived_perf_ms": "ms",
        "edd_derived_dsp": "DSPs",
        "edd_retrained_accuracy": "fraction",
    }

    def __init__(self, retrain_final: bool = True, **settings: Any):
        if "seed" in settings:  # the run's seed (run.seed) seeds the search
            allowed = sorted({f.name for f in dataclasses.fields(EddConfig)} - {"seed"})
            raise ConfigError(
                f"search.seed: unknown parameter (the run's seed is run.seed); allowed: "
                f"{', '.join(allowed + ['retrain_final'])}"
            )
        self.config = create(EddConfig, settings, "search")
        self.retrain_final = retrain_final

    def check(self, space, providers) -> None:
        if not isinstance(space, MBConvChainSpace):  # what EDD reads of a space
            raise ValueError(f"edd searches the 'mbconv' space, not {space.name!r}")
        _simulator(providers, space.target)

    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        space = problem.space
        self.check(space, problem.providers)
        assert isinstance(space, MBConvChainSpace)
        sim = _simulator(problem.providers, space.target)
        search = EddSearch(space, sim, dataclasses.replace(self.config, seed=seed))
        rows = self._resume(problem, search, space)
        while search.epoch < search.config.epochs and not budget.exhausted(problem):
            result = search.run_epoch()
            metrics = sim.evaluate_population([space.to_graph(result.arch)])
            row = result.to_dict() | {
                "arch_id": space.arch_id(result.arch),
                **{f"simulated_{k}": float(v[0]) for k, v in metrics.items()},
            }
            if search.epoch == search.config.epochs and self.retrain_final:
                row["retrained_test_accuracy"] = retrain(space, result.arch, search.config)
            problem.evaluate(space.encode(result.arch)[None, :], [_columns(row)])
            rows.append(row)
            self._save(problem, search, rows)

    def _resume(self, problem: SearchProblem, search: EddSearch, space) -> list[dict]:
        """The finished epochs' rows, re-proposed (served from the run's records) and the
        search restored from its checkpoint; [] for a new run."""
        if problem.workdir is None or not (problem.workdir / CHECKPOINT).exists():
            return []
        rows = json.loads((problem.workdir / EPOCHS).read_text())
        search.load_state_dict(torch.load(problem.workdir / CHECKPOINT, weights_only=False))
        rows = rows[: search.epoch]
        for row in rows:
            problem.evaluate(space.encode(row["arch"])[None, :], [_columns(row)])
        return rows

    def _save(self, problem: SearchProblem, search: EddSearch, rows: list[dict]) -> None:
        if problem.workdir is None:
            self.epochs = rows
            return
        problem.workdir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(search.state_dict(), buf)
        # the table first: a checkpoint never runs ahead of the rows it implies
        atomic_write_bytes(problem.workdir / EPOCHS, json.dumps(rows, indent=1).encode())
        atomic_write_bytes(problem.workdir / CHECKPOINT, buf.getvalue())
