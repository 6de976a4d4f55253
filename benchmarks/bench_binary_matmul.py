"""The bit-count inner product (refcomp.ops.binary_matmul) beside the int8 GEMM of the same shape.

    nice -n 10 .venv/bin/python benchmarks/bench_binary_matmul.py [--shapes 64x1024x1024 ...] [--threads 1]

For each M x K x N: the C and Numba bit-count kernels on packed ±1 rows
(K/64 words per row), the C and Numba int8 GEMM (refcomp.ops.matmul_integer,
uint8 x int8 -> int32, the weight packed once by pack_weight) on the same M, K, N, and NumPy float32 (M, K) @ (K, N).
Prints best-of-R milliseconds, "GOP/s" counting 2·M·N·K operations (one
multiply and one add per ±1 product, the same count for every row) and each
kernel's time over the C int8 GEMM's. Not a test: a comparison, run by hand.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import refcomp  # noqa: E402
from refcomp.ops import binary_matmul, matmul_integer, pack_signs, pack_weight  # noqa: E402


def best_ms(fn, repeats):
    fn()  # compile / warm up
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1e3 * min(t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["64x1024x1024", "256x4096x1024", "1x4096x4096"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    refcomp.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}; time in ms (best of {args.repeats}), GOP/s = 2·M·N·K / time, ratio = time / C int8")
    print("| M x K x N | kernel | ms | GOP/s | / C int8 GEMM |")
    print("|---|---|---|---|---|")
    for shape in args.shapes:
        m, k, n = (int(v) for v in shape.split("x"))
        xa, xb = rng.standard_normal((m, k)), rng.standard_normal((n, k))
        pa, pb = pack_signs(xa), pack_signs(xb)
        a8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b8 = pack_weight(rng.integers(-128, 128, (k, n), dtype=np.int8))  # packed once, as a layer's weight
        af, bf = xa.astype(np.float32), xb.T.astype(np.float32).copy()
        assert np.array_equal(binary_matmul(pa, pb, k, backend="c"), np.where(xa < 0, -1, 1) @ np.where(xb < 0, -1, 1).T)
        runs = {"C int8 GEMM": lambda: matmul_integer(a8, b8, backend="c"),
                "Numba int8 GEMM": lambda: matmul_integer(a8, b8, backend="numba"),
                "C bit-count": lambda: binary_matmul(pa, pb, k, backend="c"),
                "Numba bit-count": lambda: binary_matmul(pa, pb, k, backend="numba"),
                "NumPy float32": lambda: af @ bf}
        times = {name: best_ms(fn, args.repeats) for name, fn in runs.items()}
        base = times["C int8 GEMM"]
        for name, ms in times.items():
            print(f"| {shape} | {name} | {ms:.3f} | {2 * m * n * k / ms / 1e6:.1f} | {ms / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
