"""Fast backends of refcomp.ops (installed as ``refcomp.kernels``).

Importing this package registers every available implementation with
refcomp.backend; ops find them there. Nothing here defines semantics: the
NumPy functions in refcomp.ops are the definitions, and tests/kernels/ prove
each kernel equal to them.

- backend "c": the C library in csrc/, bound by cffi as ``refcomp.kernels._crefcomp``
  (built by ``pip install``; wrappers in :mod:`refcomp.kernels.c`).
- backend "numba": :mod:`refcomp.kernels.numba` (compiled on first use, cached).

If the C extension is missing (no compiler at install time) refcomp keeps
working on numpy/numba and says so once (a RuntimeWarning-free UserWarning).
:func:`c_status` / :func:`info` tell what is available.

Registered ops (contracts in the common interface; shapes are 2-D, C-contiguous;
the csr_* kernels take ``validated=True`` when their arrays come from a CSRMatrix):
``matmul_integer``, ``requantize_float``, ``requantize_fixed_point``,
``csr_spmm_f32``, ``csr_spmm_i8`` (CSRMatrix @ X), ``csr_linear_f32``
(refcomp.ops.sparse_linear: x @ W.T + bias), ``binary_matmul`` (packed ±1 rows,
refcomp.ops.binary_matmul, bit-exact), ``gelu`` (float32, within eq. G2
of refcomp.ops.gelu, not bit-exact), ``pack_b`` (B [K, N] int8 / uint8 -> the
backend's packed B, which its ``matmul_integer`` takes in place of B;
refcomp.ops.PackedWeight makes and caches it); Numba only: ``erf``,
``dynamic_quantize_linear`` (its eq. DQ3, x float32 -> uint8 codes, given
the scale and zero point the op computed); C only: ``dynamic_quantize_rows``
(the whole op on finite float32 x (M, K), K >= 1, bit-exact).
"""

from __future__ import annotations

import warnings

from .. import backend as _backend

try:  # the C extension exists only where a compiler was found at install time
    from . import c
except ImportError as exc:
    c = None
    _c_error: str | None = f"{type(exc).__name__}: {exc}"
else:
    _c_error = None
try:  # Numba compiles nothing at import; each kernel compiles on its first call (then cached)
    import numba  # noqa: F401
except ImportError as exc:
    _numba_error: str | None = str(exc)
else:
    _numba_error = None
    from .numba import dynamic_quantize as nb_dq
    from .numba import binary_matmul as nb_bmm
    from .numba import erf as nb_erf
    from .numba import gelu as nb_gelu
    from .numba import matmul_integer as nb_mm
    from .numba import requantize as nb_rq
    from .numba import spmm as nb_spmm

__all__ = ["c_status", "info", "C_OPS", "NUMBA_OPS"]

_SHARED_OPS = ("matmul_integer", "pack_b", "requantize_float", "requantize_fixed_point", "csr_spmm_f32", "csr_spmm_i8",
               "csr_linear_f32", "gelu", "binary_matmul")
C_OPS = _SHARED_OPS + ("dynamic_quantize_rows",)
NUMBA_OPS = _SHARED_OPS + ("erf", "dynamic_quantize_linear")


def _register_c() -> None:
    if c is None:  # extension not built
        warnings.warn(
            "refcomp: the C kernels (refcomp.kernels._crefcomp) are not built; using numpy/numba "
            f"backends ({_c_error}). Reinstall with a C compiler to get them.",
            stacklevel=3,
        )
        return
    _backend.register("matmul_integer", "c", c.matmul_integer)
    _backend.register("pack_b", "c", c.PackedB)
    _backend.register("requantize_float", "c", c.requantize_float)
    _backend.register("requantize_fixed_point", "c", c.requantize_fixed_point)
    _backend.register("csr_spmm_f32", "c", c.csr_spmm_f32)
    _backend.register("csr_spmm_i8", "c", c.csr_spmm_i8)
    _backend.register("csr_linear_f32", "c", c.csr_linear_f32)
    _backend.register("gelu", "c", c.gelu)
    _backend.register("binary_matmul", "c", c.binary_matmul)
    _backend.register("dynamic_quantize_rows", "c", c.dynamic_quantize_rows)


def _register_numba() -> None:
    if _numba_error is not None:
        return
    _backend.register("matmul_integer", "numba", nb_mm.matmul_integer)
    _backend.register("pack_b", "numba", nb_mm.PackedB)
    _backend.register("requantize_float", "numba", nb_rq.requantize_float)
    _backend.register("requantize_fixed_point", "numba", nb_rq.requantize_fixed_point)
    _backend.register("csr_spmm_f32", "numba", nb_spmm.csr_spmm_f32)
    _backend.register("csr_spmm_i8", "numba", nb_spmm.csr_spmm_i8)
    _backend.register("csr_linear_f32", "numba", nb_spmm.csr_linear_f32)
    _backend.register("erf", "numba", nb_erf.erf)
    _backend.register("gelu", "numba", nb_gelu.gelu)
    _backend.register("binary_matmul", "numba", nb_bmm.binary_matmul)
    _backend.register("dynamic_quantize_linear", "numba", nb_dq.quantize_dq3)


def c_status() -> dict:
    """Whether the C library is available, and which ISA paths run on this CPU.

    ``{"available": bool, "error": str | None, "isas": [...], "best_isa": str | None}``
    """
    if _c_error is not None:
        return {"available": False, "error": _c_error, "isas": [], "best_isa": None}
    return {"available": True, "error": None, "isas": c.supported_isas(), "best_isa": c.best_isa()}


def info() -> str:
    """One human-readable paragraph: backends, ISA paths, threads."""
    st = c_status()
    c_line = (f"c: available, ISA paths {', '.join(st['isas'])} (auto -> {st['best_isa']})"
              if st["available"] else f"c: NOT available ({st['error']})")
    if _numba_error is None:
        nb_line = f"numba: available (int8 GEMM path: {nb_mm.best_path()})"
    else:
        nb_line = f"numba: NOT available ({_numba_error})"
    return f"{c_line}\n{nb_line}\nthreads: {_backend.get_num_threads()} (refcomp.set_num_threads)"


_register_c()
_register_numba()
