"""The results table of docs/results.md: accuracy and model bytes of every compression on LeNets.

    nice -n 10 .venv/bin/python benchmarks/results_table.py [--models lenet5 lenet_300_100] [--quick]
                                                            [--sections dfq conv_lowrank ...]

Data: the MNIST test set split 8,000 / 2,000 by the seed-0 permutation
(refcomp.datasets.mnist_fixture), pixels in [0, 1]. The float models come from
benchmarks/results_train.py (trained on first use, then cached). Calibration
uses the first 1,000 training images; every fine-tune runs on the 8,000
training images with SGD momentum 0.9, batch 64, batch order seed 0.
Accuracy is on the 2,000 test images; bytes count every stored array
(weights in their format, biases, scales, zero points, multipliers).

Writes benchmarks/results_cache/results.json (or results_<sections>.json
when only some sections run) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_train import CACHE, float_model  # noqa: E402

from refcomp import datasets  # noqa: E402
from refcomp.compress.lowrank.model import factorize_model  # noqa: E402
from refcomp.compress.precision.model import cast_model, select_layer_bits  # noqa: E402
from refcomp.compress.quantize.dynamic import quantize_dynamic  # noqa: E402
from refcomp.compress.quantize.lowbit_model import lowbit_bytes, prepare_lowbit  # noqa: E402
from refcomp.compress.quantize.integer_model import integer_bytes, output_codes  # noqa: E402
from refcomp.compress.quantize.ptq import quantize_static  # noqa: E402
from refcomp.compress.quantize.qat import prepare_qat, to_integer, train_qat  # noqa: E402
from refcomp.compress.quantize.simulate import simulate  # noqa: E402
from refcomp.compress.quantize.weight_only import model_bytes, quantize_weights  # noqa: E402
from refcomp.nn import evaluate, train  # noqa: E402

SVD_RANKS = {"lenet5": {"fc1": [32, 16]}, "lenet_300_100": {"fc1": [64, 32], "fc2": [32, 16]}}
# conv2 of LeNet-5 (50, 20, 5, 5): SVD ranks of the (50, 500) reshaped kernel, Tucker-2 (r_out, r_in)
CONV_RANKS = {"lenet5": {"conv2": [16, 8, (16, 8), (8, 4)]}}
SECTIONS = ("ptq", "dynamic", "qat", "weight_only", "layer_bits", "lowbit", "svd", "half", "dfq", "conv_lowrank")


def run_model(name: str, quick: bool, sections=SECTIONS) -> list[dict]:
    (tr, te) = datasets.mnist_fixture()
    calib = tr[0][:1000]
    base = float_model(name)
    rows = []
    t_all = time.perf_counter()

    def add(method, model, nbytes, note="", **extra):
        acc = evaluate(model, te)["accuracy"]
        rows.append({"model": name, "method": method, "accuracy": acc, "bytes": int(nbytes), "note": note, **extra})
        print(f"{name:14s} {method:40s} {100 * acc:6.2f} % {nbytes:9d} B  {note}  "
              f"[{time.perf_counter() - t_all:.0f} s]", flush=True)

    fbytes = model_bytes(base)
    add("float32", base, fbytes)

    # W8A8 static PTQ, integer-only, four calibrations (uint8 activations), and int8 activations
    for obs, act in () if "ptq" not in sections else (("minmax", "uint8"), ("percentile", "uint8"), ("mse", "uint8"), ("entropy", "uint8"),
                     ("minmax", "int8")):
        im, _ = quantize_static(base, calib, observer=obs, activation_dtype=act)
        note = ""
        if obs == "minmax":
            a = output_codes(im, te[0])
            b = simulate(im, te[0])
            note = (f"integer vs fake-quant simulation, all {len(te[1])} test images: "
                    f"{int(np.sum(a != b))} of {a.size} output codes differ")
        add(f"W8A8 PTQ integer-only, {obs}, {act} activations", im, integer_bytes(im), note)

    if "dynamic" in sections:
        dyn, _ = quantize_dynamic(base)
        add("W8 dynamic (activations per batch)", dyn, model_bytes(dyn))

    # W8A8 QAT: observers (frozen after epoch 1) and LSQ; exported to integer-only
    qat_epochs = 1 if quick else 2
    for lsq in (False, True) if "qat" in sections else ():
        q, _ = prepare_qat(base, calib, lsq=lsq)
        train_qat(q, tr, epochs=qat_epochs, freeze_observers_epoch=1, lr=0.005)
        im, _ = to_integer(q)
        add(f"W8A8 QAT{' LSQ' if lsq else ''} ({qat_epochs} ep) integer-only", im, integer_bytes(im))

    # weight-only RTN vs GPTQ
    configs = [(8, None), (4, None), (4, 128), (4, 32), (2, 16)]
    for bits, group in configs if "weight_only" in sections else ():
        for method in ("rtn", "gptq"):
            q, rep = quantize_weights(base, bits=bits, group_size=group, method=method, calibration_x=calib)
            err = sum(r["output_mse"] for r in rep.values())
            g = "per channel" if group is None else f"g{group}"
            add(f"W{bits} weight-only {method.upper()} {g}", q, model_bytes(q), f"Σ layer output MSE {err:.3g}",
                output_mse=err)

    # per-layer widths from a sensitivity sweep under a 3 bits/weight budget vs uniform widths (RTN, groups of 16)
    if "layer_bits" in sections:
        q, _ = quantize_weights(base, bits=4, group_size=16)
        add("W4 weight-only RTN g16", q, model_bytes(q))
        alloc, _ = select_layer_bits(base, calib, 3.0, bit_choices=(2, 4, 8), group_size=16)
        q, _ = quantize_weights(base, bits=alloc.bits, group_size=16)
        add("W{2,4,8} per layer, ≤ 3 bits/weight, RTN g16", q, model_bytes(q),
            "widths " + ", ".join(f"{k} {v}" for k, v in alloc.bits.items()))

    # binary / ternary, retrained with the STE
    lb_epochs = 1 if quick else 3
    for kind in ("binary", "ternary") if "lowbit" in sections else ():
        q, _ = prepare_lowbit(base, kind)
        before = evaluate(q, te)["accuracy"]
        train(q, tr, epochs=lb_epochs, lr=0.01, momentum=0.9, rng=0, progress=False)
        add(f"{kind} weights, retrained {lb_epochs} ep", q, lowbit_bytes(q),
            f"before retraining {100 * before:.2f} %")

    # SVD of the fully connected layers at two ranks, fine-tuned
    ranks = SVD_RANKS[name]
    n_settings = len(next(iter(ranks.values())))
    ft_epochs = 1 if quick else 2
    for i in range(n_settings) if "svd" in sections else ():
        setting = {layer: r[i] for layer, r in ranks.items()}
        f, _ = factorize_model(base, setting)
        before = evaluate(f, te)["accuracy"]
        train(f, tr, epochs=ft_epochs, lr=0.005, momentum=0.9, rng=0, progress=False)
        desc = ", ".join(f"{k} r={v}" for k, v in setting.items())
        add(f"SVD {desc}, fine-tuned {ft_epochs} ep", f, model_bytes(f), f"before fine-tuning {100 * before:.2f} %")

    for dt in ("float16", "bfloat16") if "half" in sections else ():
        h, _ = cast_model(base, dt)
        add(f"{dt} weights", h, model_bytes(h))

    # cross-layer equalization and bias correction inside static PTQ (min-max, uint8 activations);
    # 4-bit codes are held in int8 by the integer model, so W4 bytes equal W8 bytes here
    # (note: logit error against float on the test images: MSE, and the mean over classes of |mean shift|,
    # the quantity bias correction targets)
    y_float = base.forward(te[0]).astype(np.float64) if "dfq" in sections else None
    for bits, gran in ((8, "per_channel"), (8, "per_tensor"), (4, "per_channel"), (4, "per_tensor"),
                       (2, "per_channel")) if "dfq" in sections else ():
        for eq, bc in ((False, False), (True, False), (False, True), (True, True)):
            im, _ = quantize_static(base, calib, weight_bits=bits, weight_granularity=gran, equalize=eq,
                                 bias_correction=bc)
            d = im.forward(te[0]).astype(np.float64) - y_float
            mse, shift = float(np.mean(d * d)), float(np.mean(np.abs(d.mean(axis=0))))
            extra = "".join((" + CLE" if eq else "", " + BC" if bc else ""))
            held = f"; {bits}-bit codes held in int8" if bits < 8 else ""
            add(f"W{bits}A8 PTQ integer-only, minmax, weights {gran.replace('_', ' ')}{extra}", im, integer_bytes(im),
                f"logit MSE {mse:.3g}, mean shift {shift:.3g}{held}", logit_mse=mse, logit_shift=shift)

    # low-rank convolutions (LeNet-5 conv2): SVD of the reshaped kernel (two convs) and Tucker-2 (three)
    for layer, settings in CONV_RANKS.get(name, {}).items() if "conv_lowrank" in sections else ():
        n_orig = base[layer].weight.to_dense().size
        for r in settings:
            f, _ = factorize_model(base, {layer: r})
            before = evaluate(f, te)["accuracy"]
            n_new = sum(sub.weight.to_dense().size for _, sub in f[layer].layers.items())
            train(f, tr, epochs=ft_epochs, lr=0.005, momentum=0.9, rng=0, progress=False)
            desc = f"Tucker-2 {layer} (r_out, r_in)={r}" if isinstance(r, tuple) else f"SVD {layer} r={r}"
            add(f"{desc}, fine-tuned {ft_epochs} ep", f, model_bytes(f),
                f"before fine-tuning {100 * before:.2f} %; {layer} weights {n_orig:,} → {n_new:,}")
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| model | method | test accuracy | bytes | × smaller | note |", "|---|---|---|---|---|---|"]
    floats = {r["model"]: r for r in rows if r["method"] == "float32"}
    for r in rows:
        f = floats[r["model"]]
        out.append(f"| {r['model']} | {r['method']} | {100 * r['accuracy']:.2f} % | {r['bytes']:,} | "
                   f"{f['bytes'] / r['bytes']:.1f} | {r['note']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet5", "lenet_300_100"])
    ap.add_argument("--quick", action="store_true", help="1-epoch fine-tunes (a smoke run)")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                    help="run only these groups of rows (the float32 row always runs)")
    args = ap.parse_args()
    t = time.perf_counter()
    rows = []
    for name in args.models:
        rows += run_model(name, args.quick, tuple(args.sections))
    CACHE.mkdir(exist_ok=True)
    out = "results.json" if set(args.sections) == set(SECTIONS) else f"results_{'_'.join(args.sections)}.json"
    (CACHE / out).write_text(json.dumps(rows, indent=1))
    print(f"\n{markdown(rows)}\n\ntotal {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
