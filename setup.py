"""Build hook: everything declarative lives in pyproject.toml.

This file exists only to (1) map kernels/ to refcomp.kernels and (2) compile the
C library in csrc/ into the cffi extension ``refcomp.kernels._crefcomp`` (API mode).
A failed C build must not fail the install: refcomp then runs on its NumPy and
Numba backends and says so once at run time (refcomp.kernels.c_status()).
"""

import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CFFI_BUILDER = os.path.join("kernels", "build_cffi.py")


class OptionalBuildExt(build_ext):
    """build_ext that turns a C build failure into a warning."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, header missing, ...
            sys.stderr.write(f"refcomp: C kernels not built ({exc}); numpy/numba backends only\n")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            sys.stderr.write(f"refcomp: C extension {ext.name} not built ({exc})\n")


packages = find_packages(include=["refcomp", "refcomp.*"])
packages += ["refcomp.kernels"] + [
    "refcomp.kernels." + p for p in find_packages(where="kernels")
]

kwargs = {}
if os.path.exists(os.path.join(HERE, CFFI_BUILDER)) and os.environ.get("REFCOMP_NO_C") != "1":
    kwargs["cffi_modules"] = [CFFI_BUILDER + ":ffibuilder"]

setup(
    packages=packages,
    package_dir={"refcomp": "refcomp", "refcomp.kernels": "kernels"},
    cmdclass={"build_ext": OptionalBuildExt},
    **kwargs,
)
