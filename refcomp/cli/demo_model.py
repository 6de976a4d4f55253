"""The model half of ``refcomp demo``: compress a small trained network end to end.

The embedded default needs no download: scikit-learn's bundled 8×8 digits
(1,797 images; 1,437 train / 360 test, seed-0 permutation, as
``refcomp compress --model digits_mlp`` splits them) and the digits MLP
(64-128-10, ReLU) trained by refcomp.nn. Then, from the same trained model:

1. **W8A8 post-training static quantization, integer-only** (int8 per-channel
   symmetric weights, uint8 per-tensor activations calibrated with min-max,
   int32 accumulation through ``matmul_integer``, fixed-point requantization):
   accuracy, stored bytes, and whether the integer output codes equal the
   fake-quant simulation on every test image (docs/results.md).
2. **Deep Compression** (prune → retrain → k-means weight sharing → centroid
   fine-tuning → Huffman; docs/deep_compression.md): accuracy and the size of
   the weights as stored (relative-index CSR, cluster indices, codebooks).
"""

from __future__ import annotations

import time

import numpy as np

from .. import datasets, models
from ..compress.quantize.integer_model import integer_bytes, output_codes
from ..compress.quantize.ptq import quantize_static
from ..compress.quantize.simulate import simulate
from ..nn.train import evaluate, train
from ..pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline

__all__ = ["run_model_demo", "format_model_report"]


def _float_bytes(model) -> int:
    return int(sum(p.data.size for p in model.parameters()) * 4)


def run_model_demo(seed: int = 0, epochs: int = 30, log=None) -> dict:
    """Train the digits MLP, quantize it (W8A8 integer-only) and Deep-Compress it; return the rows."""
    say = log or (lambda s: None)
    train_set, test_set = datasets.load_split("digits", seed=0)

    t = time.perf_counter()
    model = models.digits_mlp(seed)
    train(model, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine",
          rng=seed, progress="auto")
    acc_float = evaluate(model, test_set)["accuracy"]
    dense = _float_bytes(model)
    say(f"trained digits MLP ({epochs} epochs, {time.perf_counter() - t:.1f} s): {100 * acc_float:.2f} %")
    rows = [{"method": "float32 (refcomp.nn)", "accuracy": acc_float, "bytes": dense, "ratio": 1.0, "note": ""}]

    t = time.perf_counter()
    int_model, _ = quantize_static(model, train_set[0][:500], observer="minmax", activation_dtype="uint8")
    acc_int = evaluate(int_model, test_set)["accuracy"]
    codes = output_codes(int_model, test_set[0])
    sim_codes = simulate(int_model, test_set[0])
    differ = int(np.count_nonzero(codes != sim_codes))
    say(f"W8A8 integer-only PTQ ({time.perf_counter() - t:.1f} s): {100 * acc_int:.2f} %")
    int_bytes = integer_bytes(int_model)
    rows.append({"method": "W8A8 PTQ, integer-only (min-max)", "accuracy": acc_int, "bytes": int_bytes,
                 "ratio": dense / int_bytes,
                 "note": f"integer vs fake-quant simulation: {differ} of {codes.size} output codes differ"})

    t = time.perf_counter()
    dc_model = models.digits_mlp(seed)
    dc_model.load_state_dict(model.state_dict())
    result = run_pipeline(dc_model, train_set, test_set, PipelineConfig(**PRESETS["digits_mlp"]),
                          progress="auto")
    total = result.table[-1]
    say(f"Deep Compression ({time.perf_counter() - t:.1f} s): {100 * result.accuracy['compressed']:.2f} %")
    stored = int(total["pqh_bytes"] + result.bias_bytes)
    rows.append({"method": "Deep Compression (P+Q+H)", "accuracy": result.accuracy["compressed"], "bytes": stored,
                 "ratio": result.dense_bytes / stored,
                 "note": f"{total['kept_pct']:.0f} % of weights kept; weights alone {result.weights_ratio:.1f}x"})
    return {"config": {"seed": seed, "epochs": epochs, "dataset": "digits (1437 train / 360 test, seed 0)",
                       "model": "digits_mlp 64-128-10"}, "rows": rows}


def format_model_report(result: dict) -> str:
    cfg = result["config"]
    head = f"{'method':<34} {'test acc':>8} {'bytes':>7} {'x smaller':>9}  note"
    lines = [f"Whole model: {cfg['model']} on {cfg['dataset']}, trained {cfg['epochs']} epochs (seed {cfg['seed']}):",
             head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['method']:<34} {100 * r['accuracy']:>7.2f}% {r['bytes']:>7d} {r['ratio']:>9.1f}  {r['note']}")
    return "\n".join(lines)
