"""The C library on its own: the sanitized C test driver, and what c_status() reports."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import refcomp.kernels as kernels

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def test_c_status_and_info():
    st = kernels.c_status()
    assert set(st) == {"available", "error", "isas", "best_isa"}
    if st["available"]:
        assert "scalar" in st["isas"] and st["best_isa"] in st["isas"]
    assert "numba" in kernels.info()


@pytest.mark.skipif(shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="no make / C compiler")
def test_sanitized_driver(tmp_path):
    """make -C csrc sanitize: ASan + UBSan build of every path, run on random and extreme inputs."""
    r = subprocess.run(["make", "-s", "-C", str(CSRC), f"BUILD={tmp_path}", "sanitize"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all checks passed" in r.stdout


def test_missing_c_extension_warns_once_and_falls_back():
    """Without the compiled extension refcomp still works (numba/numpy) and says so once."""
    import subprocess
    import sys

    code = r"""
import sys, warnings
sys.modules["refcomp.kernels._crefcomp"] = None  # as if the C build had failed
import numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import refcomp.kernels as k
    from refcomp import backend
    from refcomp.ops import matmul_integer
    y = matmul_integer(np.full((2, 3), 255, np.uint8), np.full((3, 2), -128, np.int8))
    y = matmul_integer(np.full((2, 3), 255, np.uint8), np.full((3, 2), -128, np.int8))
msgs = [str(x.message) for x in w if "C kernels" in str(x.message)]
assert len(msgs) == 1, msgs
assert backend.available("matmul_integer") == ["numpy", "numba"], backend.available("matmul_integer")
assert not k.c_status()["available"] and "NOT available" in k.info()
assert (y == 3 * 255 * -128).all()
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="no make / C compiler")
def test_c_examples_in_docs_compile_and_print_what_the_docs_say(tmp_path):
    """Every ```c block of docs/kernels.md, built against the static library, prints its "It prints" line."""
    import re

    doc = (CSRC.parent / "docs" / "kernels.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```c\n(.*?)```\s*\n\s*It prints `([^`]*)`", doc, flags=re.S)
    assert len(blocks) >= 2
    r = subprocess.run(["make", "-s", "-C", str(CSRC), f"BUILD={tmp_path}", f"{tmp_path}/librefcomp.a"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    cc = os.environ.get("CC", "cc")
    for i, (src, printed) in enumerate(blocks):
        c_file, exe = tmp_path / f"example{i}.c", tmp_path / f"example{i}"
        c_file.write_text(src)
        r = subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{CSRC}", str(c_file),
                            str(tmp_path / "librefcomp.a"), "-lpthread", "-lm", "-o", str(exe)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60).stdout.strip()
        # the GEMM example names the ISA it ran on; the integers are the same on every path
        assert out.split(": ")[-1] == printed.split(": ")[-1], (out, printed)
