"""``refcomp compress``: the Deep Compression pipeline on a reference model, report to a directory.

    refcomp compress --model lenet300 --data mnist --out report-lenet300
    refcomp compress --model lenet5 --out report-lenet5 --config my.toml
    refcomp compress --model digits_mlp --data digits --out /tmp/r --baseline-epochs 10

Steps: dense baseline (trained with the `refcomp train` settings, or loaded
from ``--baseline FILE``; cached as ``<out>/baseline.safetensors`` and reused
on the next run), then prune → retrain → cluster → fine-tune centroids →
Huffman (refcomp.pipelines.deep_compression). Writes ``report.md`` (accuracy
per stage, the per-layer size table, the ratios, time per stage),
``sizes.png``, ``results.json`` and ``model.rcm``, the compressed model
itself: a model file in the compact encoding (refcomp.io.compact_file) whose
layers hold the Huffman-coded RelativeIndexCSR weights, graph included, so
``refcomp.io.load_model("<out>/model.rcm")`` returns a runnable model; it is
read back that way and evaluated. A tqdm bar is shown when stderr is a
terminal; otherwise only the summary lines are printed.

Config (TOML, optional): top-level keys of PipelineConfig override the
model's preset, e.g.::

    prune_rounds = 4
    prune_epochs = 8
    finetune_epochs = 2
    [sparsity]
    fc1 = 0.92
    fc2 = 0.91
    fc3 = 0.74
    [weight_bits]
    ...
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .. import datasets, models
from ..compress.prune.sensitivity import plot_sensitivity, sensitivity, sensitivity_markdown
from ..errors import FileFormatError, ValidationError
from ..io import load_model, save_model
from ..nn.train import evaluate, train
from ..pipelines.deep_compression import PRESETS, PipelineConfig, run_pipeline, write_report

HELP = "Deep Compression (prune, retrain, cluster, fine-tune centroids, Huffman) with a Markdown report"

_ALIASES = {"lenet300": "lenet_300_100", "lenet_300_100": "lenet_300_100", "lenet5": "lenet5",
            "digits_mlp": "digits_mlp", "digits": "digits_mlp"}
_BASELINE_EPOCHS = {"lenet_300_100": 20, "lenet5": 15, "digits_mlp": 30}
#: the compressed model, in the compact encoding (refcomp.io.model_file.SUFFIXES["compact"])
MODEL_FILE = "model.rcm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet300", choices=sorted(_ALIASES),
                        help="reference model (lenet300 = LeNet-300-100)")
    parser.add_argument("--data", default=None, choices=["mnist", "digits"],
                        help="default: digits for digits_mlp, else mnist (8,000 / 2,000 seed-0 split)")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--out", required=True, help="report directory (created)")
    parser.add_argument("--config", default=None, help="TOML file overriding the model's preset")
    parser.add_argument("--baseline", default=None,
                        help="trained dense model file (default: <out>/baseline.safetensors, trained if missing)")
    parser.add_argument("--baseline-epochs", type=int, default=None, help="epochs when the baseline is trained")
    parser.add_argument("--seed", type=int, default=0, help="model init and batch order of the baseline")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also sweep accuracy vs sparsity per layer on the dense baseline "
                             "(sensitivity.png and a table in the report)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _load_config(path, model_name):
    base = PipelineConfig(**PRESETS[model_name])
    if path is None:
        return base
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ValidationError("--config", "an existing TOML file", str(p))
    try:
        d = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{p}: not valid TOML ({exc})") from None
    return PipelineConfig.from_dict(d, base)


def run(args) -> int:
    name = _ALIASES[args.model]
    data = args.data or ("digits" if name == "digits_mlp" else "mnist")
    if (data == "digits") != (name == "digits_mlp"):
        raise ValidationError("--data", f"{'digits' if name == 'digits_mlp' else 'mnist'} for {name}", data)
    config = _load_config(args.config, name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    train_set, test_set = datasets.load_split(data, seed=0, path=args.mnist_dir)

    seconds = {}
    t = time.perf_counter()
    baseline = Path(args.baseline) if args.baseline else out / "baseline.safetensors"
    if baseline.exists():
        model = load_model(baseline)
        say(f"dense baseline loaded from {baseline}")
        seconds["baseline_load"] = time.perf_counter() - t
    else:
        epochs = args.baseline_epochs or _BASELINE_EPOCHS[name]
        model = models.build(name, args.seed)
        train(model, train_set, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine",
              rng=args.seed, progress="auto" if not args.quiet else False, stream=sys.stderr)
        acc = evaluate(model, test_set)["accuracy"]
        save_model(model, baseline, metadata={"model": name, "data": data, "epochs": epochs,
                                              "test_accuracy": acc})
        seconds["baseline_train"] = time.perf_counter() - t
        say(f"dense baseline trained ({epochs} epochs, {seconds['baseline_train']:.1f} s) and saved to {baseline}")
    extra = ""
    if args.sensitivity:
        t = time.perf_counter()
        curves = sensitivity(model, test_set, layers=list(config.sparsity),
                             sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98))
        seconds["sensitivity"] = time.perf_counter() - t
        extra = ("## Pruning sensitivity of the dense baseline\n\n"
                 "Test accuracy (%) with one layer pruned by magnitude to the given sparsity, "
                 "no retraining (Han et al. 2015, Fig. 5):\n\n" + sensitivity_markdown(curves))
        if plot_sensitivity(curves, out / "sensitivity.png"):
            extra += "\n![sensitivity](sensitivity.png)\n"
        say(f"sensitivity sweep: {seconds['sensitivity']:.1f} s")
    result = run_pipeline(model, train_set, test_set, config, progress=False if args.quiet else "auto",
                          stream=sys.stderr, log=say, save_to=out / MODEL_FILE)
    parts = ["refcomp", "compress", "--model", args.model, "--data", data, "--out", str(out)]
    for flag, value in (("--config", args.config), ("--baseline", args.baseline),
                        ("--baseline-epochs", args.baseline_epochs), ("--mnist-dir", args.mnist_dir)):
        if value is not None:
            parts += [flag, str(value)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.sensitivity:
        parts.append("--sensitivity")
    command = " ".join(shlex.quote(p) for p in parts)
    paths = write_report(result, out, title=f"Deep Compression of {name} on {data}", command=command,
                         extra_seconds=seconds, extra_markdown=extra)
    say(f"compressed model: {result.file} (refcomp.io.load_model reads it)")
    say(f"report: {paths['report']}")
    return 0
