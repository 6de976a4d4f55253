"""Running a validated recipe on a model: each step in order, measured, into a JSON-able record.

The record (written as ``run.json`` by ``refcomp compress --recipe FILE``;
docs/recipes.md lists its keys) holds the recipe, the model before the first
step and after each step (test accuracy where there is test data, bytes of the
model in the compact encoding), each step's time and a JSON-able digest of the
report its function returned.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np

from ..._version import __version__
from ...errors import RefcompError, ValidationError
from ...io import compact_file
from ...io.atomic import write_atomic
from ...io.model_file import _tensors_and_header
from ...nn.train import evaluate
from .registry import STEPS
from .schema import Recipe

__all__ = ["RecipeData", "run_recipe", "model_bytes", "write_record", "RECORD_FORMAT"]

RECORD_FORMAT = "refcomp.recipe_run"


@dataclasses.dataclass
class RecipeData:
    """What the steps may be given (registry.CONTEXT); None where a route has none."""
    train: tuple | None = None
    test: tuple | None = None
    calibration_x: object = None
    calibration_batches: list | None = None
    calibration_set: tuple | None = None

    @classmethod
    def from_split(cls, train_set, test_set, *, calibration: int = 500, batch: int = 100) -> "RecipeData":
        """Train / test parts; calibration = the first ``calibration`` training samples (in batches of ``batch``)."""
        x, y = train_set[0][:calibration], train_set[1][:calibration]
        return cls(train=train_set, test=test_set, calibration_x=x, calibration_set=(x, y),
                   calibration_batches=[x[i:i + batch] for i in range(0, len(x), batch)])

    def available(self) -> set:
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def model_bytes(model) -> int | None:
    """Bytes of ``model`` in the compact model-file encoding (what ``model.rcm`` takes), None if it has none
    (a weight dtype the compact encoding does not store)."""
    try:
        tensors, header = _tensors_and_header(model, None)
        return len(compact_file.encode(header, tensors))
    except RefcompError:
        return None


def _jsonable(x, depth: int = 0):
    """``x`` reduced to what JSON holds: numbers, strings, small lists and tables; arrays by their shape."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else str(float(x))
    if isinstance(x, str) or x is None:
        return x
    if depth >= 4:
        return type(x).__name__
    if isinstance(x, np.ndarray):
        return x.tolist() if x.size <= 16 else f"array{tuple(x.shape)} {x.dtype}"
    if isinstance(x, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in x[:256]]
    if dataclasses.is_dataclass(x):
        return _jsonable(dataclasses.asdict(x), depth + 1)
    return type(x).__name__


def _measure(model, data: RecipeData) -> dict:
    accuracy = float(evaluate(model, data.test)["accuracy"]) if data.test is not None else None
    return {"accuracy": accuracy, "bytes": model_bytes(model)}


def run_recipe(model, recipe: Recipe, data: RecipeData, *, log=None, measure: bool = True):
    """(the model after every step, the run record); ``model`` itself is not modified by the steps.

    log : optional callable(str), one line per step. measure : evaluate and size the model
        before the first step and after each one (off: only the final model is measured).
    """
    if not isinstance(recipe, Recipe):
        raise ValidationError("recipe", "a Recipe (refcomp.pipelines.recipe.load_recipe)", type(recipe).__name__)
    recipe.check_available(data.available(), "this data")
    say = log or (lambda s: None)
    start = time.perf_counter()
    before = _measure(model, data) if measure else {"accuracy": None, "bytes": None}
    record = {"format": RECORD_FORMAT, "version": 1, "refcomp_version": __version__,
              "recipe": {"name": recipe.name, "description": recipe.description, "source": recipe.source,
                         "steps": [{"name": s.name, **s.params} for s in recipe.steps]},
              "baseline": before, "steps": []}
    for step in recipe.steps:
        spec = STEPS[step.name]
        given = {arg: getattr(data, key) for arg, key in spec.needs.items()}
        t = time.perf_counter()
        try:
            model, report = spec.fn(model, **given, **step.call_kwargs())
        except RefcompError as exc:
            # what only the model itself can refuse (a graph where a Sequential is needed ...): say which step
            exc.args = (f"{step.label}: {exc}",)
            raise
        seconds = time.perf_counter() - t
        row = {"index": step.index, "name": step.name, "family": spec.family, "params": _jsonable(step.params),
               "seconds": seconds, **(_measure(model, data) if measure or step is recipe.steps[-1]
                                      else {"accuracy": None, "bytes": None}),
               "report": _jsonable(report)}
        record["steps"].append(row)
        acc = f", test accuracy {100 * row['accuracy']:.2f} %" if row["accuracy"] is not None else ""
        size = f", {row['bytes']:,} B" if row["bytes"] is not None else ""
        say(f"{step.label}: {seconds:.1f} s{acc}{size}")
    last = record["steps"][-1]
    ratio = before["bytes"] / last["bytes"] if before["bytes"] and last["bytes"] else None
    record["final"] = {"accuracy": last["accuracy"], "bytes": last["bytes"], "ratio": ratio}
    record["seconds"] = time.perf_counter() - start
    return model, record


def write_record(record: dict, path):
    """``record`` as indented JSON at ``path``, atomically."""
    return write_atomic(path, (json.dumps(record, indent=2, sort_keys=False) + "\n").encode())
