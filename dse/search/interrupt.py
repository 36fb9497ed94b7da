"""Ctrl-C during a search: the first one stops after the current batch, with everything saved;
a second one interrupts at once (finished batches are still on disk)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dse.search.base import Budget


@contextmanager
def stop_on_interrupt(budget: Budget, quiet: bool = False) -> Iterator[None]:
    """While active, SIGINT asks ``budget`` to stop instead of raising KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread; elsewhere Ctrl-C keeps its default
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if budget.stop_requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        budget.request_stop()
        if not quiet:
            print(
                "\ndse: stopping after the current batch (Ctrl-C again to stop now)",
                file=sys.stderr,
            )

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
