"""Training speed: one 8,000-sample epoch of refcomp.nn vs PyTorch CPU, single thread.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nn.py [--repeat 3] [--clock cpu|wall]

Same model, same data (the seeded 8,000-sample MNIST split when the files are
there, else random data of the same shape), same batches (64) and the same
optimizer (SGD, momentum 0.9, lr 0.05). Both run in this process, one thread
each (threadpoolctl limits NumPy's BLAS; torch.set_num_threads(1)), the two
alternating. Prints the best of ``--repeat`` epoch times and the ratio refcomp / torch.
``--clock cpu`` (default) times the process's CPU time, which on a shared
machine measures the code rather than the neighbours; ``--clock wall`` times
elapsed time (equal to CPU time for single-threaded work on a quiet machine). A
benchmark, not a test: nothing here gates CI.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402


def data(n=8000):
    from refcomp import datasets

    try:
        (x, y), _ = datasets.mnist_fixture(n_train=n, n_test=0)
        return x, y, "MNIST 8k split"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n), "random"


CLOCK = time.process_time


def refcomp_epoch(name, x, y, batch):
    from refcomp import models
    from refcomp.nn import train

    m = models.build(name, 0)
    t = CLOCK()
    train(m, (x, y), epochs=1, batch_size=batch, lr=0.05, momentum=0.9, schedule="constant",
          rng=0, progress=False)
    return CLOCK() - t


def torch_model(name):
    import torch.nn as tnn

    if name == "lenet_300_100":
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 300), tnn.ReLU(), tnn.Linear(300, 100),
                              tnn.ReLU(), tnn.Linear(100, 10))
    return tnn.Sequential(tnn.Conv2d(1, 20, 5), tnn.MaxPool2d(2), tnn.Conv2d(20, 50, 5), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(800, 500), tnn.ReLU(), tnn.Linear(500, 10))


def torch_epoch(name, x, y, batch):
    import torch

    torch.manual_seed(0)
    m = torch_model(name)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    t = CLOCK()
    for s in range(0, len(y), batch):
        idx = perm[s:s + batch]
        opt.zero_grad()
        loss = lossf(m(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    return CLOCK() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--models", nargs="+", default=["lenet_300_100", "lenet5"])
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    from threadpoolctl import threadpool_limits

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch not installed: refcomp times only")
    x, y, what = data()
    print(f"data: {what}, {len(y)} samples, batch {args.batch}, best of {args.repeat}, 1 thread, "
          f"{args.clock} clock")
    with threadpool_limits(1):
        for name in args.models:
            # alternate the two so that a change in machine load hits both alike
            rs, ts = [], []
            for _ in range(args.repeat):
                rs.append(refcomp_epoch(name, x, y, args.batch))
                if torch is not None:
                    ts.append(torch_epoch(name, x, y, args.batch))
            r = min(rs)
            line = f"{name:14s} refcomp {r:6.3f} s/epoch"
            if ts:
                t = min(ts)
                line += f"   torch {t:6.3f} s/epoch   ratio refcomp/torch {r / t:5.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
