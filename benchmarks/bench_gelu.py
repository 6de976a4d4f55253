"""GELU float32: the NumPy definition, the previous layer path (Numba erf), and the kernels; MiniLM before/after.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_gelu.py [--no-model]

One thread, process CPU time (time.process_time), candidates timed
round-robin (harness.interleaved_best), best loop counts. Part 1: GELU of a
(4096, 1536) float32 array N(0, 2²), ns per element. Part 2: one
all-MiniLM-L6-v2 forward on a [32, 128] batch of the golden inputs, with the
GELU layer's previous forward ("before": x·½(1 + erf(x/√2)) with the Numba
erf) and the current one ("after": refcomp.ops.gelu, the C kernel), and the
cosine of the 64 golden embeddings.
"""

from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import interleaved_best  # noqa: E402

from refcomp import ops  # noqa: E402

CPU = time.process_time
GOLDEN = "/work/shared/data/minilm/golden.npz"


def old_layer_gelu(x):
    """What refcomp.nn's GELU.forward computed before it called ops.gelu (ops.erf: Numba, bit-identical)."""
    cdf = 0.5 * (1 + ops.erf(x / np.asarray(math.sqrt(2.0), x.dtype)))
    return (x * cdf).astype(x.dtype, copy=False)


def gelu_table():
    from refcomp.kernels import c
    x = (np.random.default_rng(0).standard_normal((4096, 1536)) * 2).astype(np.float32)
    cands = {
        "numpy definition (ops.gelu, backend='numpy')": (lambda: ops.gelu(x, backend="numpy"), CPU),
        "previous layer path (Numba erf + temporaries)": (lambda: old_layer_gelu(x), CPU),
        "Numba twin (ops.gelu, backend='numba')": (lambda: ops.gelu(x, backend="numba"), CPU),
        "C scalar path": (lambda: c.gelu(x, isa="scalar", threads=1), CPU),
        "C AVX2+FMA path (ops.gelu, backend='auto')": (lambda: ops.gelu(x), CPU),
    }
    best = interleaved_best(cands, min_time=0.3, rounds=3)
    for k, t in best.items():
        print(f"  {k:48s} {t * 1e9 / x.size:7.2f} ns/element  ({t * 1e3:8.1f} ms)")


def model_table():
    from refcomp.models import embed, minilm
    from refcomp.nn.layers import activations as act
    g = np.load(GOLDEN)
    ids, mask = g["input_ids"][:32].astype(np.int64), g["attention_mask"][:32].astype(np.int64)
    m = minilm()
    new_forward = act.GELU.forward

    def before_forward(self, x):
        self._cache = x
        return old_layer_gelu(x)

    def run(fwd):
        act.GELU.forward = fwd
        try:
            m(ids, mask)
        finally:
            act.GELU.forward = new_forward

    best = interleaved_best({"before": (lambda: run(before_forward), CPU), "after": (lambda: run(new_forward), CPU)},
                            min_time=0.01, rounds=4)
    for k, t in best.items():
        print(f"  MiniLM [32, 128] forward, {k:6s}: {t:.3f} s CPU")
    e = embed(m, input_ids=g["input_ids"][:64], attention_mask=g["attention_mask"][:64])
    ref = g["embeddings"][:64]
    cos = np.sum(e * ref, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"  embeddings vs golden (64): min cosine {cos.min():.9f}")


if __name__ == "__main__":
    gelu_table()
    if "--no-model" not in sys.argv:
        model_table()
