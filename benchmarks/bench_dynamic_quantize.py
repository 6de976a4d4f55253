"""refcomp.ops.dynamic_quantize_rows: the NumPy definition vs the C kernel (backend "c"), one thread.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dynamic_quantize.py

Standard-normal float32 x at the activation shapes of all-MiniLM-L6-v2's
Linear layers on a [32, 128] batch (M = 4096) and on one sequence (M = 128).
Both go through the op (validation and the finiteness pass included).
Process CPU time, the two timed round-robin, best of 5 loops of >= 0.2 s.
"""

import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import refcomp  # noqa: E402
from refcomp.ops import dynamic_quantize_rows  # noqa: E402


def main() -> None:
    refcomp.set_num_threads(1)
    rng = np.random.default_rng(0)
    for M, K in ((4096, 384), (4096, 1536), (128, 384)):
        x = rng.standard_normal((M, K)).astype(np.float32)
        for got, want in zip(dynamic_quantize_rows(x, backend="c"), dynamic_quantize_rows(x, backend="numpy")):
            assert np.array_equal(got, want)
        best = {}
        for _ in range(5):
            for b in ("numpy", "c"):
                n, t0 = 0, time.process_time()
                while True:
                    dynamic_quantize_rows(x, backend=b)
                    n += 1
                    t = time.process_time() - t0
                    if t > 0.2:
                        break
                best[b] = min(best.get(b, 1e9), t / n)
        print(f"dynamic_quantize_rows {M}x{K}: numpy {best['numpy'] * 1e3:.3f} ms, c {best['c'] * 1e3:.3f} ms, "
              f"{best['numpy'] / best['c']:.1f}x (identical outputs)", flush=True)


if __name__ == "__main__":
    main()
