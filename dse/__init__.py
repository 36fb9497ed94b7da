"""dse: simulation-based design-space exploration of neural networks and the hardware that runs them.

    space -> architecture graph -> evaluators (proxies, simulators) -> record -> search driver
          -> Parquet -> report

Python API::

    import dse
    result = dse.run("examples/nb201.toml")          # or a dict shaped like the TOML
    df = dse.results.load(result.path)               # one row per architecture, is_pareto column
"""

from __future__ import annotations

__version__ = "0.1.0"


def run(config=None, **kwargs):
    """Run (or with ``resume=RUN`` continue) a search; see :func:`dse.runner.run`."""
    from dse.runner import run as _run

    return _run(config, **kwargs)


def __getattr__(name: str):
    # Submodules on first use, so ``import dse`` stays fast and never imports plugins.
    import importlib

    if name in ("results", "graph", "space", "evaluate", "config", "registry", "search", "runner"):
        return importlib.import_module(f"dse.{name}")
    raise AttributeError(f"module 'dse' has no attribute {name!r}")
