"""Distillation on MNIST: teacher 784-1200-1200-10, small student, alone vs distilled.

    nice -n 10 .venv/bin/python benchmarks/results_distill.py [--hidden 30] [--epochs 20]

MNIST test set split 8,000 / 2,000 (seed 0), pixels in [0, 1]. Teacher:
784-1200-1200-10 ReLU MLP, SGD momentum 0.9, lr 0.05 cosine, batch 64, seed 0
(cached in benchmarks/results_cache/teacher_1200.npz). Student 784-H-10 trained
with the same optimiser and epochs twice from the same init: on the labels
alone (CE), and with refcomp.compress.distill_train (α, T). Prints test errors
(out of 2,000) and the fraction of the student-teacher gap closed.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

from refcomp import datasets  # noqa: E402
from refcomp.compress.distill_train import distill_train  # noqa: E402
from refcomp.io import load_model, save_model  # noqa: E402
import numpy as np  # noqa: E402

from refcomp.nn import Dropout, Flatten, Linear, ReLU, Sequential, evaluate, train  # noqa: E402

CACHE = Path(__file__).resolve().parent / "results_cache"


def mlp(sizes, seed, dropout=0.0):
    """784-...-10 ReLU MLP; ``dropout`` > 0 adds Dropout after every hidden ReLU."""
    rng = np.random.default_rng(seed)
    layers = [("flatten", Flatten())]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append((f"fc{i + 1}", Linear(a, b, rng=rng)))
        if i < len(sizes) - 2:
            layers.append((f"relu{i + 1}", ReLU()))
            if dropout:
                layers.append((f"drop{i + 1}", Dropout(dropout, rng=rng)))
    return Sequential(*layers)


def teacher(train_set, epochs, dropout=0.0):
    path = CACHE / ("teacher_1200.npz" if not dropout else f"teacher_1200_dropout{dropout}.npz")
    if path.exists():
        return load_model(path)
    m = mlp([784, 1200, 1200, 10], 0, dropout)
    train(m, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine", rng=0,
          progress=False)
    CACHE.mkdir(exist_ok=True)
    save_model(m, path, metadata={"epochs": epochs})
    return m


def run(hidden: int, epochs: int, alpha: float, temperature: float, teacher_epochs: int) -> dict:
    train_set, test_set = datasets.mnist_split()
    n = len(test_set[1])
    t0 = time.perf_counter()
    tm = teacher(train_set, teacher_epochs)
    t_err = round((1 - evaluate(tm, test_set)["accuracy"]) * n)
    alone = mlp([784, hidden, 10], 1)
    train(alone, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine", rng=0,
          progress=False)
    a_err = round((1 - evaluate(alone, test_set)["accuracy"]) * n)
    st = mlp([784, hidden, 10], 1)
    distill_train(st, tm, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, alpha=alpha,
                  temperature=temperature, rng=0)
    d_err = round((1 - evaluate(st, test_set)["accuracy"]) * n)
    gap = a_err - t_err
    return {"hidden": hidden, "epochs": epochs, "alpha": alpha, "T": temperature, "teacher_errors": t_err,
            "student_alone_errors": a_err, "distilled_errors": d_err,
            "gap_closed": (a_err - d_err) / gap if gap > 0 else float("nan"),
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[30])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, nargs="+", default=[4.0])
    args = ap.parse_args()
    for h in args.hidden:
        for T in args.temperature:
            print(json.dumps(run(h, args.epochs, args.alpha, T, args.teacher_epochs)), flush=True)


if __name__ == "__main__":
    main()
