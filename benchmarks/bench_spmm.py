"""sparse_linear float32 benchmark: refcomp c / numba vs scipy.sparse and dense numpy, by sparsity.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_spmm.py [--quick] [--clock cpu] [--output docs/performance.md]

Single-threaded (BLAS limited before numpy is imported); prints one table whose ratios come from this run only.
The same code runs as ``refcomp bench --which spmm`` (benchmarks/harness.py).
"""

import os
import sys

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from refcomp.cli import main  # noqa: E402  (after the thread limits)

if __name__ == "__main__":
    sys.exit(main(["bench", "--which", "spmm", *sys.argv[1:]]))
