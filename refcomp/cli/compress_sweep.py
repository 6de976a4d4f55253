"""``refcomp compress --recipe A.toml --recipe B.toml ... [--executor serial|process|dask]``: a recipe sweep.

    refcomp compress --model digits_mlp --recipe examples/w8a8_static.toml --recipe examples/gptq_w4.toml --out s
    refcomp compress --model-file m.rcm --data digits --recipe examples/deep_compression.toml \\
        --grid "1.sparsity=[0.5, 0.7, 0.9]" --executor process --out s

Every recipe (several --recipe files, or one expanded by --grid STEP.KEY=[V, ...])
runs on the same model and data as an independent task of --executor
(refcomp.pipelines.recipe.sweep; serial by default). Every file is validated
before any work. Writes into --out one folder per recipe, named by the recipe,
holding what a single --recipe run writes (model.rcm, run.json, report.md,
report.html), and the sweep's own ``sweep.json`` and ``report.html`` (accuracy
vs size, one point per recipe). docs/recipes.md, "Sweeps".
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import report as run_report
from .._version import __version__
from ..errors import ValidationError
from ..pipelines.recipe import RecipeData, grid, load_recipe, recipe_label, run_sweep, write_record
from ..pipelines.recipe.sweep import FOLDER_NAME
from . import _common, compress_recipe
from ._common import UsageError

__all__ = ["is_sweep", "load", "finish", "SWEEP_FILE", "SWEEP_FORMAT"]

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = "refcomp.recipe_sweep"
#: what the sweep itself writes into --out (a recipe folder of that name would collide)
_OWN = {SWEEP_FILE, run_report.HTML_FILE, run_report.RECORD_FILE, "baseline.safetensors"}


def is_sweep(args) -> bool:
    """Whether the command is a sweep: several --recipe files, or --grid."""
    return len(getattr(args, "recipes", None) or []) > 1 or getattr(args, "grid", None) is not None


def _parse_grid(text: str):
    """``STEP.KEY=[V, ...]`` -> (STEP, KEY, [V, ...]); the values are a TOML array."""
    import tomllib

    where, sep, values = text.partition("=")
    step, dot, key = where.strip().partition(".")
    form = "STEP.KEY=[V, ...] (STEP a step's number from 1 or its name; the values a TOML array)"
    if not sep or not dot or not step or not key.strip():
        raise UsageError("--grid", form, repr(text))
    try:
        parsed = tomllib.loads(f"v = {values.strip()}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise UsageError("--grid", form, f"{values.strip()!r}, not a TOML value ({exc})") from None
    if not isinstance(parsed, list) or not parsed:
        raise UsageError("--grid", form, repr(values.strip()))
    return step.strip(), key.strip(), parsed


def load(args) -> list:
    """Every recipe of the sweep, validated (with --config merged over each), their folders checked."""
    files = list(args.recipes)
    for value in files:
        if not value.endswith(".toml") and not Path(value).is_file():
            raise UsageError("--recipe", "recipe files (.toml) in a sweep, not a named recipe", repr(value))
    if args.grid is not None and len(files) > 1:
        raise UsageError("--grid", "one --recipe to expand", f"{len(files)} --recipe files")
    recipes = [load_recipe(f, override=args.config) for f in files]
    if args.grid is not None:
        step, key, values = _parse_grid(args.grid)
        try:
            recipes = grid(recipes[0], step, key, values)
        except ValidationError as exc:      # a value the step refuses: say it came from --grid
            exc.args = (f"--grid: {exc}",)
            raise
    labels = [recipe_label(r) for r in recipes]
    for label, recipe in zip(labels, recipes):
        if not FOLDER_NAME.match(label) or label in _OWN:
            raise UsageError(f"--recipe {recipe.source}", "a recipe name that can name its folder in --out "
                             f"(letters, digits, ._=+-; not {', '.join(sorted(_OWN))})", repr(label),
                             "set name = \"...\" in the recipe file")
        if labels.count(label) > 1:
            raise UsageError(f"--recipe {recipe.source}", "recipes of distinct names (each writes --out/NAME/)",
                             f"{labels.count(label)} recipes named {label!r}", "set name = \"...\" in the files")
        _common.output_dir(Path(args.out) / label, "--out")
    return recipes


def _row(label: str, recipe, record: dict, folder: Path) -> dict:
    """The sweep's line of one recipe: where it went and what it reached."""
    final = record["final"]
    return {"name": label, "source": str(recipe.source), "folder": folder.name,
            "steps": [s.name for s in recipe.steps], "accuracy": final["accuracy"], "bytes": final["bytes"],
            "ratio": final["ratio"], "file": f"{folder.name}/{final['file']}", "file_bytes": final["file_bytes"],
            "score": final.get("score"), "seconds": record["seconds"]}


def _line(row: dict) -> str:
    """One recipe's summary line; its bytes those of the ratio (the compact encoding), as on the page."""
    acc = f"test accuracy {100 * row['accuracy']:.2f} %, " if row["accuracy"] is not None else ""
    size = row["bytes"] if row["bytes"] is not None else row["file_bytes"]
    ratio = f" ({row['ratio']:.1f}x)" if row["ratio"] else ""
    return f"{row['name']}: {acc}{size:,} B{ratio}, {row['seconds']:.1f} s -> {row['file']}"


def finish(args, recipes: list, model, data: RecipeData, out: Path, source: dict, say) -> int:
    """Run the sweep through --executor; write each recipe's folder, sweep.json and the summary page."""
    executor = args.executor or "serial"
    labels = [recipe_label(r) for r in recipes]
    say(f"sweep of {len(recipes)} recipes ({', '.join(labels)}) through the {executor} executor")
    t = time.perf_counter()
    results = run_sweep(model, recipes, data, executor=executor)
    rows = []
    for label, recipe, (compressed, record) in zip(labels, recipes, results):
        folder = out / label
        folder.mkdir(exist_ok=True)
        compress_recipe.write_run(args, recipe, model, compressed, record, folder, source, say)
        rows.append(_row(label, recipe, record, folder))
        say(_line(rows[-1]))
    summary = {"format": SWEEP_FORMAT, "version": 1, "refcomp_version": __version__,
               "command": results[0][1]["command"], "model": source, "executor": executor,
               "baseline": results[0][1]["baseline"], "recipes": rows, "seconds": time.perf_counter() - t}
    write_record(summary, out / SWEEP_FILE)
    page = run_report.write_report(_page_record(summary), out, markdown=False)
    say(f"sweep record: {out / SWEEP_FILE}; report: {page['html']}")
    if getattr(args, "json", False):
        _common.emit_json({"route": "recipe_sweep", "out": out, "executor": executor, "baseline": summary["baseline"],
                           "recipes": rows, "record": out / SWEEP_FILE, "report": page})
    return 0


def _page_record(summary: dict) -> dict:
    """The summary page's record (refcomp.report): one stage per recipe, the model before them first."""
    model = summary["model"]
    label = model.get("name") or Path(str(model.get("path", "model"))).name
    rows = summary["recipes"]
    scored = all(r["score"] is not None for r in rows)
    metric = "cosine mean to the fp32 reference (golden set)" if scored else "test accuracy"
    base = summary["baseline"]
    stages = [] if scored or base["bytes"] is None else [{"name": "baseline", "bytes": int(base["bytes"]),
                                                          "metric": base["accuracy"]}]
    # bytes: the compact encoding's, as in each run's own page; the file's when the encoding has none (bfloat16)
    stages += [{"name": r["name"], "bytes": int(r["bytes"] if r["bytes"] is not None else r["file_bytes"]),
                "metric": r["score"]["cos_mean"] if scored else r["accuracy"]} for r in rows]
    summary_table = {"recipes": ", ".join(r["name"] for r in rows), "executor": summary["executor"],
                     "baseline": (f"{100 * base['accuracy']:.2f} %, " if base["accuracy"] is not None else "")
                     + (f"{base['bytes']:,} B" if base["bytes"] is not None else "")}
    for r in rows:
        summary_table[r["name"]] = _line(r).split(": ", 1)[1]
    return {"title": f"{label}: a sweep of {len(rows)} recipes", "model": {"name": label, "summary": summary_table},
            "provenance": run_report.provenance(summary["command"], data=model.get("data"),
                                                executor=summary["executor"]),
            "stages": stages, "metric": metric,
            "notes": ["One point per recipe (each run from the same model, the first point), in the order given; "
                      "each recipe's own page is in its folder."]}
