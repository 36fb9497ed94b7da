"""Reports of runs and sweeps: ``dse report``'s self-contained HTML page (:mod:`.html`, with its
figures, explorer and data helpers) and ``dse show``'s text summary (:mod:`.text`).

The package itself imports nothing heavy (matplotlib loads only with the HTML page, when
:func:`report` is first read), so ``dse show`` starts fast.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "report":
        from dse.reports.html import report

        return report
    raise AttributeError(f"module 'dse.reports' has no attribute {name!r}")
