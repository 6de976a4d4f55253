"""Recipe sweeps: several recipes run on the same model and data as independent tasks through an executor.

Each recipe is one task (refcomp.executors.run_tasks): it gets its own copy of
the model, runs every step (run.run_recipe) and returns the compressed model
and its run record. The tasks share nothing, and a step that draws random
numbers takes its seed from the recipe, so the records are the same whatever
runs them: in this process, in worker processes or on a dask cluster
(docs/recipes.md, "Sweeps"; docs/executors.md).

:func:`grid` expands one recipe over the values of one step's key
(``sparsity`` of step 1 at 0.5, 0.7, 0.9) into several recipes, each merged
and validated like an override (merge.py), before any work.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path

from ...errors import ValidationError
from ...executors import check_executor, run_tasks
from .merge import merge_recipe
from .run import RecipeData, run_recipe
from .schema import Recipe, parse_recipe

__all__ = ["run_sweep", "grid", "recipe_label", "FOLDER_NAME"]

#: a name that can name a folder (the CLI writes each recipe of a sweep into --out/NAME/)
FOLDER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]*$")


def recipe_label(recipe: Recipe) -> str:
    """The name a sweep gives ``recipe``: its ``name``, else its file's stem."""
    return recipe.name or Path(str(recipe.source)).stem


def _one_blas_thread():
    """NumPy's BLAS limited to one thread for a task (threadpoolctl comes with scikit-learn).

    Why: a training step's float sums depend on BLAS's thread count (OpenBLAS
    gives results one float32 ulp apart after a few epochs), and a dask
    worker runs BLAS on one thread (its nanny sets OPENBLAS_NUM_THREADS=1)
    while this process may run it on all cores. One thread everywhere gives
    the same records whatever the executor, as the CLI does (refcomp.cli)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _run_one(model, recipe: Recipe, data: RecipeData, measure: bool):
    """One task: ``recipe`` on a copy of ``model``. The copy matters under the serial executor, where every
    task gets the caller's own object: no step may leave a trace that the next recipe would start from."""
    with _one_blas_thread():
        return run_recipe(copy.deepcopy(model), recipe, data, measure=measure)


def run_sweep(model, recipes: Sequence[Recipe], data: RecipeData, *, executor="serial", measure: bool = True) -> list:
    """``[(compressed model, run record)]``, one per recipe, in the order of ``recipes``.

    Every recipe runs from a copy of ``model`` (which is not modified) as an
    independent task of ``executor``: a name of refcomp.executors.EXECUTORS
    (made and shut down here) or a ``concurrent.futures.Executor`` kept open
    by the caller. Every recipe is checked against ``data`` before any task
    starts. Each task runs NumPy's BLAS on one thread (the tasks are the
    parallelism), so the records are those of ``run_recipe`` run one after
    the other under that limit (bar their timings), whatever the executor.
    """
    recipes = list(recipes) if isinstance(recipes, (list, tuple)) else recipes
    if not isinstance(recipes, list) or not recipes:
        raise ValidationError("recipes", "a non-empty list of Recipe", repr(recipes))
    for i, recipe in enumerate(recipes):
        if not isinstance(recipe, Recipe):
            raise ValidationError(f"recipes[{i}]", "a Recipe (refcomp.pipelines.recipe.load_recipe)",
                                  type(recipe).__name__)
        try:
            recipe.check_available(data.available(), "this data")
        except ValidationError as exc:
            exc.args = (f"recipe {recipe_label(recipe)!r}: {exc}",)
            raise
    if not isinstance(executor, Executor):
        check_executor(executor)
    return run_tasks(_run_one, [(model, recipe, data, measure) for recipe in recipes], executor)


def _value_label(value, i: int) -> str:
    """A grid point's part of its recipe's name: the value itself when it is a plain one, else its number."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if isinstance(value, (bool, int, float, str)) and FOLDER_NAME.match(text) else str(i + 1)


def grid(recipe: Recipe, step, key: str, values: Sequence) -> list:
    """One recipe per value of ``values``: ``recipe`` with ``key`` of the step ``step`` set to it.

    step : the step's number (from 1) or its name (the one step of that name),
        as in an override's ``[steps.N]`` (merge.py).
    Each recipe is merged and validated in full here (a value of the wrong
    type or out of range raises, naming the step and key); its name is
    ``<recipe name>-<key>-<value>`` (the value's position, from 1, when the
    value is a table or an array).
    """
    if not isinstance(recipe, Recipe):
        raise ValidationError("recipe", "a Recipe (refcomp.pipelines.recipe.load_recipe)", type(recipe).__name__)
    if not isinstance(key, str) or not key or key == "name":
        raise ValidationError("grid key", "the name of a step's key (not 'name')", repr(key))
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) < 1:
        raise ValidationError(f"grid {key}", "a non-empty list of values", repr(values))
    if any(values[i] == values[j] for i in range(len(values)) for j in range(i)):
        raise ValidationError(f"grid {key}", "distinct values (one recipe each)", repr(list(values)))
    base = recipe_label(recipe)
    out = []
    for i, value in enumerate(values):
        table = merge_recipe(recipe.table, {"steps": {str(step): {key: value}}})
        table["name"] = f"{base}-{key}-{_value_label(value, i)}"
        out.append(parse_recipe(table, source=recipe.source))
    return out
