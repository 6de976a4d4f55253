"""cffi builder (API mode) for refcomp's C library: module ``refcomp.kernels._crefcomp``.

setup.py wires it with ``cffi_modules=["kernels/build_cffi.py:ffibuilder"]``;
``pip install -e .`` compiles csrc/*.c into the extension. Flags: -O3 and
-ffp-contract=off (the float paths promise a given rounding sequence, see
csrc/README.md); no -march: the SIMD functions carry target attributes and
are chosen at run time. API-mode calls release the GIL. The declarations
come from csrc/refcomp.h itself (:func:`cdef_from_header`).
Run directly (``python kernels/build_cffi.py``) to build in place.
"""

from __future__ import annotations

import os
import re

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_CSRC = os.path.join(os.path.dirname(_HERE), "csrc")
SOURCES = ["cpu.c", "threads.c", "matmul_integer.c", "requantize.c", "spmm.c", "gelu.c", "dynamic_quantize.c",
           "binary_matmul.c"]


def cdef_from_header(path: str = os.path.join(_CSRC, "refcomp.h")) -> str:
    """The declarations of csrc/refcomp.h in the form cffi's cdef takes.

    cdef has no preprocessor, so: comments go, the ``extern "C"`` guard
    blocks go, and of the other directives only integer ``#define``s stay
    (cdef reads those as constants). Generated from the header, the binding
    cannot drift from the C library it compiles.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if re.fullmatch(r"#define\s+\w+\s+-?\d+", stripped):
                keep.append(stripped)
            continue
        if stripped:
            keep.append(line.rstrip())
    return "\n".join(keep) + "\n"


CDEF = cdef_from_header()


def _rel(path: str) -> str:
    # setuptools wants source paths relative to the project root (the cwd of setup.py)
    try:
        return os.path.relpath(path)
    except ValueError:  # different drive (Windows)
        return path


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "refcomp.kernels._crefcomp",
    '#include "refcomp.h"',
    sources=[_rel(os.path.join(_CSRC, s)) for s in SOURCES],
    include_dirs=[_rel(_CSRC)],
    extra_compile_args=["-O3", "-ffp-contract=off"],
    libraries=["m"],
    extra_link_args=["-lpthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(_CSRC, "build", "cffi"), verbose=True)
