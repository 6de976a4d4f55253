"""Resource bounds for the hostile-file tests: peak traced memory and elapsed time of one call."""

import time
import tracemalloc
from contextlib import contextmanager


@contextmanager
def bounded(max_mib: float, max_seconds: float):
    """Fail when the block allocates more than ``max_mib`` MiB at its peak (NumPy buffers included:
    NumPy reports them to tracemalloc) or runs longer than ``max_seconds``; exceptions pass through."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - t0
        peak = (tracemalloc.get_traced_memory()[1] - base) / 2 ** 20
        if not was:
            tracemalloc.stop()
        assert peak <= max_mib, f"peak {peak:.1f} MiB > {max_mib} MiB"
        assert elapsed <= max_seconds, f"{elapsed:.2f} s > {max_seconds} s"
