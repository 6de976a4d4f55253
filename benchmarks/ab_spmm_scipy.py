"""refcomp C sparse kernel vs scipy.sparse at one sparsity, many interleaved rounds.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ab_spmm_scipy.py [sparsity] [rounds]

out = in = 1024, batch 128, float32 (the issue's case). Four candidates,
round-robin, best >= 0.15 s loop each, process CPU time: the W @ xT kernel and
scipy's `S @ xT` on the same aligned xT (the target's ratio), and the whole op
`refcomp.ops.sparse_linear(x, W)` against scipy's natural `x @ S.T`.
"""

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import harness as bench  # noqa: E402  (benchmarks/harness.py, beside this file)
from refcomp.formats import CSRMatrix  # noqa: E402
from refcomp.kernels import c as ck  # noqa: E402
from refcomp.ops import sparse_linear  # noqa: E402


def main(sparsity: float = 0.9, rounds: int = 10) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1024, 1024)).astype(np.float32)
    w[rng.random(w.shape) < sparsity] = 0
    x = rng.standard_normal((128, 1024)).astype(np.float32)
    W = CSRMatrix.from_dense(w)
    xT = ck.aligned_array(np.ascontiguousarray(x.T))
    blocks = W.column_blocks(128)
    S = W.to_scipy()
    cpu = time.process_time
    t = bench.interleaved_best({
        "c": (lambda: ck.csr_spmm_f32(W.indptr, W.kernel_indices, W.data, W.shape, xT, threads=1,
                                      validated=True, blocks=blocks), cpu),
        "scipy": (lambda: S @ xT, cpu),
        "op": (lambda: sparse_linear(x, W, backend="c"), cpu),
        "scipy_natural": (lambda: x @ S.T, cpu),
    }, min_time=0.15, rounds=rounds)
    flops = 2.0 * W.nnz * 128
    print(", ".join(f"{k} {flops / v / 1e9:.1f} GFLOP/s" for k, v in t.items()))
    print(f"c / scipy S @ xT: {t['scipy'] / t['c']:.2f}x   op / scipy x @ S.T: {t['scipy_natural'] / t['op']:.2f}x")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.9, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
