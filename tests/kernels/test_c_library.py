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
