"""Quantization techniques of issue 14 on the papers' protocol: fully binary, power-of-two, mixed widths.

    nice -n 10 .venv/bin/python benchmarks/protocol_quantization.py [--models lenet_300_100 lenet5] [--seed 0]
                                                                  [--quick] [--json out.json]

Every row starts from the float baseline of benchmarks/protocol_common.py
(trained on 55,000 images, cached). Settings are chosen on the 5,000
validation images; the test errors (10,000 images) are read once, for the
chosen setting only. Rows:

* binary — refcomp.compress.quantize.binary_model.binarize_model (XNOR
  weights with per-channel α and BinarySign activations in the hidden
  layers, first and last layer float32 as XNOR-Net; or the first layer's
  weights binary too, its input real, as BNN), retrained from the float
  weights with SGD + cosine; the learning rate is chosen on val. Test errors are
  counted on the packed path (PackedBinaryModel: the hidden layers run the
  bit-count op), checked equal to the float ±1 model's predictions.
  Paper: BNN (Hubara, Courbariaux et al. 2016, arXiv:1602.02830, Table 1)
  on MNIST, a different network (an MLP of three 4,096-unit binary hidden
  layers with batch norm; 2,048 for the Torch7 run).
* pow2 PTQ / pow2 fine-tuned — refcomp.compress.quantize.shift_model with
  ``bits``-bit logarithmic weights (per layer) and 8-bit power-of-two
  activations, run as the shift-only integer model; fine-tuning by
  prepare_power_of_two (STE), learning rate chosen on val. No MNIST row in
  Miyashita et al. 2016 (CIFAR-10 / ImageNet only).
* RTN uniform b / mixed — weight-only RTN (groups of 16, float32 scales),
  every layer at b bits, and refcomp.compress.precision.mixed_bits_model
  with a budget halfway between the stored bytes of uniform 2 and 4 bits
  (3-bit codes are stored in int4 containers, so uniform 3 bits costs what
  4 bits does; sensitivities measured on 1,000 training images); bytes are the model's measured bytes (codes, scales,
  biases). No MNIST row in HAWQ (ImageNet).

``--quick`` runs everything on 500 / 250 / 250 images (the baseline on
protocol_common's quick 2,000) with one epoch to check the script (< 1 min
once the quick baselines are cached), never to report.
"""

from __future__ import annotations

import argparse
import json
import time

import protocol_common as pc  # first: it pins the BLAS (threads, kernels) before NumPy loads it
import numpy as np

from refcomp.compress.precision.model import mixed_bits_model, model_bytes
from refcomp.compress.quantize.binary_model import PackedBinaryModel, binarize_model, binary_bytes
from refcomp.compress.quantize.shift_model import power_of_two_model, prepare_power_of_two
from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.nn import SGD, train

PAPER_BINARY = "BNN 0.96 % (Theano), 1.40 % (Torch7); 3x4096 MLP"
EPOCHS = {"binary": {"lenet_300_100": 10, "lenet5": 5}, "pow2": {"lenet_300_100": 3, "lenet5": 2}}
LRS = {"binary": [0.01, 0.003], "pow2": [0.003, 0.001]}


def _errors_of(forward, dataset, batch=500) -> tuple[int, np.ndarray]:
    x, y = dataset
    pred = np.concatenate([np.argmax(forward(x[i:i + batch]), axis=1) for i in range(0, len(y), batch)])
    return int(np.sum(pred != y)), pred


def _retrain(model, train_set, epochs, lr, seed):
    sgd = SGD(model.parameters(), lr=lr, momentum=0.9)
    train(model, train_set, epochs=epochs, batch_size=64, optimizer=sgd, schedule="cosine", rng=seed, progress=False)
    return model


def _choose(make, train_set, val_set, epochs, lrs, seed, quick):
    """Train one candidate per learning rate; keep the one with the fewest val errors."""
    best = None
    for lr in lrs[:1] if quick else lrs:
        m = _retrain(make(), train_set, epochs, lr, seed)
        v = pc.errors(m, val_set)
        if best is None or v < best[1]:
            best = (m, v, lr)
    return best


def rows_for(name, seed, quick):
    base, rec = pc.baseline(name, seed=seed, quick=quick)
    train_set, val_set, test_set = pc.data(quick=quick)
    if quick:  # fewer still than protocol_common's quick slice: the whole script in under a minute
        train_set, val_set, test_set = (tuple(a[:n] for a in s) for s, n in
                                        ((train_set, 500), (val_set, 250), (test_set, 250)))
    float_bytes = model_bytes(base)
    out = [{"model": name, "technique": "float", "setting": "baseline", "val_errors": pc.errors(base, val_set),
            "test_errors": pc.errors(base, test_set), "bytes": float_bytes, "paper": "", "seconds": rec["train_seconds"]}]

    for first in (False, True):
        t = time.perf_counter()
        epochs = 1 if quick else EPOCHS["binary"][name]
        m, v, lr = _choose(lambda: binarize_model(base, binary_first=first)[0], train_set, val_set, epochs,
                           LRS["binary"], seed, quick)
        test_err, pred = _errors_of(PackedBinaryModel(m).forward, test_set)
        _, pred_float = _errors_of(m.eval().forward, test_set)
        assert np.array_equal(pred, pred_float), "packed and float binary models disagree"
        what = "first layer W binary (BNN)" if first else "first + last float (XNOR-Net)"
        out.append({"model": name, "technique": f"binary W + A, {what}, packed", "setting": f"lr {lr}, {epochs} ep",
                    "val_errors": v, "test_errors": test_err, "bytes": binary_bytes(m), "paper": PAPER_BINARY,
                    "seconds": pc.seconds_since(t)})

    calib = train_set[0][:200 if quick else 1000]
    for bits in (4,) if quick else (4, 3):
        t = time.perf_counter()
        sm, rep = power_of_two_model(base, calib, bits=bits)
        v, _ = _errors_of(sm.forward, val_set)
        test_err, _ = _errors_of(sm.forward, test_set)
        out.append({"model": name, "technique": f"pow2 PTQ W{bits} A8 (shifts)", "setting": "-", "val_errors": v,
                    "test_errors": test_err, "bytes": rep["bytes"], "paper": "", "seconds": pc.seconds_since(t)})
        t = time.perf_counter()
        epochs = 1 if quick else EPOCHS["pow2"][name]
        m, _, lr = _choose(lambda: prepare_power_of_two(base, bits), train_set, val_set, epochs, LRS["pow2"], seed,
                           quick)
        sm, rep = power_of_two_model(m, calib, bits=bits)
        v, _ = _errors_of(sm.forward, val_set)
        test_err, _ = _errors_of(sm.forward, test_set)
        out.append({"model": name, "technique": f"pow2 fine-tuned W{bits} A8 (shifts)",
                    "setting": f"lr {lr}, {epochs} ep", "val_errors": v, "test_errors": test_err,
                    "bytes": rep["bytes"], "paper": "", "seconds": pc.seconds_since(t)})

    uniform = {}
    for bits in (2, 3, 4):
        t = time.perf_counter()
        q, _ = quantize_weights(base, bits=bits, group_size=16)
        uniform[bits] = model_bytes(q)
        out.append({"model": name, "technique": f"RTN uniform W{bits} g16", "setting": "-",
                    "val_errors": pc.errors(q, val_set), "test_errors": pc.errors(q, test_set),
                    "bytes": uniform[bits], "paper": "", "seconds": pc.seconds_since(t)})
    t = time.perf_counter()
    # 3-bit codes are stored in int4 containers (the bytes of 4 bits): the budget halfway between W2 and W4
    q, rep = mixed_bits_model(base, calib, (uniform[2] + uniform[4]) // 2, bit_choices=(2, 3, 4, 8))
    out.append({"model": name, "technique": "RTN mixed, budget = mean of W2 and W4 bytes",
                "setting": " ".join(f"{k}:{b}" for k, b in rep["bits"].items()),
                "val_errors": pc.errors(q, val_set), "test_errors": pc.errors(q, test_set),
                "bytes": rep["bytes"], "paper": "", "seconds": pc.seconds_since(t)})
    n_test = len(test_set[1])
    for r in out:
        r.update(seed=seed, n_val=len(val_set[1]), n_test=n_test, ratio=round(float_bytes / r["bytes"], 1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet_300_100", "lenet5"], choices=["lenet_300_100", "lenet5"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a small run that only checks the script")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    print(pc.PROTOCOL + (" [QUICK: 500 / 250 / 250 images, 1 epoch: checks the script only]" if args.quick else ""))
    print("| model | technique | setting (chosen on val) | val errors | test errors | test error | bytes | x smaller "
          "| paper (test error) | wall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models:
        for r in rows_for(name, args.seed, args.quick):
            rows.append(r)
            print(f"| {r['model']} | {r['technique']} | {r['setting']} | {r['val_errors']} | {r['test_errors']} | "
                  f"{100 * r['test_errors'] / r['n_test']:.2f} % | {r['bytes']:,} | {r['ratio']} | {r['paper']} | "
                  f"{r['seconds']:.0f} s |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
