"""all-MiniLM-L6-v2: every refcomp variant against onnxruntime, measured side by side in one run.

    python benchmarks/minilm.py [--quick] [--rounds 5] [--json out.json] [--only RECIPE ...]

For each variant: cosine of its sentence embeddings to the fp32 golden set
(../shared/data/minilm, or $REFCOMP_MINILM_GOLDEN; batches of 32 padded to 128,
mean and min over the 512 sentences), NN@10 (the share of each sentence's 10
nearest neighbours among the 512 that stay those of the golden embeddings)
padded and unpadded (one sentence per call, against the golden unpadded
embeddings), size on disk (refcomp: its model file; onnxruntime: the .onnx),
and the latency of one [32, 128] batch (the first 32 sentences), 1 thread,
process CPU time, best of ``--rounds`` loops timed round-robin over all
variants so that every ratio compares runs under the same load.

onnxruntime runs refcomp's own float export (refcomp.onnx.export) and
onnxruntime.quantization.quantize_dynamic of that file (per channel, int8
weights: its recommended CPU setting), with intra_op_num_threads = 1 and its
default graph optimizations. NumPy's BLAS is limited to one thread.

The refcomp variants are the named recipes of refcomp.pipelines.minilm; the
static and GPTQ ones calibrate on the last 64 sentences (448..511).

A benchmark, not a test: it asserts nothing about speed. --quick: 128
sentences, 2 rounds, no unpadded column, none of the slow-to-compress recipes
(GPTQ, mixed, SparseGPT, low-rank). --only R [R ...]: these recipes (and fp32
and onnxruntime, for the ratios).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved_best, machine  # noqa: E402

from refcomp.io import save_model  # noqa: E402
from refcomp.models import minilm  # noqa: E402
from refcomp.models.minilm_l6 import mean_pool  # noqa: E402
from refcomp.onnx import export  # noqa: E402
from refcomp.pipelines.minilm import RECIPES, calibration_batches, compress_minilm, nn_at_k  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("REFCOMP_MINILM_GOLDEN", REPO.parent / "shared" / "data" / "minilm"))


#: the recipes timed and scored (refcomp.pipelines.minilm.RECIPES), in table order
VARIANTS = ["fp32", "w8a8-dynamic", "w8a8-dynamic-per-token", "w8a8-dynamic-per-token-int8-emb", "w8a8-static",
            "w8a8-static-smoothquant", "w4-rtn-g128", "w4-gptq-g128", "w4w8-mixed-g128", "ffn-sparse50-sparsegpt",
            "ffn-2of4-sparsegpt", "ffn-lowrank256-whitened"]
#: the slow-to-compress ones --quick leaves out
SLOW = ("w4-gptq-g128", "w4w8-mixed-g128", "ffn-sparse50-sparsegpt", "ffn-2of4-sparsegpt", "ffn-lowrank256-whitened")
#: calibration sentences of the static and GPTQ recipes: the last 64 of the 512 (they are also among
#: the 512 scored, 12.5 % of them; the first 448 alone give the same digits to ±0.0003)
CALIBRATION = slice(448, 512)


def refcomp_variants(fp32, sentences, quick=False, only=None):
    """name -> model, each a recipe applied to the fp32 graph (``only``: these and fp32)."""
    calib = calibration_batches(sentences[CALIBRATION])
    names = [v for v in VARIANTS if not (quick and v in SLOW) and (only is None or v in only or v == "fp32")]
    out = {}
    for v in names:
        t = time.perf_counter()
        out[f"refcomp {v}"] = compress_minilm(fp32, v, calib if RECIPES[v][1] else None)[0]
        print(f"  {v}: compressed in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out


class Ort:
    def __init__(self, path: str):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, ids, mask):
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def embeddings(run, ids, mask, batch=32):
    out = []
    for i in range(0, len(ids), batch):
        m = mask[i:i + batch]
        t = int(m.sum(axis=1).max()) if batch == 1 else ids.shape[1]   # unpadded: each sentence its own length
        out.append(mean_pool(run(ids[i:i + batch, :t], m[:, :t]), m[:, :t]))
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--only", nargs="+", choices=VARIANTS, help="only these recipes (and fp32, onnxruntime)")
    args = ap.parse_args(argv)
    with np.load(GOLDEN / "golden.npz", allow_pickle=False) as z:
        g = {k: z[k] for k in z.files}
    n = 128 if args.quick else 512
    ids, mask = g["input_ids"][:n].astype(np.int64), g["attention_mask"][:n].astype(np.int64)
    ref, ref_unpadded = g["embeddings"][:n], g["embeddings_unpadded"][:n]

    fp32 = minilm()
    runs = {}
    sizes = {}
    tmp = Path(tempfile.mkdtemp(prefix="refcomp_minilm_"))
    sentences = (GOLDEN / "sentences.txt").read_text(encoding="utf-8").splitlines()
    for name, model in refcomp_variants(fp32, sentences, args.quick, args.only).items():
        path = tmp / f"{len(runs)}.rcm"
        save_model(model, path)
        sizes[name] = path.stat().st_size
        runs[name] = model
    shapes = {"input_ids": (32, "T"), "attention_mask": (32, "T")}        # any sentence length
    export(fp32, tmp / "fp32.onnx", input_shape=shapes, input_dtypes={k: "int64" for k in shapes})
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), per_channel=True,
                         weight_type=QuantType.QInt8)
    for name, file in (("onnxruntime fp32", "fp32.onnx"), ("onnxruntime quantize_dynamic, per channel", "int8.onnx")):
        runs[name] = Ort(str(tmp / file))
        sizes[name] = (tmp / file).stat().st_size

    rows = []
    for name, run in runs.items():
        t0 = time.perf_counter()
        e = embeddings(run, ids, mask)
        cos = (e * ref).sum(axis=1)
        row = {"variant": name, "cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
               "nn10": nn_at_k(e, ref), "mb": sizes[name] / 1e6}
        if not args.quick:
            row["nn10_unpadded"] = nn_at_k(embeddings(run, ids, mask, batch=1), ref_unpadded)
        row["eval_s"] = time.perf_counter() - t0
        rows.append(row)
        print(f"  evaluated {name} ({row['eval_s']:.0f} s)", file=sys.stderr)

    b_ids, b_mask = ids[:32], mask[:32]
    cands = {name: ((lambda r=run: r(b_ids, b_mask)), time.process_time) for name, run in runs.items()}
    best = interleaved_best(cands, min_time=1.0, rounds=2 if args.quick else args.rounds)
    ort_int8 = best["onnxruntime quantize_dynamic, per channel"]
    ort_fp32 = best["onnxruntime fp32"]
    for row in rows:
        row["ms"] = best[row["variant"]] * 1e3
        row["x_ort_int8"] = best[row["variant"]] / ort_int8
        row["x_ort_fp32"] = best[row["variant"]] / ort_fp32

    print(f"machine: {machine()}")
    rounds = 2 if args.quick else args.rounds
    print(f"sentences: {n}; latency: one [32, 128] batch, 1 thread, CPU time, best of {rounds} interleaved")
    head = "| variant | cos mean | cos min | NN@10 | NN@10 unpadded | MB | ms | × ORT int8 | × ORT fp32 |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for r in rows:
        un = f"{r['nn10_unpadded']:.3f}" if "nn10_unpadded" in r else "–"
        print(f"| {r['variant']} | {r['cos_mean']:.4f} | {r['cos_min']:.4f} | {r['nn10']:.3f} | {un} | "
              f"{r['mb']:.1f} | {r['ms']:.0f} | {r['x_ort_int8']:.2f} | {r['x_ort_fp32']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
