"""Resource bounds for the hostile-file tests: peak traced memory and elapsed time of one call."""

import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Usage:
    """What a ``measured`` block cost: filled in when the block ends."""

    seconds: float = 0.0
    peak_bytes: int = 0


@contextmanager
def measured():
    """Time the block and trace its peak memory above the start (NumPy reports its buffers to
    tracemalloc); yields a Usage filled in on exit, also when the block raises."""
    usage = Usage()
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - t0
        usage.peak_bytes = tracemalloc.get_traced_memory()[1] - base
        if not was:
            tracemalloc.stop()


@contextmanager
def bounded(max_mib: float, max_seconds: float):
    """Fail when the block allocates more than ``max_mib`` MiB at its peak or runs longer than
    ``max_seconds``; exceptions pass through."""
    usage = None
    try:
        with measured() as usage:
            yield
    finally:               # also when the block raises: an exceeded bound is the failure to report
        peak = usage.peak_bytes / 2 ** 20
        assert peak <= max_mib, f"peak {peak:.1f} MiB > {max_mib} MiB"
        assert usage.seconds <= max_seconds, f"{usage.seconds:.2f} s > {max_seconds} s"
