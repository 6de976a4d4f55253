"""The pruning sensitivity sweep of LeNet-300-100 through each executor (docs/executors.md, "Costs").

    .venv/bin/python benchmarks/bench_executors.py [--repeat 3] [--workers 2]

LeNet-300-100 at its seeded initialisation (the timing does not depend on
the weights' values), the 2,000 test images of the seeded MNIST split
(REFCOMP_MNIST_DIR or ../shared/data/mnist), seven sparsities per layer: one
task per layer, three tasks. Each executor is made once and warmed by a tiny
sweep (its workers started and refcomp imported in them), then the sweep is
timed ``--repeat`` times, wall clock; the curves are checked equal to the
serial ones. A benchmark, not a test: nothing here gates CI.
"""

from __future__ import annotations

import argparse
import time
import warnings

from refcomp import datasets, models
from refcomp.compress.prune.sensitivity import sensitivity
from refcomp.executors import get_executor

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")                     # dask's notes on graph sizes: the data travels by design
    _, test = datasets.mnist_split(flatten=True)
    model = models.lenet_300_100(seed=0)
    reference = None
    for name in ("serial", "process", "dask"):
        with get_executor(name, None if name == "serial" else args.workers) as ex:
            sensitivity(model, (test[0][:10], test[1][:10]), sparsities=(0.0,), executor=ex)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                curves = sensitivity(model, test, sparsities=SPARSITIES, executor=ex)
                times.append(time.perf_counter() - t)
            reference = reference or curves
            assert curves == reference, f"{name}: curves differ from the serial ones"
            print(f"{name:8s} best {min(times):.2f} s   runs {', '.join(f'{s:.2f}' for s in times)}", flush=True)


if __name__ == "__main__":                              # the process executor's workers import this file
    main()
