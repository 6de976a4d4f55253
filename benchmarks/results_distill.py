"""Distillation on MNIST: teacher 784-1200-1200-10, small student, alone vs distilled.

    nice -n 10 .venv/bin/python benchmarks/results_distill.py [--hidden 30] [--alpha 0.1] [--temperature 3]

MNIST test set split 8,000 / 2,000 (seed 0), pixels in [0, 1]. Teacher:
784-1200-1200-10 ReLU MLP with dropout 0.5 after each hidden layer, SGD
momentum 0.9, lr 0.05 cosine, batch 64, 30 epochs, seed 0 (cached in
benchmarks/results_cache/). Student 784-H-10, for each seed: trained on the
labels alone (cross-entropy), and from the same initialisation with the same
batch order by refcomp.compress.distill.train (α, T), same epochs and
optimiser. Prints one JSON line: test errors (out of 2,000) per seed, their
means and the fraction of the student-teacher gap the distilled student closes.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from refcomp import datasets  # noqa: E402
from refcomp.compress.distill.train import distill_train  # noqa: E402
from refcomp.io import load_model, save_model  # noqa: E402
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


def teacher(train_set, epochs, dropout=0.0, tag=""):
    """The 784-1200-1200-10 teacher trained on ``train_set`` (cached under a name with ``tag``)."""
    path = CACHE / (f"teacher_1200{tag}.npz" if not dropout else f"teacher_1200{tag}_dropout{dropout}.npz")
    if path.exists():
        return load_model(path)
    m = mlp([784, 1200, 1200, 10], 0, dropout)
    train(m, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine", rng=0,
          progress=False)
    CACHE.mkdir(exist_ok=True)
    save_model(m, path, metadata={"epochs": epochs})
    return m


def errors(model, test_set) -> int:
    return int(round((1 - evaluate(model, test_set)["accuracy"]) * len(test_set[1])))


def run(hidden: int, epochs: int, alpha: float, temperature: float, teacher_epochs: int, teacher_dropout: float,
        seeds: list[int]) -> dict:
    """Teacher errors, and per seed the errors of the student alone and distilled (same init, same batches)."""
    train_set, test_set = datasets.mnist_fixture()
    t0 = time.perf_counter()
    tm = teacher(train_set, teacher_epochs, teacher_dropout)
    t_err = errors(tm, test_set)
    alone, distilled = [], []
    for seed in seeds:
        a = mlp([784, hidden, 10], seed)
        train(a, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine", rng=seed,
              progress=False)
        alone.append(errors(a, test_set))
        d = mlp([784, hidden, 10], seed)
        distill_train(d, tm, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, alpha=alpha,
                      temperature=temperature, rng=seed)
        distilled.append(errors(d, test_set))
    gap = float(np.mean(alone)) - t_err
    return {"student": f"784-{hidden}-10", "epochs": epochs, "alpha": alpha, "T": temperature,
            "teacher": f"784-1200-1200-10, dropout {teacher_dropout}, {teacher_epochs} epochs",
            "teacher_errors": t_err, "seeds": seeds, "student_alone_errors": alone, "distilled_errors": distilled,
            "mean_alone": float(np.mean(alone)), "mean_distilled": float(np.mean(distilled)),
            "gap_closed": (float(np.mean(alone)) - float(np.mean(distilled))) / gap if gap > 0 else float("nan"),
            "seconds": round(time.perf_counter() - t0, 1)}


def select(hidden: int, epochs: int, teacher_epochs: int, teacher_dropout: float, seeds: list[int],
           temperatures=(2.0, 3.0, 4.0, 6.0, 8.0), alphas=(0.0, 0.1, 0.3, 0.5)) -> dict:
    """Choose (T, α) on a validation split: the last 1,000 of the 8,000 training images
    (never the test images). A separate teacher is trained on the first 7,000 only: a
    teacher that has seen the validation images leaks them into its soft targets."""
    train_set, _ = datasets.mnist_fixture()
    x, y = train_set
    fit, val = (x[:7000], y[:7000]), (x[7000:], y[7000:])
    tm = teacher(fit, teacher_epochs, teacher_dropout, tag="_fit7000")
    scores = {}
    for T in temperatures:
        for a in alphas:
            errs = []
            for seed in seeds:
                d = mlp([784, hidden, 10], seed)
                distill_train(d, tm, fit, epochs=epochs, alpha=a, temperature=T, rng=seed)
                errs.append(errors(d, val))
            scores[(T, a)] = float(np.mean(errs))
            print(json.dumps({"T": T, "alpha": a, "val_errors": errs}), flush=True)
    (T, a), best = min(scores.items(), key=lambda kv: kv[1])
    return {"T": T, "alpha": a, "val_errors": best}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--teacher-dropout", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--select", action="store_true",
                    help="choose T and alpha on a 7,000 / 1,000 split of the training images first")
    args = ap.parse_args()
    alpha, temperature = args.alpha, args.temperature
    if args.select:
        best = select(args.hidden, args.epochs, args.teacher_epochs, args.teacher_dropout, args.seeds)
        print(json.dumps({"selected": best}), flush=True)
        alpha, temperature = best["alpha"], best["T"]
    print(json.dumps(run(args.hidden, args.epochs, alpha, temperature, args.teacher_epochs,
                         args.teacher_dropout, args.seeds)), flush=True)


if __name__ == "__main__":
    main()
