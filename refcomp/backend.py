"""Backend choice and thread count: the only global state refcomp has.

Every op takes ``backend="auto" | "numpy" | "numba" | "c"``. "numpy" is the
definition (refcomp.ops); "numba" and "c" are fast twins registered here by
refcomp.kernels and proven equal to it by tests. "auto" picks c > numba > numpy
among the backends that implement the op and are available on this machine.

Fast implementations register themselves with :func:`register`; an op asks
:func:`implementation` for the callable to use, or ``None`` for its own NumPy
definition.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from .errors import BackendUnavailableError, ValidationError

BACKENDS = ("auto", "numpy", "numba", "c")
_PREFERENCE = ("c", "numba")

_lock = threading.Lock()
_default_backend = os.environ.get("REFCOMP_BACKEND", "auto")
_num_threads = 1
_registry: dict[tuple[str, str], Callable] = {}
_loaded = False


def _check_name(backend: str, argument: str = "backend") -> str:
    if backend not in BACKENDS:
        raise ValidationError(argument, f"one of {BACKENDS}", repr(backend))
    return backend


def set_backend(backend: str) -> None:
    """Set the backend used when an op is called with ``backend="auto"`` ... or none."""
    global _default_backend
    _default_backend = _check_name(backend)


def get_backend() -> str:
    return _default_backend


def set_num_threads(n: int) -> None:
    """Threads used by the C and Numba kernels (results identical for every n)."""
    global _num_threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValidationError("n", "an int >= 1", repr(n))
    _num_threads = n


def get_num_threads() -> int:
    return _num_threads


def register(op: str, backend: str, fn: Callable) -> None:
    """Register ``fn`` as the ``backend`` implementation of ``op`` (called by refcomp.kernels)."""
    if backend not in _PREFERENCE:
        raise ValidationError("backend", f"one of {_PREFERENCE}", repr(backend))
    _registry[(op, backend)] = fn


def _load_kernels() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        try:
            import refcomp.kernels  # noqa: F401  (registers what is available)
        except ImportError:
            pass
        _loaded = True


def implementation(op: str, backend: str | None = None) -> Callable | None:
    """The fast callable for ``op`` under ``backend``; ``None`` means use the NumPy definition.

    An explicit "numba"/"c" that is not available raises BackendUnavailableError;
    "auto" silently falls back (c > numba > numpy).
    """
    return _choose(op, backend)[1]


def resolve(op: str, backend: str | None = None) -> tuple[str, Callable | None]:
    """``(name, fn)``: what :func:`implementation` returns and the backend it chose ("numpy", ``None``).

    For ops whose fast twin needs a companion of the same backend: a packed
    weight of "matmul_integer" is made by that backend's "pack_b".
    """
    return _choose(op, backend)


def _choose(op: str, backend: str | None) -> tuple[str, Callable | None]:
    backend = _check_name(_default_backend if backend is None else backend)
    if backend == "auto":
        backend = _default_backend if _default_backend != "auto" else "auto"
    if backend == "numpy":
        return "numpy", None
    _load_kernels()
    if backend == "auto":
        for b in _PREFERENCE:
            fn = _registry.get((op, b))
            if fn is not None:
                return b, fn
        return "numpy", None
    fn = _registry.get((op, backend))
    if fn is None:
        raise BackendUnavailableError(
            f"backend {backend!r} is not available for {op!r} on this machine "
            f"(available: {available(op)})"
        )
    return backend, fn


def lookup(op: str, backend: str) -> Callable | None:
    """The ``backend`` ("c" | "numba") implementation of ``op``, or ``None``; no fallback, no error."""
    if backend not in _PREFERENCE:
        return None
    _load_kernels()
    return _registry.get((op, backend))


def available(op: str) -> list[str]:
    """Backends that implement ``op`` here, numpy always included."""
    _load_kernels()
    return ["numpy"] + [b for b in _PREFERENCE if (op, b) in _registry]
