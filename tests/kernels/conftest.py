"""Fixtures for the kernel tests: the C ISA paths and the fast backends present here."""

import numpy as np
import pytest

import refcomp
from refcomp import backend as _backend


def _c_isas():
    try:
        from refcomp.kernels import c
    except ImportError:
        return []
    return c.supported_isas()


C_ISAS = _c_isas()
# (backend, isa) pairs: every forced C path, plus numba
FAST = [("c", isa) for isa in C_ISAS] + [("numba", None)]


@pytest.fixture(params=FAST, ids=[f"c-{i}" if b == "c" else b for b, i in FAST])
def fast(request, monkeypatch):
    """Yields the backend name; for "c" the ISA path is forced through REFCOMP_ISA."""
    backend, isa = request.param
    if backend == "c" and not C_ISAS:
        pytest.skip("C kernels not built")
    if isa is not None:
        monkeypatch.setenv("REFCOMP_ISA", isa)
    return backend


@pytest.fixture
def threads():
    """Restore the thread count after a test changes it."""
    before = refcomp.get_num_threads()
    yield refcomp.set_num_threads
    refcomp.set_num_threads(before)


def int_array(rng, shape, dtype, mode="random"):
    info = np.iinfo(dtype)
    if mode == "max":
        return np.full(shape, info.max, dtype)
    if mode == "min":
        return np.full(shape, info.min, dtype)
    if mode == "extremes":
        return np.where(rng.random(shape) < 0.5, info.min, info.max).astype(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def fast_available(op):
    return _backend.available(op)
