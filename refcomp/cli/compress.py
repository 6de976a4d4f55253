"""``refcomp compress``: the Deep Compression pipeline on a reference model, report to a directory.

    refcomp compress --model lenet_300_100 --data mnist --out report-lenet_300_100
    refcomp compress --model lenet5 --out report-lenet5 --config my.toml
    refcomp compress --model digits_mlp --data digits --out /tmp/r --baseline-epochs 10

Steps: dense baseline (trained with the `refcomp train` settings, or loaded
from ``--baseline FILE``; cached as ``<out>/baseline.safetensors`` and reused
on the next run only if it was made the same way: the cache records the model,
data, split, epochs, seed, training settings and refcomp version, and a
cache that differs in any of them is refused, never silently reused nor
overwritten — delete it to retrain), then prune → retrain → cluster → fine-tune centroids →
Huffman (refcomp.pipelines.deep_compression). Writes ``report.md`` (accuracy
per stage, the per-layer size table, the ratios, time per stage),
``sizes.png``, ``results.json`` and ``model.rcm``, the compressed model
itself: a model file in the compact encoding (refcomp.io.compact_file) whose
layers hold the Huffman-coded RelativeIndexCSR weights, graph included, so
``refcomp.io.load_model("<out>/model.rcm")`` returns a runnable model; it is
read back that way and evaluated. A progress bar (refcomp.progress) is shown
when stderr is a terminal, the summary lines above it; otherwise only the
summary lines are printed. ``--json``: the result as one JSON document (docs/cli.md).

Every route also writes ``report.html`` (one self-contained page: sizes per
layer, weight histograms under the levels or centroids, sensitivity, metric
vs size per stage, provenance), rendered by refcomp.report from the run
record it saves as ``record.json`` (docs/report.md); the ONNX and MiniLM
routes write its ``report.md`` too.

ONNX route (``--onnx``): an ONNX model quantized by a recipe, calibrated on
``--data`` (its training part), the refcomp model file ``<out>/model.rcm``
and, with ``--export``, the ONNX file in ``--style`` qdq or qoperator::

    refcomp compress --onnx lenet5.onnx --data mnist --recipe w8a8-static --out r --export r/w8a8.onnx
    refcomp compress --onnx mlp.onnx --data digits --recipe w8a8-dynamic --out r --export r/q.onnx --style qoperator

Recipes (``ONNX_RECIPES``): w8a8-static = quantize_static(..., integer_only=False,
requantize="float"), each Conv / Linear an integer island whose export is
bit-exact; w8a8-dynamic = quantize_dynamic; weight-only-w8 / weight-only-w4 =
quantize_weights(bits=8 / 4, group_size=--group-size) (int4 codes are not
exported: the QDQ export writes 8-bit initializers). Prints the float and the
quantized accuracy on the test part and the file sizes.

all-MiniLM-L6-v2 (``--model minilm``): the pretrained sentence encoder
compressed by a named recipe (refcomp.pipelines.minilm.RECIPES), written as
``<out>/model.rcm`` for ``refcomp embed --model-file``; ``--export`` also
writes it as ONNX (QOperator for the dynamic recipes). With ``--golden`` (the
folder of golden.npz, default ../shared/data/minilm when present) it is scored
on the golden sentences (cosine to the fp32 reference, NN@10)::

    refcomp compress --model minilm --recipe w8a8-dynamic-per-token --out r --export r/minilm.onnx

Recipe files (``--recipe FILE.toml``; refcomp.pipelines.recipe, docs/recipes.md,
examples/): ordered steps of any family, run on --model NAME's baseline,
--model-file FILE, --onnx FILE or --model minilm (refcomp/cli/compress_recipe.py);
``--config`` then is an override of the recipe. Writes model.rcm, run.json and report.md::

    refcomp compress --model digits_mlp --recipe examples/deep_compression.toml --out r

Several ``--recipe FILE`` (or one with ``--grid STEP.KEY=[V, ...]``): a sweep, each
recipe from the same model as a task of ``--executor`` (refcomp/cli/compress_sweep.py)::

    refcomp compress --model digits_mlp --recipe examples/qat.toml --recipe examples/gptq_w4.toml --out s

Config (TOML, optional): top-level keys of PipelineConfig override the
model's preset, merged key by key (a table such as [sparsity] layer by layer), e.g.::

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
from .. import onnx as rc_onnx
from ..compress.prune.sensitivity import (
    plot_sensitivity,
    sensitivity,
    sensitivity_markdown,
)
from ..compress.quantize.dynamic import quantize_dynamic
from ..compress.quantize.ptq import quantize_static
from ..compress.quantize.weight_only import quantize_weights
from ..errors import FileFormatError, ValidationError
from ..executors import EXECUTORS, check_executor
from ..io import load_model, save_model
from ..models.minilm_l6 import embed, minilm
from ..nn.train import evaluate, train
from ..pipelines.deep_compression import (
    PRESETS,
    PipelineConfig,
    run_pipeline,
    write_report,
)
from ..pipelines.deep_compression.report import run_record
from .. import report as run_report
from ..pipelines.minilm import RECIPES as MINILM_RECIPES
from ..pipelines.recipe import RecipeData
from ..pipelines.minilm import calibration_batches, compress_minilm, format_score, score
from .._version import __version__
from ..io.model_file import SUFFIXES
from . import _common, compress_recipe, compress_sweep
from ._common import MODELS, UsageError, load_split
from .embed import read_sentences

HELP = "Deep Compression (prune, retrain, cluster, fine-tune centroids, Huffman) with an HTML and a Markdown report"

_BASELINE_EPOCHS = {"lenet_300_100": 20, "lenet5": 15, "digits_mlp": 30}
#: the compressed model, in the compact encoding (refcomp.io.model_file.SUFFIXES["compact"])
MODEL_FILE = "model.rcm"
#: --recipe of the ONNX route -> what it runs (module docstring)
ONNX_RECIPES = {
    "w8a8-static": "quantize_static(integer_only=False, requantize='float')",
    "w8a8-dynamic": "quantize_dynamic",
    "weight-only-w8": "quantize_weights(bits=8)",
    "weight-only-w4": "quantize_weights(bits=4)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet_300_100", type=_common.model_name, choices=[*MODELS, "minilm"],
                        help="reference model (default lenet_300_100; minilm = all-MiniLM-L6-v2, with --recipe)")
    parser.add_argument("--data", default=None, choices=list(datasets.SPLITS),
                        help="default: digits for digits_mlp, else mnist (8,000 / 2,000 seed-0 split)")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--out", required=True, help="report directory (created)")
    parser.add_argument("--config", default=None, help="TOML file overriding the model's preset, merged key by key "
                        "(with --recipe FILE: an override of the recipe, docs/recipes.md)")
    parser.add_argument("--baseline", default=None,
                        help="trained dense model file of --model (default: <out>/baseline.safetensors, trained "
                             "if missing, reused only if made by the same model, data, epochs, seed and refcomp "
                             "version, else refused)")
    parser.add_argument("--baseline-epochs", type=int, default=None, help="epochs when the baseline is trained")
    parser.add_argument("--seed", type=int, default=None,
                        help="model init and batch order of the baseline when it is trained (default 0)")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also sweep accuracy vs sparsity per layer on the dense baseline "
                             "(sensitivity.png and a table in the report)")
    parser.add_argument("--executor", default=None, choices=EXECUTORS,
                        help="where the --sensitivity sweep's per-layer tasks, or a recipe sweep's recipes, run: "
                             "serial (default, in this process), process (worker processes), dask (a local dask "
                             "cluster; refcomp[dask])")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _common.add_json(parser)
    onnx = parser.add_argument_group("ONNX models (instead of --model)")
    onnx.add_argument("--onnx", default=None, metavar="FILE",
                      help="quantize this float ONNX model by --recipe (--data: its inputs and labels)")
    onnx.add_argument("--recipe", default=None, metavar="NAME|FILE", action=_Recipes,
                      type=compress_recipe.recipe_arg(set(ONNX_RECIPES) | set(MINILM_RECIPES)),
                      help=f"a recipe file (.toml: any steps, any model; docs/recipes.md, examples/) or a named "
                           f"recipe: {', '.join(sorted(ONNX_RECIPES))} for --onnx; "
                           f"{', '.join(sorted(MINILM_RECIPES))} for --model minilm. Repeated (files only): "
                           f"a sweep, each recipe from the same model, through --executor")
    onnx.add_argument("--grid", default=None, metavar="STEP.KEY=[V,...]",
                      help="a sweep of one --recipe FILE over the values of one step's key, e.g. "
                           "'1.sparsity=[0.5, 0.7, 0.9]' (STEP: number from 1 or name; values: a TOML array)")
    parser.set_defaults(recipes=[])
    onnx.add_argument("--model-file", default=None, metavar="FILE",
                      help="with --recipe FILE: run it on this refcomp model file (--data: its data)")
    onnx.add_argument("--calibration-text", default=None, metavar="FILE",
                      help="--model minilm, static and GPTQ recipes: calibration sentences, one per line")
    onnx.add_argument("--golden", default=None, metavar="DIR",
                      help="--model minilm: score on this folder's golden.npz (default ../shared/data/minilm if present)")
    onnx.add_argument("--calibration", type=int, default=500,
                      help="calibration inputs (the first N of the training part; default 500)")
    onnx.add_argument("--group-size", type=int, default=None,
                      help="weight-only recipes: one scale per group of this many inputs (default per channel)")
    onnx.add_argument("--export", default=None, metavar="FILE", help="also write the quantized model as ONNX")
    onnx.add_argument("--style", default="qdq", choices=["qdq", "qoperator"], help="ONNX export style")


class _Recipes(argparse.Action):
    """--recipe, repeatable: ``recipe`` keeps the first value (the single-recipe routes read it),
    ``recipes`` gathers every one (several: a sweep, refcomp/cli/compress_sweep.py)."""

    def __call__(self, parser, namespace, value, option_string=None):
        namespace.recipes = [*(getattr(namespace, "recipes", None) or []), value]
        namespace.recipe = namespace.recipes[0]


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


def _quantize(model, recipe, calibration_x, group_size):
    if recipe == "w8a8-static":
        return quantize_static(model, calibration_x, integer_only=False, requantize="float")
    if recipe == "w8a8-dynamic":
        return quantize_dynamic(model)
    return quantize_weights(model, bits=8 if recipe == "weight-only-w8" else 4, group_size=group_size)


def run_onnx(args) -> int:
    """The ONNX route: load, quantize by the recipe, evaluate, save (and export)."""
    if args.recipe not in ONNX_RECIPES:
        raise ValidationError("--recipe", f"one of {', '.join(sorted(ONNX_RECIPES))} with --onnx", args.recipe)
    if args.calibration < 1:
        raise ValidationError("--calibration", "an int >= 1", args.calibration)
    if args.group_size is not None and args.recipe not in ("weight-only-w8", "weight-only-w4"):
        raise ValidationError("--group-size", "a weight-only recipe", args.recipe)
    src = _common.input_file(args.onnx, "--onnx", "ONNX file")
    for flag in ("baseline", "baseline_epochs", "seed", "config", "calibration_text", "golden"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')}", "not with --onnx (it belongs to the Deep Compression "
                             "or MiniLM route)", getattr(args, flag))
    if args.sensitivity:
        raise UsageError("--sensitivity", "not with --onnx (it sweeps the Deep Compression baseline)", "--sensitivity")
    out = _common.output_dir(args.out, "--out")
    exported = _common.output_file_in(args.export, "--export", (".onnx",), out) if args.export else None
    say = _common.say(args)
    data = args.data or "digits"
    train_set, test_set = load_split(data, args.mnist_dir)
    if args.recipe == "w8a8-static" and args.calibration > len(train_set[0]):
        raise UsageError("--calibration", f"at most {len(train_set[0])} (the {data} training part)", args.calibration)
    model = rc_onnx.load(src)
    calibration_x = train_set[0][:args.calibration]
    qmodel, _ = _quantize(model, args.recipe, calibration_x, args.group_size)
    out.mkdir(parents=True, exist_ok=True)          # only now: a failure above leaves no empty folder behind
    if exported is not None:
        rc_onnx.export(qmodel, exported, style=args.style, input_shape=(1, *calibration_x.shape[1:]))
    path = save_model(qmodel, out / MODEL_FILE, format="compact",
                      metadata={"onnx": src.name, "recipe": args.recipe, "data": data})
    acc_f = evaluate(model, test_set)["accuracy"]
    acc_q = evaluate(qmodel, test_set)["accuracy"]
    calibrated = f", calibrated on {len(calibration_x)} {data} inputs" if args.recipe == "w8a8-static" else ""
    say(f"{src.name} ({args.recipe}{calibrated}): test accuracy {100 * acc_f:.2f} % float -> {100 * acc_q:.2f} % quantized "
        f"({100 * (acc_q - acc_f):+.2f} pp) on {len(test_set[1])} samples")
    sizes = f"size: {src.name} {src.stat().st_size:,} B -> {path.name} {Path(path).stat().st_size:,} B"
    if exported is not None:
        sizes += f", {exported.name} {exported.stat().st_size:,} B ({args.style})"
    say(sizes)
    say(f"quantized model: {path} (refcomp.io.load_model reads it)")
    if exported is not None:
        say(f"ONNX export: {exported}")
    layers, weights = run_report.model_parts(model, qmodel)
    for entry in weights:
        entry["note"] = "Histograms: each layer's float weights; red: the values its quantized weights can take."
    summary = {"source": f"{src.name}, {src.stat().st_size:,} B", "recipe": f"{args.recipe}: {ONNX_RECIPES[args.recipe]}",
               "quantized layers": len(layers), "model file": f"{Path(path).name}, {Path(path).stat().st_size:,} B",
               "test accuracy": f"{100 * acc_f:.2f} % float -> {100 * acc_q:.2f} % quantized"}
    command = _command_line(["--onnx", src, "--data", data, "--recipe", args.recipe, "--out", out],
                            [("--calibration", args.calibration if args.recipe == "w8a8-static" else None),
                             ("--group-size", args.group_size), ("--mnist-dir", args.mnist_dir),
                             ("--export", args.export), ("--style", args.style if args.export else None)])
    record = {"title": f"{src.name} quantized by {args.recipe}", "model": {"name": src.name, "summary": summary},
              "provenance": run_report.provenance(command, data=data, split=_split_text(train_set, test_set)),
              "layers": layers, "weights": weights,
              "stages": [{"name": "float32", "bytes": run_report.model_bytes(model), "metric": acc_f},
                         {"name": args.recipe, "bytes": run_report.model_bytes(qmodel), "metric": acc_q}]}
    report_files = run_report.write_report(record, out)
    say(f"report: {report_files['html']}")
    if args.json:
        _common.emit_json({"route": "onnx", "onnx": src, "recipe": args.recipe, "data": data,
                           "calibration": len(calibration_x) if args.recipe == "w8a8-static" else None,
                           "test_samples": len(test_set[1]), "accuracy": {"float": acc_f, "quantized": acc_q},
                           "model_file": path, "export": exported, "report": report_files,
                           "bytes": {"onnx": src.stat().st_size, "model_file": Path(path).stat().st_size,
                                     "export": exported.stat().st_size if exported is not None else None}})
    return 0


def _command_line(given: list, optional: list) -> str:
    """``refcomp compress`` with the ``given`` arguments and the ``optional`` (flag, value) pairs
    whose value is not None, quoted for a shell: the command a report records."""
    parts = ["refcomp", "compress", *map(str, given)]
    for flag, value in optional:
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def run_minilm(args) -> int:
    """all-MiniLM-L6-v2 by a recipe: compress, save, (export), score on the golden set."""
    if args.recipe not in MINILM_RECIPES:
        raise ValidationError("--recipe", f"one of {', '.join(sorted(MINILM_RECIPES))} with --model minilm",
                              args.recipe)
    for flag in ("onnx", "group_size", "config", "baseline", "data", "baseline_epochs", "seed", "mnist_dir"):
        if getattr(args, flag) is not None:
            raise ValidationError(f"--{flag.replace('_', '-')}", "not with --model minilm", getattr(args, flag))
    if args.sensitivity:
        raise UsageError("--sensitivity", "not with --model minilm (it sweeps the Deep Compression baseline)",
                         "--sensitivity")
    golden = _common.golden_dir(args.golden)
    if args.golden and not (golden / "golden.npz").is_file():
        raise ValidationError("--golden", "a folder holding golden.npz", repr(args.golden))
    out = _common.output_dir(args.out, "--out")
    if args.export:
        _common.output_file_in(args.export, "--export", (".onnx",), out)
    needs = MINILM_RECIPES[args.recipe][1]
    if needs != (args.calibration_text is not None):
        raise ValidationError("--calibration-text", f"{'a' if needs else 'no'} calibration file for the recipe "
                              f"{args.recipe}", args.calibration_text)
    calibration = calibration_batches(read_sentences(args.calibration_text, "--calibration-text")) if needs else None
    say = _common.say(args)
    t = time.perf_counter()
    fp32 = minilm()
    model, _ = compress_minilm(fp32, args.recipe, calibration)
    out.mkdir(parents=True, exist_ok=True)       # only now: a failure above leaves no empty folder behind
    path = save_model(model, out / MODEL_FILE, format="compact", metadata={"model": "all-MiniLM-L6-v2",
                                                                          "recipe": args.recipe})
    say(f"all-MiniLM-L6-v2, recipe {args.recipe} ({MINILM_RECIPES[args.recipe][2]}): "
        f"{Path(path).stat().st_size / 1e6:.1f} MB -> {path} ({time.perf_counter() - t:.1f} s)")
    if args.export:
        shapes = {"input_ids": (1, "T"), "attention_mask": (1, "T")}     # any batch, any length
        rc_onnx.export(model, args.export, style="float" if args.recipe == "fp32" else "qoperator",
                       input_shape=shapes, input_dtypes={k: "int64" for k in shapes})
        say(f"ONNX export: {args.export} ({Path(args.export).stat().st_size / 1e6:.1f} MB)")
    if (golden / "golden.npz").is_file():
        import numpy as np

        with np.load(golden / "golden.npz", allow_pickle=False) as z:
            ids, mask, ref = z["input_ids"], z["attention_mask"], z["embeddings"]
        s = score(embed(model, input_ids=ids, attention_mask=mask), ref)
        say(f"on the {len(ref)} golden sentences (batches of 32 padded to 128), against fp32: {format_score(s)}")
    else:
        s = None
    report_files = _write_minilm_report(args, fp32, model, path, golden, s)
    say(f"report: {report_files['html']}")
    if args.json:
        scored = {"golden": golden, "samples": len(ref), **s} if s is not None else None
        _common.emit_json({"route": "minilm", "recipe": args.recipe, "model_file": path,
                           "bytes": Path(path).stat().st_size, "export": args.export, "golden": scored,
                           "report": report_files})
    return 0


def _write_minilm_report(args, fp32, model, path, golden, s) -> dict:
    """report.html, report.md and record.json of the MiniLM route; ``s``: the golden score or None."""
    layers, weights = run_report.model_parts(fp32, model)
    for entry in weights:
        entry["note"] = "Histograms: each layer's fp32 weights; red: the values its quantized weights can take."
    summary = {"kind": "sentence encoder, 6 layers, 384 wide",
               "recipe": f"{args.recipe}: {MINILM_RECIPES[args.recipe][2]}", "compressed layers": len(layers),
               "model file": f"{Path(path).name}, {Path(path).stat().st_size:,} B"}
    if s is not None:
        summary["on the golden set"] = format_score(s)
    command = _command_line(["--model", "minilm", "--recipe", args.recipe, "--out", args.out],
                            [("--calibration-text", args.calibration_text), ("--golden", args.golden),
                             ("--export", args.export)])
    record = {"title": f"all-MiniLM-L6-v2 compressed by {args.recipe}",
              "model": {"name": "all-MiniLM-L6-v2", "summary": summary},
              "provenance": run_report.provenance(command, data=str(golden / "golden.npz") if s is not None else None,
                                                  calibration=args.calibration_text),
              "layers": layers, "weights": weights, "metric": "cosine mean to the fp32 reference (golden set)",
              # the fp32 model is the reference the score compares against: not measured again
              "stages": [{"name": "fp32", "bytes": run_report.model_bytes(fp32), "metric": None},
                         {"name": args.recipe, "bytes": run_report.model_bytes(model),
                          "metric": None if s is None else s["cos_mean"]}]}
    return run_report.write_report(record, Path(path).parent)     # the --out folder


def _split_text(train_set, test_set) -> str:
    """The data split a report records (load_split: seed 0)."""
    return f"seed-0 split: {len(train_set[1]):,} train / {len(test_set[1]):,} test"


#: how `compress` trains a baseline (the `refcomp train` settings); part of the cache key
_BASELINE_TRAINING = {"batch_size": 64, "lr": 0.05, "momentum": 0.9, "schedule": "cosine"}
BASELINE_FILE = "baseline.safetensors"


def baseline_key(name: str, data: str, train_set, test_set, epochs: int, seed: int) -> dict:
    """Everything that made a trained baseline; stored in its file's metadata, compared on reuse."""
    return {"model": name, "data": data,
            "split": {"seed": 0, "train": int(len(train_set[1])), "test": int(len(test_set[1]))},
            "epochs": int(epochs), "seed": int(seed), **_BASELINE_TRAINING, "refcomp_version": __version__}


def _cached_metadata(path: Path) -> dict:
    """The metadata of a cached baseline (safetensors: the refcomp header of its __metadata__)."""
    import json

    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            header = json.loads((f.metadata() or {})["refcomp"])
        meta = header["metadata"]
    except OSError:
        raise
    except Exception as exc:  # SafetensorError, KeyError, JSONDecodeError ...: not a baseline we wrote
        raise FileFormatError(f"{path}: not a baseline refcomp compress wrote ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path}: not a baseline refcomp compress wrote (metadata {meta!r})")
    return meta


def _check_cached(path: Path, key: dict) -> None:
    """Refuse a cached baseline made otherwise than this command would make it."""
    hint = (f"delete {path} to train a new baseline, or choose another --out (the cache is never overwritten "
            "silently: it may have cost hours)")
    try:
        meta = _cached_metadata(path)
    except FileFormatError as exc:
        raise UsageError(f"--out {path.parent}", "a folder whose cached baseline refcomp can read",
                         str(exc), hint) from None
    diffs = [f"{k} {meta.get(k, '(missing)')!r} in the file, {v!r} here" for k, v in key.items() if meta.get(k) != v]
    if diffs:
        raise UsageError(f"cached baseline {path}", "one trained as this command asks",
                         "; ".join(diffs), hint)


def _check_architecture(model, name: str, path: Path) -> None:
    """A --baseline must be the --model: same tensors, same shapes (else the pipeline fails late, or worse)."""
    want = {k: tuple(v.shape) for k, v in models.build(name, 0).state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in model.state_dict().items()}
    if want != got:
        raise UsageError("--baseline", f"a dense {name} model (--model)", f"{path} holding other tensors: "
                         f"{', '.join(f'{k} {v}' for k, v in list(got.items())[:4])}",
                         "--baseline takes a dense model of the --model (refcomp train --out writes one)")


def run(args) -> int:
    if args.executor is not None:
        if not args.sensitivity and not compress_sweep.is_sweep(args):
            raise UsageError("--executor", "--sensitivity or a recipe sweep (it runs their tasks)",
                             f"--executor {args.executor} alone",
                             "add --sensitivity, give several --recipe files (or --grid), or drop --executor")
        check_executor(args.executor)     # dask installed? before the baseline is trained
    if args.grid is not None and args.recipe is None:
        raise UsageError("--grid", "a --recipe FILE to expand", "no --recipe")
    # --recipe's type already took only a named recipe or a recipe file; a name wins over a file of that name
    recipe_file = args.recipe is not None and args.recipe not in ONNX_RECIPES and args.recipe not in MINILM_RECIPES
    recipe_file = recipe_file or compress_sweep.is_sweep(args)    # a sweep takes files only: its load says so
    if recipe_file and (args.onnx or args.model_file or args.model == "minilm"):
        return compress_recipe.run_route(args)
    if args.model_file is not None:
        raise UsageError("--model-file", "--recipe FILE with it (a recipe file)", args.recipe or "no --recipe")
    if args.model == "minilm":
        return run_minilm(args)
    if args.onnx is not None:
        return run_onnx(args)
    for flag in ("recipe", "export", "group_size", "golden", "calibration_text"):
        if getattr(args, flag) is not None and not (flag == "recipe" and recipe_file):
            raise ValidationError(f"--{flag.replace('_', '-')}", "--onnx (it belongs to the ONNX route)", "no --onnx")
    # everything is checked before the first minute of work (data, baseline training)
    name = args.model
    data = args.data or ("digits" if name == "digits_mlp" else "mnist")
    if (data == "digits") != (name == "digits_mlp"):
        raise ValidationError("--data", f"{'digits' if name == 'digits_mlp' else 'mnist'} for {name}", data)
    out = _common.output_dir(args.out, "--out")
    config = compress_recipe.load(args) if recipe_file else _load_config(args.config, name)
    if recipe_file:
        _common.positive_int(args.calibration, "--calibration")
        if args.sensitivity:
            raise UsageError("--sensitivity", "not with --recipe FILE (it sweeps the Deep Compression preset's "
                             "layers)", "--sensitivity")
    _common.positive_int(args.baseline_epochs, "--baseline-epochs")
    _common.seed(args.seed)
    if args.baseline is not None:
        for flag in ("baseline_epochs", "seed"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')}", "no value with --baseline (that model is trained "
                                 "already)", getattr(args, flag), "drop it, or drop --baseline to train one")
        baseline = _common.input_file(args.baseline, "--baseline", "model file")
        if baseline.suffix not in SUFFIXES.values():
            raise UsageError("--baseline", f"a model file ({', '.join(SUFFIXES.values())})", repr(args.baseline))
    else:
        baseline = out / BASELINE_FILE
        if baseline.is_dir() or (baseline.exists() and not baseline.is_file()):
            raise UsageError(f"--out {out}", f"a folder whose {BASELINE_FILE} is a file", f"{baseline} a folder",
                             f"remove {baseline}")
    seed = args.seed or 0
    epochs = args.baseline_epochs or _BASELINE_EPOCHS[name]
    say = _common.say(args)
    train_set, test_set = load_split(data, args.mnist_dir)
    if recipe_file and args.calibration > len(train_set[0]):
        raise UsageError("--calibration", f"at most {len(train_set[0])} (the {data} training part)", args.calibration)
    key = baseline_key(name, data, train_set, test_set, epochs, seed)
    if args.baseline is None and baseline.exists():
        _check_cached(baseline, key)

    with _common.made_dir(out):
        seconds = {}
        t = time.perf_counter()
        if baseline.exists():
            model = load_model(baseline)
            if args.baseline is not None:
                _check_architecture(model, name, baseline)
            say(f"dense baseline loaded from {baseline}")
            seconds["baseline_load"] = time.perf_counter() - t
        else:
            model = models.build(name, seed)
            train(model, train_set, epochs=epochs, **_BASELINE_TRAINING, rng=seed,
                  progress="auto" if not args.quiet else False, stream=sys.stderr)
            acc = evaluate(model, test_set)["accuracy"]
            save_model(model, baseline, metadata={**key, "test_accuracy": acc})
            seconds["baseline_train"] = time.perf_counter() - t
            say(f"dense baseline trained ({epochs} epochs, {seconds['baseline_train']:.1f} s) and saved to {baseline}")
        if recipe_file:
            source = {"kind": "reference", "name": name, "data": data, "baseline": str(baseline)}
            return compress_recipe.finish(args, config, model,
                                          RecipeData.from_split(train_set, test_set, calibration=args.calibration),
                                          out, source, say)
        return _compress(args, name, data, model, config, train_set, test_set, out, seconds, say)


def _compress(args, name, data, model, config, train_set, test_set, out, seconds, say) -> int:
    extra, curves = "", None
    if args.sensitivity:
        t = time.perf_counter()
        curves = sensitivity(model, test_set, layers=list(config.sparsity),
                             sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98), executor=args.executor or "serial")
        seconds["sensitivity"] = time.perf_counter() - t
        extra = ("## Pruning sensitivity of the dense baseline\n\n"
                 "Test accuracy (%) with one layer pruned by magnitude to the given sparsity, "
                 "no retraining (Han et al. 2015, Fig. 5):\n\n" + sensitivity_markdown(curves))
        if plot_sensitivity(curves, out / "sensitivity.png"):
            extra += "\n![sensitivity](sensitivity.png)\n"
        say(f"sensitivity sweep: {seconds['sensitivity']:.1f} s")
    result = run_pipeline(model, train_set, test_set, config, progress=False if args.quiet else "auto",
                          stream=sys.stderr, log=say, save_to=out / MODEL_FILE)
    parts = ["refcomp", "compress", "--model", name, "--data", data, "--out", str(out)]
    for flag, value in (("--config", args.config), ("--baseline", args.baseline),
                        ("--baseline-epochs", args.baseline_epochs), ("--mnist-dir", args.mnist_dir),
                        ("--seed", args.seed)):
        if value is not None:
            parts += [flag, str(value)]
    if args.sensitivity:
        parts.append("--sensitivity")
    if args.executor is not None:
        parts += ["--executor", args.executor]
    command = " ".join(shlex.quote(p) for p in parts)
    title = f"Deep Compression of {name} on {data}"
    prov = run_report.provenance(command, data=data, split=_split_text(train_set, test_set), seed=args.seed or 0,
                                 pipeline_seed=config.seed, baseline=str(args.baseline or out / BASELINE_FILE))
    record = run_record(result, title=title, model_name=name, provenance=prov, sensitivity=curves)
    paths = write_report(result, out, title=title, command=command, extra_seconds=seconds, extra_markdown=extra,
                         record=record)
    say(f"compressed model: {result.file} (refcomp.io.load_model reads it)")
    say(f"report: {paths['report']} and {paths['html']}")
    if args.json:
        _common.emit_json({"route": "deep_compression", "model": name, "data": data, "out": out,
                           "files": paths, **result.summary(), "seconds": {**seconds, **result.seconds}})
    return 0
