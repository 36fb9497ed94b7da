"""Ctrl-C or SIGTERM during a search: the first stops after the current batch, with everything
saved (the manifest says ``interrupted``); a second interrupts at once (finished batches are
still on disk). Schedulers (SLURM, Kubernetes) end a job with SIGTERM, so it is a first Ctrl-C:
the CLI then exits 143 (128 + 15), as a process ended by SIGTERM does, and 130 for Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dse.search.base import Budget

#: what stops a search after the batch in flight
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def exit_code(signum: int | None) -> int:
    """The exit code of a search stopped by ``signum`` (128 + the signal's number)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)


@contextmanager
def stop_on_interrupt(budget: Budget, quiet: bool = False) -> Iterator[None]:
    """While active, SIGINT and SIGTERM ask ``budget`` to stop instead of ending the process."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread; elsewhere Ctrl-C keeps its default
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum, frame):
        if budget.stop_requested:
            for s, h in previous.items():
                signal.signal(s, h)
            raise KeyboardInterrupt
        budget.request_stop(signum)
        if not quiet:
            print(
                f"\ndse: {_NAMES.get(signum, 'a signal')}: stopping after the current batch "
                "(again to stop now)",
                file=sys.stderr,
            )

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C where work stops at once (a sweep: finished chunks are on
    disk); the CLI exits 143 on it."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (so the manifest records
    ``interrupted`` instead of a dead process's ``running``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, previous)
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
