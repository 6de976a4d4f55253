"""Weight-only W4 on all-MiniLM-L6-v2: RTN vs GPTQ at groups of 32 / 64 / 128, int4 codes packed.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/minilm_weight_only.py \\
        [--golden ../shared/data/minilm] [--eval 256] [--groups 32 64 128] [--bits 4]

An experiment, not a test (a few minutes on one core). For each grid it
quantizes the 36 Linear layers of the six blocks (q/k/v/out_proj 384×384,
fc1 1536×384, fc2 384×1536; symmetric codes, the module's default; the word,
position and type embeddings and the LayerNorms stay float32) and prints:

* cos mean / min: cosine between each sentence's embedding and the golden
  fp32 embedding of the same sentence (golden.npz ``embeddings``, PyTorch);
* NN@10: for each evaluated sentence, the share of its 10 nearest neighbours
  (cosine, among the evaluated sentences, itself excluded) that are the same
  as with the golden embeddings of the same set, averaged;
* Linear MB: the 36 quantized weights as stored (QTensor.nbytes: int4 codes
  two per byte + float32 scales; float32 bytes for the fp32 row);
  weights MB: every weight and parameter of the model (refcomp's model_bytes:
  the 11.9 M float32 embedding entries, 47.7 MB, dominate it);
* file MB: the model file on disk, safetensors and the compact ``.rcm``
  (refcomp.io.save_model), which store the int4 codes packed;
* quantize s: wall time of quantize_weights (GPTQ: calibration forwards,
  Hessians and the column sweeps of all 36 layers).

Data. Evaluation: the first ``--eval`` sentences of golden.npz (default 256),
disjoint from the calibration set, GPTQ's calibration set: the last 64
sentences (448..511), sorted by length and cut into batches of 8 trimmed to
their longest sentence, so that few padding rows enter the Hessians.
Evaluation batches of 32 are trimmed to their longest sentence too: padding
does not change a masked mean-pooled embedding (attention masks padded keys,
every other op is per token), and it saves 4/5 of the work at T = 128.
MB = 10^6 bytes.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402  (after the thread limits)

from refcomp.compress.quantize.weight_only import model_bytes, quantize_weights  # noqa: E402
from refcomp.formats import QTensor  # noqa: E402
from refcomp.io import save_model  # noqa: E402
from refcomp.models.minilm_l6 import mean_pool, minilm  # noqa: E402
from refcomp.nn.layers import Linear  # noqa: E402
from refcomp.pipelines.minilm import cosine_rows, nn_at_k  # noqa: E402

CALIBRATION = slice(448, 512)


def trimmed_batches(ids, mask, order, size):
    """Batches (ids, mask) of ``size`` sentences in ``order``, each cut to its longest sentence (int64)."""
    out = []
    for i in range(0, len(order), size):
        idx = order[i:i + size]
        t = int(mask[idx].sum(axis=1).max())
        out.append((ids[idx, :t].astype(np.int64), mask[idx, :t].astype(np.int64)))
    return out


def embed_batches(model, batches):
    return np.concatenate([mean_pool(model(i, m), m) for i, m in batches])


def sizes(model, tmp):
    linear = sum(m.weight.nbytes for _, m in model.named_modules() if isinstance(m, Linear))
    files = []
    for suffix in (".safetensors", ".rcm"):
        p = save_model(model, Path(tmp) / f"m{suffix}")
        files.append(p.stat().st_size)
        p.unlink()
    return linear, model_bytes(model), files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=os.environ.get("REFCOMP_MINILM_GOLDEN",
                                                       str(Path(__file__).resolve().parents[1].parent
                                                           / "shared" / "data" / "minilm")))
    ap.add_argument("--eval", type=int, default=256, help="evaluate on the first N sentences (<= 448)")
    ap.add_argument("--groups", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--bits", type=int, default=4)
    args = ap.parse_args(argv)
    if not 11 <= args.eval <= CALIBRATION.start:
        ap.error(f"--eval must be in [11, {CALIBRATION.start}] (NN@10 needs 11; the calibration set starts there)")
    with np.load(Path(args.golden) / "golden.npz", allow_pickle=False) as z:
        ids, mask, golden = z["input_ids"], z["attention_mask"], z["embeddings"]
    model = minilm()
    ev = trimmed_batches(ids, mask, np.arange(args.eval), 32)
    ref = golden[:args.eval]
    calib_order = np.arange(CALIBRATION.start, CALIBRATION.stop)
    calib_order = calib_order[np.argsort(mask[calib_order].sum(axis=1), kind="stable")]
    calib = trimmed_batches(ids, mask, calib_order, 8)
    n_rows = sum(int(m.size) for _, m in calib)
    n_tokens = int(mask[CALIBRATION].sum())
    print(f"all-MiniLM-L6-v2, weight-only W{args.bits} (symmetric), eval: sentences 0..{args.eval - 1}; "
          f"GPTQ calibration: sentences {CALIBRATION.start}..{CALIBRATION.stop - 1} "
          f"({n_tokens} tokens, {n_rows} rows with padding)")
    print()
    print("| weights | group | cos mean | cos min | NN@10 | Linear MB | weights MB | .safetensors MB | .rcm MB "
          "| quantize s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        def row(name, group, m, seconds):
            e = embed_batches(m, ev)
            c = cosine_rows(e, ref)
            lin, allw, (st, rcm) = sizes(m, tmp)
            print(f"| {name} | {group} | {c.mean():.5f} | {c.min():.5f} | {nn_at_k(e, ref):.3f} | "
                  f"{lin / 1e6:.2f} | {allw / 1e6:.2f} | {st / 1e6:.2f} | {rcm / 1e6:.2f} | {seconds} |", flush=True)

        row("fp32", "-", model, "-")
        for g in args.groups:
            for method in ("rtn", "gptq"):
                t0 = time.perf_counter()
                q, _ = quantize_weights(model, bits=args.bits, group_size=g, method=method,
                                        calibration_batches=calib if method == "gptq" else None)
                seconds = time.perf_counter() - t0
                assert all(isinstance(m.weight, QTensor) for _, m in q.named_modules() if isinstance(m, Linear))
                row(f"{method.upper()} W{args.bits}", g, q, f"{seconds:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
