"""Garbage-collector settings for the search loop.

Every architecture's graph is a few hundred small dicts, so CPython's cyclic collector runs
its young generation once or twice per graph and, every so often, walks every live object of
the process (pymoo, pandas, numpy, the caches). A search makes no reference cycles worth
collecting that often, so inside :func:`search_gc` objects that exist before the loop are
frozen (never scanned again) and the young generation is collected every 20,000 allocations
instead of 700. About 1.5x more architectures per second on NAS-Bench-201
(benchmarks/search_throughput.py); the previous settings come back when the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: allocations between young-generation collections inside the search loop (CPython: 700)
YOUNG_THRESHOLD = 20_000


@contextmanager
def search_gc() -> Iterator[None]:
    """Freeze what exists and collect the young generation less often, for the block."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
