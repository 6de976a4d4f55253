"""Train (or load) the float models the results table starts from.

    nice -n 10 .venv/bin/python benchmarks/results_train.py [--models lenet5 lenet_300_100]

Setting of docs/nn.md §8: MNIST test set split 8,000 / 2,000 (seed 0),
pixels in [0, 1], SGD momentum 0.9, lr 0.05 cosine, batch 64, seeds 0.
The trained models are written to benchmarks/results_cache/<name>.npz
(refcomp.io.save_model, no pickle) and reused by benchmarks/results_table.py.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

from refcomp import datasets, models  # noqa: E402
from refcomp.io import load_model, save_model  # noqa: E402
from refcomp.nn import evaluate, train  # noqa: E402

CACHE = Path(__file__).resolve().parent / "results_cache"
EPOCHS = {"lenet5": 15, "lenet_300_100": 20}


def float_model(name: str, *, epochs: int | None = None, retrain: bool = False, progress=False):
    """The trained float model ``name`` (from the cache when present)."""
    path = CACHE / f"{name}.npz"
    if path.exists() and not retrain:
        return load_model(path)
    (train_set, test_set) = datasets.mnist_fixture(flatten=False)
    model = models.build(name, 0)
    t = time.perf_counter()
    train(model, train_set, epochs=epochs or EPOCHS[name], batch_size=64, lr=0.05, momentum=0.9,
          schedule="cosine", rng=0, progress=progress)
    acc = evaluate(model, test_set)["accuracy"]
    CACHE.mkdir(exist_ok=True)
    save_model(model, path, metadata={"model": name, "epochs": epochs or EPOCHS[name], "test_accuracy": acc,
                                      "train_seconds": time.perf_counter() - t})
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    _, test_set = datasets.mnist_fixture()
    for name in args.models:
        t = time.perf_counter()
        m = float_model(name, retrain=args.retrain, progress="epoch")
        print(name, "accuracy", evaluate(m, test_set)["accuracy"], f"{time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
