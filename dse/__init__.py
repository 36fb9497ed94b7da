"""dse: simulation-based design-space exploration of neural networks and the hardware that runs
them.

    space -> architecture graph -> evaluators (proxies, simulators) -> record -> search driver
          -> Parquet -> report

Python API::

    import dse
    result = dse.run("examples/nb201_params_budget.toml")   # or a dict shaped like the TOML
    df = dse.results.load(result.path)               # one row per architecture, is_pareto column
    swept = dse.sweep("examples/sweep_fpga_boards.toml", workers=2)   # Dask LocalCluster
    page = dse.report([result.path, swept.path])     # self-contained HTML
"""

from __future__ import annotations

__version__ = "0.1.0"


def run(config=None, **kwargs):
    """Run (or with ``resume=RUN`` continue) a search; see :func:`dse.runner.run`."""
    from dse.runner import run as _run

    return _run(config, **kwargs)


def sweep(config=None, **kwargs):
    """Run (or with ``resume=SWEEP`` finish) a parameter sweep on Dask; see
    :func:`dse.sweeps.sweep`.

    ``config`` is a TOML path or a dict with a ``[sweep]`` section; ``workers`` (a new
    LocalCluster; 0: this process) or ``scheduler`` (an existing cluster's address) say where.
    Returns a :class:`dse.sweeps.SweepResult` whose ``path`` ``dse.results.load`` reads."""
    from dse.sweeps import sweep as _sweep

    return _sweep(config, **kwargs)


def report(runs, **kwargs):
    """Write a self-contained HTML report of one or more runs or sweeps (directories or ids) and
    return its path; see :func:`dse.reports.report` (``out``, ``objectives``, ``title``)."""
    import importlib

    return importlib.import_module("dse.reports").report(
        runs if isinstance(runs, (list, tuple)) else [runs], **kwargs
    )


def __getattr__(name: str):
    # Submodules on first use, so ``import dse`` stays fast and never imports plugins.
    import importlib

    if name in (
        "results",
        "graph",
        "space",
        "evaluate",
        "config",
        "registry",
        "search",
        "runner",
        "sweeps",
        "params",
        "parallel",
        "subset",
        "reports",
    ):
        return importlib.import_module(f"dse.{name}")
    raise AttributeError(f"module 'dse' has no attribute {name!r}")
