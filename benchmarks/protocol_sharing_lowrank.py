"""Weight sharing across layers, HashedNets, rank search, CP / TT and PCA low-rank quantization on the papers' protocol.

    nice -n 10 .venv/bin/python benchmarks/protocol_sharing_lowrank.py [--seed 0] [--quick] [--json out.json]

Starts from the float baselines of benchmarks/protocol_common.py (LeNet-300-100,
LeNet-5; trained once and cached). Every hyper-parameter below is chosen on
the 5,000 validation images (the candidates are listed in CHOICES); the test
set is evaluated once per row, for the chosen setting. Each row: val and test
errors, parameters, bytes as stored, compression ratio (dense float32 bytes of
the baseline / bytes as stored), wall time, and the paper's row where one was
found. ``--quick`` runs everything on 2,000 / 1,000 / 1,000 images with one
epoch to check the script (< 1 min); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import protocol_common as pc  # first: it pins the BLAS (threads, kernels) before NumPy loads it
import numpy as np

from refcomp import models
from refcomp.compress.lowrank.pca import pca_lowrank_quantize
from refcomp.compress.lowrank.search import factorize_to_budget
from refcomp.compress.lowrank.tensor_model import decompose_model
from refcomp.compress.quantize.weight_only import model_bytes
from refcomp.compress.share.cross_layer import cluster_shared, shared_model_bytes
from refcomp.compress.share.hashing import hash_model
from refcomp.compress.share.trained_quantization import finetune_centroids
from refcomp.formats import Hashed, LowRank
from refcomp.nn import SGD, train

# candidates chosen on val (full run; --quick keeps the first of each)
CHOICES = {"shared_bits": [2, 3, 4, 5], "hash": [("project", 0.05), ("project", 0.01), ("random", 0.05), ("random", 0.01)], "budget_fraction": [0.1],
           "tt_fc_rank": [4, 8, 16], "cp_rank": [8, 16, 24], "tt_conv_rank": [4, 8, 12],
           "pca_k": [32, 64, 128]}
# the papers' rows (same metric: MNIST test error %); None where no number was found
PAPER = {"hashed 1/8": "HashedNets Table 1 (3-layer MNIST net, 1/8): not retrieved",
         "hashed 1/64": "HashedNets Table 1 (3-layer MNIST net, 1/64): not retrieved",
         "tt_fc": "TT-layers, MNIST 1024-1024 TT-net, all TT-ranks 8: 1.6 % (98.4 % accuracy as quoted by the "
                  "replication github.com/philip-bl/tensorizing_neural_networks-novikov_2015; not the same net)"}


def finetune(model, train_set, epochs, lr, seed):
    sgd = SGD(model.parameters(), lr=lr, momentum=0.9)
    train(model, train_set, epochs=epochs, batch_size=64, optimizer=sgd, schedule="cosine", rng=seed, progress=False)
    return model


def stored_params(model) -> int:
    """Numbers stored: a Hashed weight's K real weights, a LowRank's two factors, else the weight's size."""
    total = 0
    for _, p in model.named_weights():
        if isinstance(p, Hashed):
            total += p.n_buckets
        elif isinstance(p, LowRank):
            total += int(np.prod(p.left.shape) + np.prod(p.right.shape))
        else:
            total += int(np.prod(p.shape))
    return total


def row(name, model_name, setting, model, data, dense_bytes, t0, *, nbytes=None, paper=None):
    _, val_set, test_set = data
    nbytes = model_bytes(model) if nbytes is None else nbytes
    r = {"technique": name, "model": model_name, "setting": setting, "val_errors": pc.errors(model, val_set),
         "test_errors": pc.errors(model, test_set), "n_test": len(test_set[1]), "params": stored_params(model),
         "bytes": int(nbytes), "ratio": round(dense_bytes / nbytes, 2), "seconds": pc.seconds_since(t0),
         "paper": paper}
    print(f"| {name} | {model_name} | {setting} | {r['val_errors']} | {r['test_errors']} | "
          f"{100 * r['test_errors'] / r['n_test']:.2f} % | {r['params']:,} | {r['bytes']:,} | {r['ratio']}× | "
          f"{r['seconds']} s | {paper or '–'} |", flush=True)
    return r


def best_on_val(candidates, build, val_set):
    """(value, model) of the candidate whose built model has the fewest val errors (first on ties)."""
    scored = [(pc.errors(m, val_set), i, v, m) for i, (v, m) in enumerate((v, build(v)) for v in candidates)]
    _, _, v, m = min(scored, key=lambda s: (s[0], s[1]))
    return v, m


def run(seed, quick):
    pick = (lambda xs: xs[:1]) if quick else (lambda xs: xs)
    epochs = 1 if quick else 3
    flat = pc.data(flatten=False, quick=quick)
    train_set, val_set, _ = flat
    if quick:  # fine-tuning on 500 images: the quick run only checks that the script runs
        train_set = tuple(a[:500] for a in train_set)
    rows = []
    base = {n: pc.baseline(n, seed=seed, quick=quick)[0] for n in ("lenet_300_100", "lenet5")}
    dense = {n: model_bytes(m) for n, m in base.items()}
    for n, m in base.items():
        rows.append(row("float baseline", n, "–", m, flat, dense[n], time.perf_counter()))
    mlp = base["lenet_300_100"]

    # 1. one codebook for all three layers: the fewest bits within 0.1 % of val of the baseline, then centroids tuned
    t0 = time.perf_counter()
    tol = max(1, len(val_set[1]) // 1000)
    base_val = pc.errors(mlp, val_set)
    for bits in pick(CHOICES["shared_bits"]):
        shared, _ = cluster_shared(mlp, [["fc1", "fc2", "fc3"]], bits)
        if pc.errors(shared, val_set) <= base_val + tol:
            break
    shared, _ = finetune_centroids(shared, train_set, epochs=1, lr=1e-4, rng=seed)
    rows.append(row("one codebook, 3 layers", "lenet_300_100", f"{bits} bits, 1 epoch centroids", shared, flat,
                    dense["lenet_300_100"], t0, nbytes=shared_model_bytes(shared)))

    # 2. HashedNets at the paper's compression factors: from the trained weights (H.4) or from scratch (the
    #    paper's way, init "random" on an untrained net), then trained; start and lr chosen on val
    scratch = models.build("lenet_300_100", seed)
    for c, label in ((1 / 8, "hashed 1/8"), (1 / 64, "hashed 1/64")):
        t0 = time.perf_counter()
        (init, lr), hm = best_on_val(pick(CHOICES["hash"]), lambda choice: finetune(
            hash_model(mlp if choice[0] == "project" else scratch, c, seed=seed, init=choice[0], rng=seed)[0],
            train_set, epochs, choice[1], seed), val_set)
        rows.append(row(f"HashedNets {label[7:]}", "lenet_300_100", f"start {init}, lr {lr}, {epochs} epochs", hm,
                        flat, dense["lenet_300_100"], t0, paper=PAPER[label]))

    # 3. rank search under a budget (10 % of the weights), stopped by the val error, then fine-tuned
    for n in ("lenet_300_100",) if quick else ("lenet_300_100", "lenet5"):   # LeNet-5's search: minutes
        t0 = time.perf_counter()
        frac = CHOICES["budget_fraction"][0]
        fm, rep = factorize_to_budget(base[n], val_set, max_params=int(frac * base[n].num_parameters()),
                                      tolerance=max(1, len(val_set[1]) // 1000))
        finetune(fm, train_set, epochs, 0.005, seed)
        rows.append(row("rank search", n, f"budget {frac:.0%}, ranks {rep['ranks']}, met {rep['budget_met']}",
                        fm, flat, dense[n], t0))

    # 4. TT-layer for LeNet-300-100's fc1 (784 = 4·7·4·7 → 300 = 3·4·5·5), TT-rank cap chosen on val
    t0 = time.perf_counter()
    spec = lambda r: {"fc1": {"method": "tt", "out_modes": (3, 4, 5, 5), "in_modes": (4, 7, 4, 7), "max_rank": r}}
    r, tm = best_on_val(pick(CHOICES["tt_fc_rank"]),
                        lambda r: finetune(decompose_model(mlp, spec(r))[0], train_set, epochs, 0.005, seed), val_set)
    rows.append(row("TT fc1", "lenet_300_100", f"TT-ranks ≤ {r}", tm, flat, dense["lenet_300_100"], t0,
                    paper=PAPER["tt_fc"]))

    # 5. LeNet-5's conv2 by CP (four convolutions) and by TT, rank chosen on val after one epoch at lr 0.002
    for method, key in (("cp", "cp_rank"), ("tt", "tt_conv_rank")):
        t0 = time.perf_counter()
        opts = (lambda r: {"rank": r, "rng": seed, "n_iter": 50}) if method == "cp" else (lambda r: {"max_rank": r})
        r, cm = best_on_val(pick(CHOICES[key]), lambda r: finetune(
            decompose_model(base["lenet5"], {"conv2": {"method": method, **opts(r)}})[0], train_set, 1, 0.002, seed),
            val_set)
        rows.append(row(f"{method.upper()} conv2", "lenet5", f"rank {r}", cm, flat, dense["lenet5"], t0))

    # 6. PCA low-rank quantization (int8 factors) of fc1 and fc2, k chosen on val, no training
    t0 = time.perf_counter()
    calib = train_set[0][:1000]     # calibration images from the training split
    k, qm = best_on_val(pick(CHOICES["pca_k"]),
                        lambda k: pca_lowrank_quantize(mlp, {"fc1": k, "fc2": min(k, 99)}, calib)[0], val_set)
    rows.append(row("PCA low-rank int8", "lenet_300_100", f"k = {k} (fc2 ≤ 99)", qm, flat,
                    dense["lenet_300_100"], t0))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a small run that only checks the script")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    print(pc.PROTOCOL + (" (QUICK: 2,000 / 1,000 / 1,000 images, numbers mean nothing)" if args.quick else ""))
    print("| technique | model | setting (chosen on val) | val errors | test errors | test error | params | bytes | "
          "ratio | time | paper |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    rows = run(args.seed, args.quick)
    print(f"total {pc.seconds_since(t0)} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"protocol": pc.PROTOCOL, "seed": args.seed, "quick": args.quick, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    np.seterr(over="ignore")
    main()
