"""Float baselines on the papers' protocol: LeNet-300-100 and LeNet-5 (Caffe variant).

    nice -n 10 .venv/bin/python benchmarks/protocol_baselines.py [--models lenet_300_100 lenet5] [--seeds 0 1 2]
                                                               [--quick] [--json out.json]

Trains (or loads from benchmarks/results_cache/) each model by the recipe of
benchmarks/protocol_common.py and prints one row per model and seed: val and
test errors, test error in %, the paper's row (Deep Compression, Table 1 and
Han et al. 2015, Table 1: LeNet-300-100 1.64 %, LeNet-5 0.80 %), wall time.
"""

from __future__ import annotations

import argparse
import json

import protocol_common as pc

PAPER_ERROR = {"lenet_300_100": 1.64, "lenet5": 0.80}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(PAPER_ERROR), choices=list(PAPER_ERROR))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--quick", action="store_true", help="a small run that only checks the script")
    ap.add_argument("--json", help="write the records here")
    args = ap.parse_args(argv)
    print(pc.PROTOCOL)
    print("| model | seed | epochs | val errors / 5,000 | test errors / 10,000 | test error | paper | train time |")
    print("|---|---|---|---|---|---|---|---|")
    records = []
    for name in args.models:
        for seed in args.seeds:
            _, r = pc.baseline(name, seed=seed, quick=args.quick, progress="epoch" if not args.quick else False)
            records.append(r)
            print(f"| {name} | {seed} | {r['recipe']['epochs']} | {r['val_errors']} | {r['test_errors']} | "
                  f"{100 * r['test_errors'] / r['n_test']:.2f} % | {PAPER_ERROR[name]:.2f} % | "
                  f"{r['train_seconds']:.0f} s |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
