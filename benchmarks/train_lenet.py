"""Accuracy reproduction: train the reference models and print test accuracy.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/train_lenet.py [--models digits_mlp lenet_300_100 lenet5]

Setting (the issue's PyTorch reference): the MNIST test set (10,000 images,
../shared/data/mnist or REFCOMP_MNIST_DIR) split 8,000 train / 2,000 test by
the seed-0 permutation, pixels standardised; SGD momentum 0.9, lr 0.05 with
per-epoch cosine decay, batch 64, batch order from seed 0, model init seed 0.
LeNet-300-100: 20 epochs (target >= 95.5 %), LeNet-5: 15 epochs (>= 98.5 %).
Digits MLP: scikit-learn digits split 1,437 / 360 (seed 0), 30 epochs (>= 96 %).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from refcomp import datasets, models  # noqa: E402
from refcomp.nn import evaluate, train  # noqa: E402

SETTINGS = {
    "digits_mlp": dict(epochs=30, target=0.96),
    "lenet_300_100": dict(epochs=20, target=0.955),
    "lenet5": dict(epochs=15, target=0.985),
}


def run(name: str, epochs: int | None = None, progress="epoch", seed: int = 0) -> dict:
    """Train one model; ``seed`` drives the init and the batch order (the data split is always seed 0)."""
    s = SETTINGS[name]
    epochs = epochs or s["epochs"]
    train_set, test_set = datasets.load_split("digits" if name == "digits_mlp" else "mnist-fixture", seed=0)
    model = models.build(name, seed)
    t = time.perf_counter()
    train(model, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine",
          rng=seed, progress=progress)
    dt = time.perf_counter() - t
    acc = evaluate(model, test_set)["accuracy"]
    return {"model": name, "epochs": epochs, "test_accuracy": acc, "target": s["target"], "seconds": dt,
            "seed": seed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0],
                    help="init / batch-order seeds (the published figures use 0)")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = ap.parse_args()
    for name in args.models:
        accs = []
        for seed in args.seeds:
            r = run(name, seed=seed, progress=False if args.quiet else "epoch")
            accs.append(r["test_accuracy"])
            ok = "PASS" if r["test_accuracy"] >= r["target"] else "FAIL"
            print(f"{name} seed {seed}: {r['epochs']} epochs, test accuracy {100 * r['test_accuracy']:.2f} % "
                  f"(target {100 * r['target']:.1f} %) {ok}, {r['seconds']:.1f} s", flush=True)
        if len(accs) > 1:
            a = 100 * np.array(accs)
            print(f"{name}: mean {a.mean():.2f} %, min {a.min():.2f} %, max {a.max():.2f} % over seeds {args.seeds}",
                  flush=True)


if __name__ == "__main__":
    main()
