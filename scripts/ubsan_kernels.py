"""Run pytest against the C kernels built with UndefinedBehaviorSanitizer (alignment included).

    .venv/bin/python scripts/ubsan_kernels.py [pytest args]     (default: the misalignment tests)

Builds csrc/*.c through cffi as ``refcomp.kernels._crefcomp`` with
``-fsanitize=undefined -fno-sanitize-recover=all`` into csrc/build/ubsan
(or $REFCOMP_UBSAN_BUILD; the installed extension is left alone), puts that module in sys.modules
before refcomp.kernels imports its own, and runs pytest in this process: the
first undefined behaviour a test reaches (a misaligned load, an overflow, an
out-of-bounds shift ...) prints a UBSan report and ends the process with a
non-zero status. scripts/test.sh runs the C test driver the same way
(csrc/Makefile, ``make sanitize``); this runs the Python wrappers' own calls.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT = ["-q", "-p", "no:cacheprovider", "tests/kernels/test_alignment.py"]


def build() -> str:
    from cffi import FFI

    # kernels/build_cffi.py: the same sources and declarations (loaded by path: kernels/ on
    # sys.path would shadow the numba package with kernels/numba)
    spec = importlib.util.spec_from_file_location("_refcomp_build_cffi", os.path.join(ROOT, "kernels", "build_cffi.py"))
    build_cffi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_cffi)

    csrc = os.path.join(ROOT, "csrc")
    ffi = FFI()
    ffi.cdef(build_cffi.CDEF)
    ffi.set_source("refcomp.kernels._crefcomp", '#include "refcomp.h"',
                   sources=[os.path.join(csrc, s) for s in build_cffi.SOURCES], include_dirs=[csrc],
                   extra_compile_args=["-O1", "-g", "-fno-omit-frame-pointer", "-ffp-contract=off",
                                       "-fsanitize=undefined", "-fno-sanitize-recover=all"],
                   extra_link_args=["-fsanitize=undefined", "-lpthread"], libraries=["m"])
    return ffi.compile(tmpdir=os.environ.get("REFCOMP_UBSAN_BUILD") or os.path.join(csrc, "build", "ubsan"))


def main(argv: list[str]) -> int:
    path = build()
    # read by the UBSan runtime when the module loads: a stack with each report
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    spec = importlib.util.spec_from_file_location("refcomp.kernels._crefcomp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["refcomp.kernels._crefcomp"] = module
    import pytest

    import refcomp.kernels.c as c

    assert c.lib is module.lib, "refcomp.kernels.c did not take the sanitized build"
    print(f"refcomp C kernels under UBSan: {path}", file=sys.stderr)
    os.chdir(ROOT)
    os.environ["REFCOMP_UBSAN"] = "1"  # tests/kernels/test_alignment.py: let the sanitizer judge
    # --capture=sys: pytest's default fd capture would swallow the report UBSan writes to fd 2
    # when it ends the process
    return pytest.main(["--capture=sys"] + (argv or DEFAULT))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
