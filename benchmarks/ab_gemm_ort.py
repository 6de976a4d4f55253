"""refcomp C int8 GEMM vs onnxruntime's default MatMulInteger only, many interleaved rounds.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ab_gemm_ort.py [rounds]

The full `refcomp bench` times ten candidates per shape; this narrows it to the
two whose ratio is a target (c >= 1.0x onnxruntime), with more rounds (default
15) of >= 0.1 s loops, round-robin, best loop per candidate, process CPU time.
Single-threaded; B packed once on both sides (onnxruntime holds it as an
initializer).
"""

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import harness as bench  # noqa: E402  (benchmarks/harness.py, beside this file)
from refcomp.kernels import c as ck  # noqa: E402


def main(rounds: int = 15) -> None:
    rng = np.random.default_rng(0)
    for M, K, N in bench.GEMM_SHAPES:
        if M < 128:
            continue
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        packed = ck.PackedB(b)
        sess, _ = bench._ort_session(b, 1, False)
        cpu = time.process_time
        t = bench.interleaved_best({"c": (lambda: ck.matmul_integer(a, packed, threads=1), cpu),
                                    "ort": (lambda: sess.run(None, {"A": a}), cpu)}, min_time=0.1, rounds=rounds)
        ops = 2.0 * M * K * N
        print(f"{M}x{K}x{N}: c {ops / t['c'] / 1e9:.1f} GOP/s, onnxruntime {ops / t['ort'] / 1e9:.1f} GOP/s, "
              f"c / onnxruntime {t['ort'] / t['c']:.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
