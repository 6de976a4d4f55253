"""``refcomp train``: train a reference model and optionally save it.

    refcomp train --model lenet5 --data mnist --epochs 15
    refcomp train --model digits_mlp --data digits --epochs 30 --out digits.safetensors

Data: "mnist" = the papers' protocol, the first 55,000 MNIST training images
and the 10,000 test images (``--mnist-dir`` or REFCOMP_MNIST_DIR);
"mnist-fixture" = the seeded 8,000 / 2,000 split of the MNIST test set (fast,
for tests); "digits" = scikit-learn's digits, split 1,437 / 360 by the seed. Optimizer: SGD with momentum, cosine lr.
"""

from __future__ import annotations

import argparse
import math

from .. import datasets, models
from ..io import save_model
from ..io.model_file import SUFFIXES
from ..nn.train import evaluate, train
from . import _common
from ._common import MODELS, UsageError

HELP = f"train a reference model ({', '.join(MODELS)}) with refcomp.nn"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet5", type=_common.model_name, choices=MODELS,
                        help="the model (default lenet5)")
    parser.add_argument("--data", default=None, choices=list(datasets.SPLITS),
                        help="default: digits for digits_mlp, else mnist")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0, help="model init, data split and batch order")
    parser.add_argument("--out", default=None, help="save the trained model (.safetensors or .npz)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress bar, no per-epoch lines, no result)")
    _common.add_json(parser)


def run(args) -> int:
    # every argument is checked before the data is loaded and the model trained, so that a
    # mistake (above all in --out) never throws a trained model away
    data = args.data or ("digits" if args.model == "digits_mlp" else "mnist")
    if (data == "digits") != (args.model == "digits_mlp"):
        raise UsageError("--data", f"{'digits' if args.model == 'digits_mlp' else 'mnist'} for {args.model}", data)
    if args.out:
        _common.output_file(args.out, "--out", tuple(SUFFIXES.values()))
    _common.positive_int(args.epochs, "--epochs")
    _common.positive_int(args.batch_size, "--batch-size")
    _common.seed(args.seed)
    _common.momentum(args.momentum)
    if not (math.isfinite(args.lr) and args.lr >= 0):
        raise UsageError("--lr", "a finite number >= 0", args.lr)
    train_set, test_set = _common.load_split(data, args.mnist_dir, seed=args.seed)
    model = models.build(args.model, args.seed)
    # the per-epoch lines are for a reader: none with --json (stdout holds the JSON) or --quiet
    lines = not (args.quiet or args.json)
    history = train(model, train_set, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    momentum=args.momentum, rng=args.seed, progress="epoch" if lines else not args.quiet)
    res = evaluate(model, test_set)
    say = _common.say(args)
    say(f"{args.model}: test accuracy {100 * res['accuracy']:.2f} % on {len(test_set[1])} samples "
        f"(loss {res['loss']:.4f})")
    p = None
    if args.out:
        p = save_model(model, args.out, metadata={"model": args.model, "data": data, "epochs": args.epochs,
                                                   "test_accuracy": res["accuracy"]})
        say(f"saved {p}")
    if args.json:
        _common.emit_json({"model": args.model, "data": data, "epochs": args.epochs, "seed": args.seed,
                           "test_samples": len(test_set[1]), "accuracy": res["accuracy"], "loss": res["loss"],
                           "history": history, "out": p})
    return 0
