"""``refcomp compress --recipe FILE``: a TOML recipe (refcomp.pipelines.recipe) run on any model.

    refcomp compress --model digits_mlp --recipe examples/deep_compression.toml --out r
    refcomp compress --model lenet5 --recipe examples/w8a8_static.toml --config mine.toml --out r
    refcomp compress --model-file trained.safetensors --data digits --recipe examples/qat.toml --out r
    refcomp compress --onnx model.onnx --data digits --recipe examples/gptq_w4.toml --out r
    refcomp compress --model minilm --recipe examples/minilm_int8.toml --out r

The model: a reference model's dense baseline (--model NAME, trained or reused
as the Deep Compression route does), a refcomp model file (--model-file), an
ONNX file (--onnx) or all-MiniLM-L6-v2 (--model minilm; calibration from
--calibration-text). ``--config FILE`` is an override merged over the recipe
key by key (docs/recipes.md). The recipe is validated in full before any data
is loaded. Writes into --out: ``model.rcm`` (the compressed model; ``model.safetensors``
when a weight dtype has no compact encoding), ``run.json`` (the run record:
steps, per-step accuracy, bytes and seconds; docs/recipes.md) and ``report.md``.
Several --recipe files, or one with --grid: a sweep (compress_sweep.py).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np

from .. import onnx as rc_onnx
from .. import report as run_report
from ..errors import RefcompError
from ..io import load_model, save_model
from ..io.atomic import write_atomic
from ..models.minilm_l6 import embed, minilm
from ..pipelines.minilm import calibration_batches, format_score, score
from ..pipelines.recipe import RecipeData, is_recipe_file, load_recipe, run_recipe, write_record
from . import _common, compress_sweep
from ._common import UsageError, load_split
from .embed import read_sentences

__all__ = ["recipe_arg", "load", "run_route", "finish", "write_run", "RECORD_FILE"]

RECORD_FILE = "run.json"
_HINT = "a recipe's steps and their keys: docs/recipes.md (refcomp.pipelines.recipe.STEPS)"


def recipe_arg(names):
    """argparse ``type=`` of --recipe: one of ``names`` (the named recipes), or a recipe file (.toml)."""
    def check(value: str) -> str:
        if value in names or is_recipe_file(value):
            return value
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(sorted(names))} or a recipe file (.toml), "
                                         f"got {value!r}")
    return check


def load(args):
    """The validated recipe of --recipe FILE with --config FILE merged over it; errors carry the hint.
    A sweep (several --recipe, or --grid): the list of its recipes, every one validated (compress_sweep.load)."""
    try:
        if compress_sweep.is_sweep(args):
            return compress_sweep.load(args)
        return load_recipe(args.recipe, override=args.config)
    except RefcompError as exc:
        if not getattr(exc, "hint", None):
            exc.hint = _HINT
        raise


def _refuse(args, flags, why: str) -> None:
    for flag in flags:
        value = getattr(args, flag, None)
        if value is not None and value is not False:
            raise UsageError(f"--{flag.replace('_', '-')}", f"not with --recipe FILE {why}", value)


def _command(args) -> str:
    parts = ["refcomp", "compress"]
    for flag in ("model", "model_file", "onnx", "data", "recipe", "grid", "config", "calibration",
                 "calibration_text", "golden", "baseline", "baseline_epochs", "seed", "mnist_dir", "executor", "out"):
        value = getattr(args, flag, None)
        # a sweep's several --recipe files, each with its flag
        values = (getattr(args, "recipes", None) or [value]) if flag == "recipe" else [value]
        for v in values:
            if v is not None and not (flag == "model" and (args.onnx or args.model_file)):
                parts += [f"--{flag.replace('_', '-')}", str(v)]
    return shlex.join(parts)


def run_route(args) -> int:
    """--recipe FILE on --onnx, --model-file or --model minilm (--model NAME: compress.run, then finish)."""
    recipe = load(args)
    _refuse(args, ("baseline", "baseline_epochs", "seed", "export", "group_size", "sensitivity"),
            "on this route (--export: the ONNX route's named recipes)")
    out = _common.output_dir(args.out, "--out")
    say = _common.say(args)
    if args.model == "minilm" and not args.onnx and not args.model_file:
        _refuse(args, ("data", "mnist_dir"), "on --model minilm (its data: --calibration-text)")
        if args.golden and not (Path(args.golden) / "golden.npz").is_file():
            raise UsageError("--golden", "a folder holding golden.npz", repr(args.golden))
        calib = (calibration_batches(read_sentences(args.calibration_text, "--calibration-text"))
                 if args.calibration_text else None)
        data = RecipeData(calibration_batches=calib)
        try:
            recipe.check_available(data.available(), "--model minilm" + ("" if calib else " without --calibration-text"))
        except RefcompError as exc:
            exc.hint = ("--model minilm has no training or test data, only --calibration-text sentences: use steps "
                        "whose data column is '-' or a calibration one (docs/recipes.md, 'The steps')")
            raise
        model, source = minilm(), {"kind": "minilm", "name": "all-MiniLM-L6-v2"}
    else:
        _refuse(args, ("calibration_text", "golden"), "and --onnx / --model-file (MiniLM's)")
        if args.onnx and args.model_file:
            raise UsageError("--model-file", "not with --onnx (one model)", args.model_file)
        src = _common.input_file(args.onnx or args.model_file, "--onnx" if args.onnx else "--model-file",
                                 "ONNX file" if args.onnx else "model file")
        _common.positive_int(args.calibration, "--calibration")
        model = rc_onnx.load(src) if args.onnx else load_model(src)    # a bad file fails before the data loads
        name = args.data or "digits"
        train_set, test_set = load_split(name, args.mnist_dir)
        if args.calibration > len(train_set[0]):
            raise UsageError("--calibration", f"at most {len(train_set[0])} (the {name} training part)",
                             args.calibration)
        data = RecipeData.from_split(train_set, test_set, calibration=args.calibration)
        source = {"kind": "onnx" if args.onnx else "model_file", "path": str(src), "data": name}
    with _common.made_dir(out):
        return finish(args, recipe, model, data, out, source, say)


def finish(args, recipe, model, data: RecipeData, out: Path, source: dict, say) -> int:
    """Run ``recipe`` on ``model``; write the model, run.json and report.md into ``out``.
    ``recipe`` a list (load: several --recipe, or --grid): the sweep (compress_sweep.py)."""
    if isinstance(recipe, list):
        return compress_sweep.finish(args, recipe, model, data, out, source, say)
    say(f"recipe {recipe.name or recipe.source}: {len(recipe.steps)} steps "
        f"({', '.join(s.name for s in recipe.steps)})")
    t = time.perf_counter()
    compressed, record = run_recipe(model, recipe, data, log=say)
    path, page = write_run(args, recipe, model, compressed, record, out, source, say, started=t)
    final = record["final"]
    acc = f"test accuracy {100 * final['accuracy']:.2f} %, " if final["accuracy"] is not None else ""
    base = record["baseline"]["accuracy"]
    acc += f"{100 * (final['accuracy'] - base):+.2f} pp; " if final["accuracy"] is not None and base else ""
    say(f"compressed model: {path} ({acc}{final['file_bytes']:,} B)")
    say(f"run record: {out / RECORD_FILE}; report: {page['html']}")
    if getattr(args, "json", False):
        _common.emit_json({"route": "recipe", "recipe": recipe.name or str(recipe.source), "out": out,
                           "model_file": path, "record": record, "report": page})
    return 0


def write_run(args, recipe, model, compressed, record: dict, out: Path, source: dict, say, started=None):
    """What one recipe run writes into ``out`` (the model file, run.json, report.md, report.html and its
    record.json); ``record`` gains the command, the model's source and the file, and with ``started``
    (a perf_counter time) its ``seconds`` run to the model file written. -> (model file, page files)."""
    record["command"] = _command(args)
    record["model"] = source
    try:
        path = save_model(compressed, out / "model.rcm", format="compact", metadata={"recipe": recipe.name})
    except RefcompError:    # a weight dtype the compact encoding does not hold (bfloat16 ...)
        path = save_model(compressed, out / "model.safetensors", metadata={"recipe": recipe.name})
    record["final"].update(file=path.name, file_bytes=path.stat().st_size)
    if source.get("kind") == "minilm":
        record["final"]["score"] = _minilm_score(compressed, args, say)
    if started is not None:
        record["seconds"] = time.perf_counter() - started
    write_record(record, out / RECORD_FILE)
    write_atomic(out / "report.md", _markdown(record).encode())
    page = run_report.write_report(_page_record(record, model, compressed), out, markdown=False)
    return path, page


def _minilm_score(model, args, say):
    golden = Path(args.golden) if args.golden else Path(__file__).resolve().parents[3] / "shared" / "data" / "minilm"
    if not (golden / "golden.npz").is_file():
        return None
    with np.load(golden / "golden.npz", allow_pickle=False) as z:
        s = score(embed(model, input_ids=z["input_ids"], attention_mask=z["attention_mask"]), z["embeddings"])
    say(f"on the golden sentences, against fp32: {format_score(s)}")
    return {k: float(v) for k, v in s.items()}


def _markdown(record: dict) -> str:
    """A short report.md: the command and one row per step (run.json holds everything)."""
    def pct(a):
        return "" if a is None else f"{100 * a:.2f}"

    def size(b):
        return "" if b is None else f"{b:,}"

    r = record["recipe"]
    rows = [f"| 0 | (model before the recipe) | {pct(record['baseline']['accuracy'])} | "
            f"{size(record['baseline']['bytes'])} | |"]
    rows += [f"| {s['index']} | {s['name']} | {pct(s['accuracy'])} | {size(s['bytes'])} | {s['seconds']:.1f} |"
             for s in record["steps"]]
    return "\n".join([f"# Recipe {r['name'] or r['source']}", "", r["description"], "",
                      f"    {record['command']}", "", "| step | name | test accuracy (%) | bytes | seconds |",
                      "| --- | --- | --- | --- | --- |", *rows, "",
                      f"Compressed model: `{record['final']['file']}` ({size(record['final']['file_bytes'])} B). "
                      f"Every number: `{RECORD_FILE}`.", ""])


def _page_record(record: dict, before, after) -> dict:
    """The HTML report's record (refcomp.report) of a recipe run: the sizes and weights of each layer
    before and after, and one stage per step with the metric measured after it."""
    final, name = record["final"], record["recipe"].get("name") or Path(str(record["recipe"]["source"])).stem
    model = record["model"]
    label = model.get("name") or Path(str(model.get("path", "model"))).name
    score = final.get("score")
    metric = "test accuracy" if score is None else "cosine mean to the fp32 reference (golden set)"
    base = record["baseline"]
    stages = [{"name": "baseline", "bytes": int(base["bytes"]), "metric": base["accuracy"]}]
    stages += [{"name": f"{s['index']}. {s['name']}", "bytes": int(s["bytes"]), "metric": s["accuracy"]}
               for s in record["steps"]]
    if score is not None:
        stages[-1]["metric"] = score.get("cos_mean")
    layers, weights = run_report.model_parts(before, after)
    summary = {"recipe": f"{name}: {', '.join(s['name'] for s in record['steps'])}",
               "model file": f"{final.get('file')}, {final.get('file_bytes', 0):,} B",
               "ratio": f"{final['ratio']:.1f}x (compact model-file bytes, baseline / final)"}
    if final.get("accuracy") is not None:
        summary["test accuracy"] = f"{100 * final['accuracy']:.2f} %"
    return {"title": f"{label} by the recipe {name}", "model": {"name": label, "summary": summary},
            "provenance": run_report.provenance(record.get("command", ""), data=model.get("data"),
                                                recipe=str(record["recipe"].get("source"))),
            "layers": layers, "weights": weights, "stages": stages, "metric": metric}
