"""Numba's threads: the count follows refcomp, the threading layer is fork-safe, calls are serialized.

Thread count: :func:`parallel_region` sets Numba's thread count from
refcomp.backend.get_num_threads() (or the caller's ``threads``) at every call.

Threading layer (docs/kernels.md, "Numba's threading layer"): Numba runs
``prange`` loops on one of three layers, chosen once per process on the
first parallel call: "tbb" (fork- and thread-safe; needs the tbb package),
"omp" (thread-safe, but on Linux GNU libgomp is not fork-safe: a child forked
after the parent ran a parallel kernel is terminated by Numba on its first
one, so a multiprocessing pool with the fork start method hangs) and
"workqueue" (fork-safe, always present, but not thread-safe: concurrent
calls from two Python threads terminate the process). Numba's default order
is tbb, omp, workqueue, so without tbb Linux gets "omp". Unless the
application chose a layer (NUMBA_THREADING_LAYER, or numba.config.THREADING_LAYER
set before importing refcomp), importing this module asks Numba for
"forksafe": tbb when installed, else workqueue. And because workqueue is not
thread-safe, every refcomp Numba kernel runs inside one process-wide lock
(:func:`parallel_region`): calls from several Python threads take turns, each
still using all of Numba's threads. The lock is re-made in a forked child, so
a fork taken while another thread held it cannot deadlock the child.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba
import numpy as np

from ... import backend as _backend

__all__ = ["parallel_region", "use_refcomp_threads", "elementwise", "LAYER_CHOSEN_BY_REFCOMP"]


def _choose_fork_safe_layer() -> bool:
    """Ask Numba for a fork-safe layer unless the application chose one; True when refcomp chose."""
    if os.environ.get("NUMBA_THREADING_LAYER") or str(numba.config.THREADING_LAYER).lower() != "default":
        return False  # the application's choice (its own safety trade-off)
    from numba.np.ufunc import parallel

    if parallel._is_initialized:  # some parallel code already ran: the layer is fixed for this process
        return False
    numba.config.THREADING_LAYER = "forksafe"
    return True


#: True when refcomp set numba.config.THREADING_LAYER = "forksafe" at import
LAYER_CHOSEN_BY_REFCOMP = _choose_fork_safe_layer()

_lock = threading.RLock()


def _new_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # the parent's may be held by a thread that does not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def use_refcomp_threads(threads: int | None = None) -> None:
    n = _backend.get_num_threads() if threads is None else int(threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


@contextlib.contextmanager
def parallel_region(threads: int | None = None):
    """Run one Numba parallel kernel: the process-wide lock held, Numba's thread count set.

    The lock makes the workqueue layer (not thread-safe) safe to call from
    several Python threads; with tbb / omp it only serializes refcomp's
    kernels, each of which already uses every Numba thread.
    """
    with _lock:
        use_refcomp_threads(threads)
        yield


def elementwise(kernel, x):
    """``kernel(flat_in, flat_out)`` (a compiled loop over one contiguous vector) applied to ``x`` of
    any shape inside a parallel region; the result has x's shape and dtype."""
    with parallel_region():
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty_like(flat)
        if flat.size:
            kernel(flat, out)
        return out.reshape(x.shape)
