"""optuna samplers (TPE, NSGA-II, random) as a dse driver, with shared RDB storage.

Every decision variable is a categorical parameter over its value indices, named as the
variable. Objectives are told in minimisation form; constraints go to optuna as each trial's
violations
(``Trial.set_constraint`` on optuna >= 5, ``constraints_func`` before; feasible when <= 0), so TPE
and NSGA-II rank feasible trials first. A failed evaluation, or one that a cheap constraint pruned
before every objective existed, is told as ``FAIL``: samplers learn from measured trials only.

With ``storage`` (an RDB URL such as ``sqlite:///study.db``) the study lives in a database that
several ``dse run`` processes, on one machine or many, share: each process writes its own run
directory, every process's sampler sees every trial, and the budget ``max_evaluations`` counts
the study's trials, so the workers finish it together (a trial numbered past the budget is told
``PRUNED`` and its process stops). optuna-dashboard reads the same database. Without storage the
study is in memory and, like every driver, replays exactly on ``--resume``.
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dse.configfile import SQLITE
from dse.registry import DRIVERS, Registry
from dse.results.record import PENALTY
from dse.search.base import Budget, Driver
from dse.search.problem import SearchProblem

CONSTRAINTS_ATTR = "dse_constraints"
RUN_ATTR = "dse_run"


def _constraints(trial) -> list[float]:
    return trial.user_attrs.get(CONSTRAINTS_ATTR, [1.0])


def _native_constraints() -> bool:
    """optuna >= 5 stores constraints on the trial (``Trial.set_constraint``) and deprecates
    ``constraints_func``; older releases need the function."""
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def _constraint_option() -> dict:
    return {} if _native_constraints() else {"constraints_func": _constraints}


#: sampler name -> factory(seed, population_size, n_startup_trials); ``SAMPLERS.register`` adds more
SAMPLERS: Registry[Callable] = Registry("optuna sampler")


@SAMPLERS.register("tpe")
def _tpe(seed: int, population_size: int, n_startup_trials: int):
    import optuna

    with (
        warnings.catch_warnings()
    ):  # multivariate TPE is marked experimental; it is the better model here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=n_startup_trials, multivariate=True, **_constraint_option()
        )


@SAMPLERS.register("nsga2")
def _nsga2(seed: int, population_size: int, n_startup_trials: int):
    import optuna

    return optuna.samplers.NSGAIISampler(
        seed=seed, population_size=population_size, **_constraint_option()
    )


@SAMPLERS.register("random")
def _random(seed: int, population_size: int, n_startup_trials: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@DRIVERS.register("optuna")
class OptunaDriver(Driver):
    """optuna TPE / NSGA-II / random samplers, multi-objective and constrained, shareable via RDB.

    Several processes with the same ``storage`` and ``study_name`` share one study."""

    name = "optuna"

    def __init__(
        self,
        sampler: str = "tpe",
        batch_size: int = 8,
        population_size: int = 50,
        n_startup_trials: int = 10,
        storage: str | None = None,
        study_name: str = "dse",
    ):
        if sampler not in SAMPLERS:
            raise ValueError(
                f"sampler: {sampler!r} is not allowed; allowed values: {SAMPLERS.names()}"
            )
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("population_size", population_size, 2),
            ("n_startup_trials", n_startup_trials, 0),
        ):
            if value < low:
                raise ValueError(f"{name}: must be >= {low}, got {value}")
        if storage is not None and "://" not in storage:
            raise ValueError(
                f"storage: expected an RDB URL such as 'sqlite:///study.db', got {storage!r}"
            )
        self.sampler, self.batch_size = sampler, batch_size
        self.population_size, self.n_startup_trials = population_size, n_startup_trials
        if storage is not None and storage.startswith(SQLITE):
            path = storage[len(SQLITE) :]
            folder = Path(path).parent if path and path != ":memory:" else None
            if folder is not None and not folder.is_dir():
                raise ValueError(
                    f"storage: the folder {str(folder)!r} of the SQLite study does not exist; "
                    "create it first"
                )
        self.storage, self.study_name = storage, study_name

    def _study(self, problem: SearchProblem, seed: int):
        import optuna

        if self.storage is None:
            sampler = SAMPLERS[self.sampler](seed, self.population_size, self.n_startup_trials)
            return optuna.create_study(sampler=sampler, directions=["minimize"] * problem.n_obj)
        # shared studies interleave processes anyway; a per-run seed keeps two workers with the
        # same config from proposing the same random trials
        sampler = SAMPLERS[self.sampler](
            (seed + zlib.crc32(problem.run_id.encode())) % 2**31,
            self.population_size,
            self.n_startup_trials,
        )
        kwargs = {"connect_args": {"timeout": 120}} if self.storage.startswith("sqlite") else None

        def create():
            storage = optuna.storages.RDBStorage(self.storage, engine_kwargs=kwargs)
            return optuna.create_study(
                storage=storage,
                study_name=self.study_name,
                sampler=sampler,
                directions=["minimize"] * problem.n_obj,
                load_if_exists=True,
            )

        for attempt in range(5):  # workers started together race to create the schema and the study
            try:
                study = create()
                break
            except Exception:  # noqa: BLE001 - sqlalchemy's integrity/operational errors: retry
                time.sleep(0.2 * (attempt + 1))
        else:
            study = create()  # the sixth try raises whatever it meets
        # what optuna-dashboard shows as the objectives' names (values are minimised: a max
        # objective is told negated, and says so)
        with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(
                [o.metric if o.direction == "min" else f"-{o.metric}" for o in problem.objectives]
            )
        return study

    def run(self, problem: SearchProblem, budget: Budget, seed: int) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState

        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = self._study(problem, seed)
            names = [v.name for v in problem.space.variables]
            dists = {
                n: CategoricalDistribution(list(range(int(c))))
                for n, c in zip(names, problem.space.cardinalities)
            }
            trials = study.get_trials(deepcopy=False)
            for t in trials:  # a killed process of this run left trials running: close them
                if t.state == TrialState.RUNNING and t.user_attrs.get(RUN_ATTR) == problem.run_id:
                    study.tell(t.number, state=TrialState.FAIL)
            if not trials:
                for x in problem.warm_start_encodings():
                    study.enqueue_trial({n: int(v) for n, v in zip(names, x)}, skip_if_exists=True)
            native = _native_constraints()
            constraint_names = [c.metric for c in problem.constraints] + ["failed"]
            spent = False
            while not spent and not budget.exhausted(problem):
                asked = []
                for _ in range(min(self.batch_size, budget.remaining(problem))):
                    trial = study.ask(dists)
                    if trial.number >= budget.max_evaluations:  # the shared budget is spent
                        study.tell(trial, state=TrialState.PRUNED)
                        spent = True
                        break
                    trial.set_user_attr(RUN_ATTR, problem.run_id)
                    asked.append(trial)
                if not asked:
                    return
                X = np.array([[trial.params[n] for n in names] for trial in asked], dtype=np.int64)
                F, G = problem.evaluate(X)
                for trial, x, f in zip(asked, X, F):  # what a dashboard user reads per trial
                    trial.set_user_attr("arch_id", problem.space.arch_id(problem.space.decode(x)))
                    for obj, v in zip(problem.objectives, f):
                        trial.set_user_attr(obj.metric, float(obj.minimised(v)))
                for trial, f, g in zip(asked, F, G):
                    if g[-1] > 0 or not np.all(
                        np.abs(f) < PENALTY
                    ):  # failed, or objectives missing
                        study.tell(trial, state=TrialState.FAIL)
                        continue
                    values = [float(min(v, PENALTY)) for v in g]
                    if native:
                        for name, v in zip(constraint_names, values):
                            trial.set_constraint(name, v)
                    else:
                        trial.set_user_attr(CONSTRAINTS_ATTR, values)
                    study.tell(trial, [float(v) for v in f])
        finally:
            optuna.logging.set_verbosity(verbosity)
