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


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_misaligned_operands_under_ubsan(tmp_path):
    """scripts/ubsan_kernels.py: tests/kernels/test_alignment.py against csrc/ built with
    -fsanitize=undefined: the wrappers hand C no misaligned pointer (the process ends at the first)."""
    import sys

    env = dict(os.environ, REFCOMP_UBSAN_BUILD=str(tmp_path))
    r = subprocess.run([sys.executable, str(CSRC.parent / "scripts" / "ubsan_kernels.py"), "-q", "-p", "no:cacheprovider",
                        "tests/kernels/test_alignment.py"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "runtime error" not in r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout


def _tsan_available(tmp_path) -> bool:
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    r = subprocess.run([os.environ.get("CC", "cc"), "-fsanitize=thread", str(src), "-o", str(tmp_path / "probe")],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and subprocess.run([str(tmp_path / "probe")], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="no make / C compiler")
def test_thread_sanitized_driver(tmp_path):
    """make -C csrc tsan: the driver (1- and 2-thread calls through the pool) under ThreadSanitizer."""
    if not _tsan_available(tmp_path):
        pytest.skip("this toolchain cannot build or run -fsanitize=thread programs")
    r = subprocess.run(["make", "-s", "-C", str(CSRC), f"BUILD={tmp_path}", "tsan"],
                       capture_output=True, text=True, timeout=600)
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


def test_thread_pool_gives_identical_results_for_any_thread_count_and_survives_fork():
    """csrc/threads.c keeps a pool of workers: results must not depend on the thread count or on
    which pool state a call finds (growing, shrinking, reused), and a forked child must rebuild it."""
    if not kernels.c_status()["available"]:
        pytest.skip("C kernels not built")
    import sys

    code = r"""
import os, sys
import numpy as np
from refcomp.kernels import c
from refcomp.formats import CSRMatrix
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (200, 300), dtype=np.uint8)
b = rng.integers(-128, 128, (300, 260), dtype=np.int8)
p = c.PackedB(b)
want = c.matmul_integer(a, p, 3, -5, threads=1)
W = CSRMatrix.from_dense(np.where(rng.random((300, 400)) < 0.2, rng.standard_normal((300, 400)), 0).astype(np.float32))
X = rng.standard_normal((400, 130)).astype(np.float32)
ywant = c.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, X, threads=1, validated=True)
for t in (2, 3, 4, 2, 1, 4, 2) * 3:
    assert np.array_equal(c.matmul_integer(a, p, 3, -5, threads=t), want), t
    assert np.array_equal(c.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, X, threads=t, validated=True), ywant), t
pid = os.fork()
if pid == 0:  # the child: no workers survived the fork; the pool must rebuild, not hang
    ok = all(np.array_equal(c.matmul_integer(a, p, 3, -5, threads=2), want) for _ in range(5))
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
assert np.array_equal(c.matmul_integer(a, p, 3, -5, threads=2), want)
print("ok")
"""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_concurrent_callers_share_the_pool_safely():
    """Kernels called from several Python threads at once (the GIL is released in C): one job uses
    the pool, the others start threads of their own; every result is the exact one."""
    if not kernels.c_status()["available"]:
        pytest.skip("C kernels not built")
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from refcomp.kernels import c

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (150, 400), dtype=np.uint8)
    b = rng.integers(-128, 128, (400, 300), dtype=np.int8)
    p = c.PackedB(b)
    want = a.astype(np.int64) @ b.astype(np.int64)

    def work(t):
        return all(np.array_equal(c.matmul_integer(a, p, threads=t), want) for _ in range(10))

    with ThreadPoolExecutor(4) as ex:
        assert all(ex.map(work, [2, 3, 2, 4, 2, 2, 3, 2]))
