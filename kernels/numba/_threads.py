"""Numba's thread count follows refcomp.backend.get_num_threads() at every call."""

from __future__ import annotations

import numba

from ... import backend as _backend


def use_refcomp_threads(threads: int | None = None) -> None:
    n = _backend.get_num_threads() if threads is None else int(threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
