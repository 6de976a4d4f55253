"""The papers' protocol, shared by every benchmarks/protocol_*.py script.

Train on the first 55,000 MNIST training images, choose every hyper-parameter
on the last 5,000 (``val``), report on the 10,000 test images once
(refcomp.datasets.mnist_protocol). The float baselines every compression run
starts from are trained here and cached in benchmarks/results_cache/ (refcomp
model files, no pickle), keyed by model, seed and recipe; ``quick=True`` gives
a small version of everything (2,000 / 1,000 / 1,000 images, 1 epoch) to check
that a script runs, never to report.

Baseline recipe (the Caffe solvers of Deep Compression's LeNets, as close as
this trainer gets): SGD momentum 0.9, batch 64, lr 0.05 with a cosine
schedule, weight decay 5e-4 (SGD's, on every parameter as in Caffe), pixels in [0, 1]; LeNet-300-100
30 epochs, LeNet-5 20 epochs. These were fixed in advance, not tuned; the
validation errors after every epoch are recorded with the model so the choice
can be checked (docs/results.md).
"""

from __future__ import annotations

import os
import platform

# A float result depends on the BLAS kernels that computed it: one thread (a fixed summation split) and,
# on x86-64, OpenBLAS's AVX2 (Haswell) kernels whatever the CPU (an AVX-512 machine otherwise picks its
# own and trains a different LeNet-5: 64 test errors for seed 0 instead of 58). Both must be set before
# NumPy loads OpenBLAS, so every protocol script imports this module first; the environment overrides.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


if platform.machine().lower() in ("x86_64", "amd64") and _has_avx2():
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from refcomp import datasets, models  # noqa: E402
from refcomp.io import load_model, save_model  # noqa: E402
from refcomp.nn import SGD, evaluate, train  # noqa: E402

CACHE = Path(__file__).resolve().parent / "results_cache"
PROTOCOL = ("MNIST, the papers' protocol: train on the first 55,000 training images, choose on the last "
            "5,000, report on the 10,000 test images once")
BASELINE = {"lenet_300_100": dict(epochs=30, lr=0.05, weight_decay=5e-4),
            "lenet5": dict(epochs=20, lr=0.05, weight_decay=5e-4)}


def data(*, flatten: bool = False, quick: bool = False):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)) of the protocol (a small slice when quick)."""
    train_set, val_set, test_set = datasets.mnist_protocol(flatten=flatten)
    if quick:
        train_set = tuple(a[:2000] for a in train_set)
        val_set = tuple(a[:1000] for a in val_set)
        test_set = tuple(a[:1000] for a in test_set)
    return train_set, val_set, test_set


def errors(model, dataset) -> int:
    """Misclassified images of ``dataset`` (the papers count errors on the 10,000 test images)."""
    return int(round((1.0 - evaluate(model, dataset)["accuracy"]) * len(dataset[1])))


def baseline(name: str, *, seed: int = 0, quick: bool = False, progress=False):
    """(the trained float ``name``, its record) — from the cache when present.

    The record holds the recipe, val and test errors and the wall time of training.
    """
    recipe = dict(BASELINE[name])
    if quick:
        recipe["epochs"] = 1
    key = f"protocol_{name}_s{seed}_e{recipe['epochs']}" + ("_quick" if quick else "")
    path, meta = CACHE / f"{key}.npz", CACHE / f"{key}.json"
    if path.exists() and meta.exists():
        return load_model(path), json.loads(meta.read_text())
    train_set, val_set, test_set = data(quick=quick)
    model = models.build(name, seed)
    t = time.perf_counter()
    sgd = SGD(model.parameters(), lr=recipe["lr"], momentum=0.9, weight_decay=recipe["weight_decay"])
    history = train(model, train_set, epochs=recipe["epochs"], batch_size=64, optimizer=sgd, schedule="cosine",
                    rng=seed, val_data=val_set, progress=progress)
    seconds = time.perf_counter() - t
    record = {"model": name, "seed": seed, "recipe": recipe, "train_seconds": round(seconds, 1),
              "blas": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")},
              "val_errors_per_epoch": [int(round((1 - h["val_accuracy"]) * len(val_set[1]))) for h in history],
              "val_errors": errors(model, val_set), "test_errors": errors(model, test_set),
              "n_val": len(val_set[1]), "n_test": len(test_set[1])}
    CACHE.mkdir(exist_ok=True)
    save_model(model, path, metadata={"model": name, "seed": seed})
    meta.write_text(json.dumps(record, indent=1))
    return model, record


def seconds_since(t0: float) -> float:
    return round(time.perf_counter() - t0, 1)


def mean_spread(values) -> str:
    """'mean ± std (min–max)' of a list of numbers (the spread over seeds)."""
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f} ({v.min():g}–{v.max():g})"
