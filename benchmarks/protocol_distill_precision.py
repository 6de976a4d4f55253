"""Distillation, mixed-precision training and L1 / elastic net in Deep Compression, on the papers' protocol.

    nice -n 10 .venv/bin/python benchmarks/protocol_distill_precision.py [--only NAME ...] [--seeds 0 1 2]
                                                                       [--quick] [--json out.json]

Protocol: benchmarks/protocol_common.py (train on 55,000, choose on the last
5,000 training images, report on the 10,000 test images once). Experiments
(``--only``):

hinton     Hinton et al. 2015 §3 MNIST: teacher 784-1200-1200-10, dropout 0.2 on the input and 0.5 on the
           hidden units, inputs jittered by up to ±2 px every epoch (--teacher: TEACHERS' recipe, max-norm
           by default); student 784-800-800-10
           without regularisation (30 epochs) alone and distilled (α = 0.1, T chosen on val from
           {2, 4, 8, 20}). Paper: teacher 67 errors, student alone 146, distilled 74.
hard       the 800-800 student on the teacher's argmax labels (α ∈ {0, 0.5} chosen on val).
init       students initialised from the teacher, then distilled at the chosen T: layer dropping
           (fc2 out: 784-1200-10) and width slicing (the 800 units of largest L1 norm per layer). T is
           hinton's choice on val (run in the same process, or given by --temperature from its run).
fitnets    a thin deeper student 784-128-128-128-10 alone, by KD, and by FitNets (hints: its second
           hidden ReLU → the teacher's first, 10 epochs; then KD).
precision  LeNet-5 by the baseline recipe in float32 (protocol_common.baseline), and with float16 /
           bfloat16 compute (emulated, master weights, dynamic loss scaling for float16).
dc_reg     Deep Compression of LeNet-300-100 (preset) with no regulariser, L1 and elastic net
           (proximal) during the pruning retraining; λ chosen on val.

Every row: the seeds, val and test errors (mean ± std over seeds), wall time. ``--quick`` uses
2,000 / 1,000 / 1,000 images and 1 epoch everywhere: it checks the script, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import protocol_common as pc  # first: it pins the BLAS (threads, kernels) before NumPy loads it
import numpy as np

from refcomp import models
from refcomp.compress.distill.hints import hint_train
from refcomp.compress.distill.student import drop_layers, slice_width
from refcomp.compress.distill.train import distill_train
from refcomp.compress.precision.training import MixedPrecisionOptimizer
from refcomp.io import load_model, save_model
from refcomp.nn import SGD, Dropout, Linear, ReLU, Sequential, train
from refcomp.nn.regularizers import MaxNorm
from refcomp.nn.schedules import CosineLR
from refcomp.pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline

_BEST_T: dict = {}     # seed -> T chosen on val by "hinton", reused by "init" in the same process
EXPERIMENTS = ("hinton", "hard", "init", "fitnets", "precision", "dc_reg")
PAPER = {"teacher": 67, "student alone": 146, "distilled": 74}


def mlp(sizes, seed, *, dropout=(0.0, 0.0)):
    """784-...-10 ReLU MLP on flat images; dropout = (input p, hidden p)."""
    rng = np.random.default_rng(seed)
    layers = [("drop0", Dropout(dropout[0], rng=rng))] if dropout[0] else []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append((f"fc{i + 1}", Linear(a, b, rng=rng)))
        if i < len(sizes) - 2:
            layers.append((f"relu{i + 1}", ReLU()))
            if dropout[1]:
                layers.append((f"drop{i + 1}", Dropout(dropout[1], rng=rng)))
    return Sequential(*layers)


def jitter(x, rng, pixels=2):
    """Each 28×28 image (rows of 784) shifted by (dy, dx) ∈ [−pixels, pixels]², zeros shifted in."""
    n = len(x)
    pad = np.pad(x.reshape(n, 28, 28), ((0, 0), (pixels, pixels), (pixels, pixels)))
    d = rng.integers(0, 2 * pixels + 1, size=(n, 2))
    out = np.empty((n, 28, 28), x.dtype)
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            sel = (d[:, 0] == dy) & (d[:, 1] == dx)
            out[sel] = pad[sel, dy:dy + 28, dx:dx + 28]
    return out.reshape(n, 784)


# The teacher's recipes (fixed in advance, not chosen on val). "dropout60": the first one, 60 epochs;
# "maxnorm": Hinton et al. 2015 §3 train theirs "strongly regularized using dropout and weight-constraints
# as described in [Hinton et al. 2012]": the max-norm constraint (regularizers.py R.3) lets it take a larger
# step (momentum 0.95) for longer. The epochs are what this machine affords in a session, not the paper's.
TEACHERS = {
    "dropout60": dict(epochs=60, lr=0.05, momentum=0.9, batch_size=64, max_norm=None),
    "maxnorm": dict(epochs=220, lr=0.05, momentum=0.95, batch_size=100, max_norm=3.5),
}


def teacher(train_set, seed, recipe, quick):
    """The jittered, dropout-regularised 1200-1200 teacher; cached in benchmarks/results_cache/."""
    r = TEACHERS[recipe]
    epochs = 1 if quick else r["epochs"]
    key = (f"protocol_hinton_teacher_s{seed}_e{epochs}" + ("" if recipe == "dropout60" else f"_{recipe}")
           + ("_quick" if quick else ""))
    path, meta = pc.CACHE / f"{key}.npz", pc.CACHE / f"{key}.json"
    if path.exists() and meta.exists():
        return load_model(path), json.loads(meta.read_text())
    m = mlp([784, 1200, 1200, 10], seed, dropout=(0.2, 0.5))
    g = np.random.default_rng(seed)
    sgd, cosine, t0 = SGD(m.parameters(), lr=r["lr"], momentum=r["momentum"]), CosineLR(r["lr"], epochs), \
        time.perf_counter()
    reg = MaxNorm(r["max_norm"]) if r["max_norm"] else None
    for e in range(epochs):        # a fresh jitter each epoch, then one epoch of the one loop
        sgd.lr = float(cosine(e))
        train(m, (jitter(train_set[0], g), train_set[1]), epochs=1, batch_size=r["batch_size"], optimizer=sgd,
              schedule=None, rng=g, regularizer=reg, progress=False)
        print(f"  teacher {recipe} epoch {e + 1}/{epochs}: {pc.seconds_since(t0)} s", flush=True)
    rec = {"train_seconds": pc.seconds_since(t0), "epochs": epochs, "recipe": recipe, **r}
    pc.CACHE.mkdir(exist_ok=True)
    save_model(m, path, metadata={"seed": seed})
    meta.write_text(json.dumps(rec))
    return m, rec


def no_dropout(model):
    return Sequential(*[(n, l) for n, l in model.layers.items() if not isinstance(l, Dropout)])


class Rows:
    """Collects rows {experiment, name, seeds, val/test errors per seed, seconds} and prints them."""

    def __init__(self):
        self.rows = []
        print("| experiment | row | seeds | val errors | test errors | test error % | wall |")
        print("|---|---|---|---|---|---|---|")

    def add(self, experiment, name, seeds, val, test, seconds, n_test, **extra):
        r = {"experiment": experiment, "row": name, "seeds": list(seeds), "val_errors": list(val),
             "test_errors": list(test), "n_test": n_test, "seconds": round(seconds, 1), **extra}
        self.rows.append(r)
        pct = [100 * t / n_test for t in test]
        note = "".join(f" {k}={v}" for k, v in extra.items())
        print(f"| {experiment} | {name}{note} | {','.join(map(str, seeds))} | {pc.mean_spread(val)} | "
              f"{pc.mean_spread(test)} | {pc.mean_spread(pct)} | {seconds:.0f} s |", flush=True)


def choose(candidates, val_set):
    """The (param, model) of fewest val errors (ties: the first)."""
    return min(candidates, key=lambda c: pc.errors(c[1], val_set))


def run_distillation(only, seeds, quick, rows, recipe="maxnorm", with_alone=True):
    tr, va, te = pc.data(flatten=True, quick=quick)
    ep_s, ep_h = (1, 1) if quick else (30, 10)
    temps = (4.0,) if quick else (2.0, 4.0, 8.0, 20.0)
    kw = dict(batch_size=64, lr=0.05, momentum=0.9)
    for seed in seeds:
        tm, trec = teacher(tr, seed, recipe, quick)
        t0 = time.perf_counter() - trec["train_seconds"]     # the teacher row's wall: its training (cached or not)
        ev = lambda name, m, t, **x: rows.add(only, name, [seed], [pc.errors(m, va)], [pc.errors(m, te)],  # noqa
                                              time.perf_counter() - t, len(te[1]), **x)
        if only == "hinton":
            ev(f"teacher 1200-1200 (dropout, jitter; {recipe})", tm, t0, paper=PAPER["teacher"])
        if only == "hinton" and with_alone:
            t = time.perf_counter()
            alone = mlp([784, 800, 800, 10], seed + 100)
            train(alone, tr, epochs=ep_s, rng=seed, progress=False, **kw)
            ev("student 800-800 alone", alone, t, paper=PAPER["student alone"])
        if only == "hinton" or (only == "init" and seed not in _BEST_T):
            t = time.perf_counter()
            cands = []
            for T in temps:
                s = mlp([784, 800, 800, 10], seed + 100)
                distill_train(s, tm, tr, epochs=ep_s, alpha=0.1, temperature=T, rng=seed, **kw)
                cands.append((T, s))
            _BEST_T[seed], s = choose(cands, va)
            if only == "hinton":
                ev("student 800-800 distilled", s, t, T=_BEST_T[seed], paper=PAPER["distilled"])
        if only == "hard":
            t = time.perf_counter()
            cands = []
            for a in (0.0, 0.5):
                s = mlp([784, 800, 800, 10], seed + 100)
                distill_train(s, tm, tr, epochs=ep_s, alpha=a, targets="hard", rng=seed, **kw)
                cands.append((a, s))
            a, s = choose(cands, va)
            ev("student 800-800, teacher's hard labels", s, t, alpha=a)
        if only == "init":
            best_t, base = _BEST_T[seed], no_dropout(tm)
            for name, make in (("fc2 dropped: 784-1200-10", lambda: drop_layers(base, ["fc2"])[0]),
                               ("sliced to 800-800 (L1)", lambda: slice_width(base, {"fc1": 800, "fc2": 800})[0])):
                t = time.perf_counter()
                s = make()
                ev(f"{name}, at init", s, t)
                distill_train(s, tm, tr, epochs=ep_s, alpha=0.1, temperature=best_t, rng=seed, **kw)
                ev(f"{name}, then distilled", s, t, T=best_t)
        if only == "fitnets":
            sizes = [784, 128, 128, 128, 10]
            t = time.perf_counter()
            alone = mlp(sizes, seed + 200)
            train(alone, tr, epochs=ep_s, rng=seed, progress=False, **kw)
            ev("thin 128-128-128 alone", alone, t)
            t = time.perf_counter()
            kd = mlp(sizes, seed + 200)
            distill_train(kd, tm, tr, epochs=ep_s, alpha=0.1, temperature=4.0, rng=seed, **kw)
            ev("thin, KD (T=4)", kd, t)
            t = time.perf_counter()
            fit = mlp(sizes, seed + 200)
            hint_train(fit, tm, tr, student_layer="relu2", teacher_layer="relu1", hint_epochs=ep_h,
                       kd_epochs=ep_s, alpha=0.1, temperature=4.0, rng=seed, **kw)
            ev("thin, FitNets (hints relu2 <- relu1, then KD T=4)", fit, t)


def run_precision(seeds, quick, rows, dtypes=("float16", "bfloat16")):
    tr, va, te = pc.data(quick=quick)
    recipe = pc.BASELINE["lenet5"]
    epochs = 1 if quick else recipe["epochs"]
    res = {"float32": ([], [], 0.0)}
    for seed in seeds:
        m, rec = pc.baseline("lenet5", seed=seed, quick=quick)
        res["float32"][0].append(rec["val_errors"])
        res["float32"][1].append(rec["test_errors"])
        res["float32"] = (*res["float32"][:2], res["float32"][2] + rec["train_seconds"])
    extra = {}
    for dtype in dtypes:
        val, test, t = [], [], time.perf_counter()
        skipped = []
        for seed in seeds:
            m = models.build("lenet5", seed)
            opt = MixedPrecisionOptimizer(m, dtype, compute="emulated", lr=recipe["lr"], momentum=0.9,
                                          weight_decay=recipe["weight_decay"])
            train(m, tr, epochs=epochs, batch_size=64, optimizer=opt, schedule="cosine", rng=seed, progress=False)
            val.append(pc.errors(m, va))
            test.append(pc.errors(m, te))       # the model as trained: 16-bit weights
            skipped.append(opt.scaler.skipped_steps)
        res[dtype] = (val, test, time.perf_counter() - t)
        extra[dtype] = {"skipped_steps": skipped, "final_scale": opt.scaler.scale}
    for name, (val, test, secs) in res.items():
        rows.add("precision", f"LeNet-5 {name}" + (" (emulated, master fp32)" if name != "float32" else ""),
                 seeds, val, test, secs, len(te[1]), **extra.get(name, {}))


def run_dc_reg(seeds, quick, rows):
    tr, va, te = pc.data(quick=quick)
    preset = dict(PRESETS["lenet_300_100"])
    if quick:
        preset.update(prune_rounds=1, prune_epochs=1)
    grid = [("none", {})]
    for l1 in ((1e-4,) if quick else (1e-5, 1e-4)):
        grid.append(("l1", {"regularizer": "l1", "reg_l1": l1}))
    grid.append(("elastic_net", {"regularizer": "elastic_net", "reg_l1": 1e-4, "reg_l2": 1e-4}))
    for kind in ("none", "l1", "elastic_net"):
        val, test, ratios, chosen, t = [], [], [], [], time.perf_counter()
        for seed in seeds:
            base, _ = pc.baseline("lenet_300_100", seed=seed, quick=quick)
            cands = []
            for k, over in grid:
                if k != kind:
                    continue
                cfg = PipelineConfig(**{**preset, **over, "seed": seed})
                r = run_pipeline(load_like(base), tr, va, cfg, progress=False)
                cands.append((over, r))
            over, r = min(cands, key=lambda c: pc.errors(c[1].model, va))
            val.append(pc.errors(r.model, va))
            test.append(pc.errors(r.model, te))
            ratios.append(round(r.weights_ratio, 1))
            chosen.append(over.get("reg_l1", 0.0))
        rows.add("dc_reg", f"LeNet-300-100 Deep Compression, {kind}", seeds, val, test, time.perf_counter() - t,
                 len(te[1]), ratio=ratios, l1=chosen)


def load_like(model):
    import copy

    return copy.deepcopy(model)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    ap.add_argument("--seeds", nargs="+", type=int, help="default: 0 for the distillation rows, 0 1 2 for "
                    "precision and dc_reg (claims of differences < 0.2 pp)")
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: checks that the script runs")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--temperature", type=float,
                    help="for init: the T a hinton run on the same seeds chose on val (skips re-running its grid)")
    ap.add_argument("--dtypes", nargs="+", choices=("float16", "bfloat16"), default=["float16", "bfloat16"],
                    help="for precision: the 16-bit formats to train (each run is ~45 min per seed)")
    ap.add_argument("--teacher", choices=tuple(TEACHERS), default="maxnorm",
                    help="the teacher's recipe (TEACHERS; dropout60 is the one of the first rows)")
    ap.add_argument("--skip-alone", action="store_true",
                    help="for hinton: skip the student trained alone (it does not depend on the teacher)")
    args = ap.parse_args(argv)
    print(pc.PROTOCOL + (" — QUICK: 2,000 / 1,000 / 1,000 images, 1 epoch, not a result" if args.quick else ""))
    rows, t0 = Rows(), time.perf_counter()
    for name in args.only:
        seeds = args.seeds or ([0] if name in ("hinton", "hard", "init", "fitnets") else [0, 1, 2])
        if args.quick and not args.seeds:
            seeds = seeds[:1]
        if name == "init" and args.temperature:
            _BEST_T.update({s: args.temperature for s in seeds if s not in _BEST_T})
        if name == "precision":
            run_precision(seeds, args.quick, rows, args.dtypes)
        elif name == "dc_reg":
            run_dc_reg(seeds, args.quick, rows)
        else:
            run_distillation(name, seeds, args.quick, rows, args.teacher, not args.skip_alone)
    print(f"total wall time {pc.seconds_since(t0)} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"protocol": pc.PROTOCOL, "quick": args.quick, "rows": rows.rows}, f, indent=1)


if __name__ == "__main__":
    main()
