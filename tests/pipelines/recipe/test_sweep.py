"""refcomp.pipelines.recipe.sweep: several recipes on one model as independent tasks, the same records in the
order given whatever the executor (serial, worker processes, a local dask cluster), the model untouched;
grid: one recipe over the values of one step's key, validated before any work."""

import copy
import hashlib
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.executors import SerialExecutor, get_executor
from refcomp.pipelines.recipe import STEPS, RecipeData, grid, load_recipe, parse_recipe, run_sweep
from refcomp.pipelines.recipe.registry import StepSpec

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _recipes():
    """The slowest first (it finishes last in a pool), one that draws random numbers (its seed in the recipe)."""
    tuned = parse_recipe({"name": "prune-tune", "step": [{"name": "prune", "sparsity": 0.6},
                                                          {"name": "fine_tune", "epochs": 1, "rng": 3}]})
    return [load_recipe(EXAMPLES / "deep_compression.toml"), load_recipe(EXAMPLES / "w8a8_dynamic.toml"), tuned]


#: what a run's report measures of the machine, not of the model
_TIMINGS = {"seconds", "samples_per_s"}


def _untimed(x):
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in _TIMINGS}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def _measured(results, x):
    """What must not depend on the executor: each record bar its timings, and each model's outputs on ``x``."""
    return [(_untimed(record), hashlib.sha256(np.ascontiguousarray(model(x)).tobytes()).hexdigest())
            for model, record in results]


def test_every_executor_gives_the_serial_records_in_order(digits):
    model, data = digits
    before = copy.deepcopy(model.state_dict())
    recipes, x = _recipes(), data.test[0][:64]
    serial = run_sweep(model, recipes, data)
    assert [r["recipe"]["name"] for _, r in serial] == ["deep-compression", "w8a8-dynamic", "prune-tune"]
    assert len({str(r["baseline"]) for _, r in serial}) == 1                    # every one from the same model
    assert serial[0][1]["final"]["ratio"] > 8 and serial[2][1]["final"]["accuracy"] > 0.5
    with get_executor("process", 2) as pool:                                    # deep-compression finishes last
        assert _measured(run_sweep(model, recipes, data, executor=pool), x) == _measured(serial, x)
    pytest.importorskip("dask.distributed")
    with get_executor("dask", 2) as cluster:
        assert _measured(run_sweep(model, recipes, data, executor=cluster), x) == _measured(serial, x)
    for k, v in model.state_dict().items():                                     # the input model is untouched
        np.testing.assert_array_equal(v, before[k])


def test_the_records_are_those_of_run_recipe(digits):
    from threadpoolctl import threadpool_limits

    from refcomp.pipelines.recipe import run_recipe

    model, data = digits
    recipe = _recipes()[2]
    (swept, record), = run_sweep(model, [recipe], data)
    with threadpool_limits(limits=1, user_api="blas"):          # as each task runs
        alone = run_recipe(model, recipe, data)
    x = data.test[0][:64]
    assert _measured([(swept, record)], x) == _measured([alone], x)


def _scale_in_place(model, factor: float = 2.0):
    """A step that changes the model it is given (no refcomp step does; the sweep must not depend on that)."""
    for array in model.state_dict().values():      # the arrays themselves, not copies
        array *= factor
    return model, {}


def test_each_recipe_starts_from_its_own_copy_of_the_model(digits, monkeypatch):
    monkeypatch.setitem(STEPS, "scale_in_place", StepSpec(_scale_in_place, "test", "scales the weights in place"))
    model, data = digits
    model = copy.deepcopy(model)
    before = copy.deepcopy(model.state_dict())
    recipe = parse_recipe({"step": [{"name": "scale_in_place"}]})
    first, second = run_sweep(model, [recipe, recipe], data)
    assert first[1]["baseline"] == second[1]["baseline"] and first[1]["final"] == second[1]["final"]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


class _Counting(SerialExecutor):
    def __init__(self):
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_the_tasks_go_through_the_executor_given(digits):
    model, data = digits
    recipes = _recipes()[1:]
    ex = _Counting()
    assert len(run_sweep(model, recipes, data, executor=ex)) == 2 and ex.submitted == 2


@pytest.mark.parametrize("call, message", [
    (lambda m, d: run_sweep(m, [], d), "recipes: expected a non-empty list"),
    (lambda m, d: run_sweep(m, [EXAMPLES / "qat.toml"], d), r"recipes\[0\]: expected a Recipe"),
    (lambda m, d: run_sweep(m, _recipes(), d, executor="threads"), "executor: expected one of serial"),
    (lambda m, d: run_sweep(m, [_recipes()[1], load_recipe(EXAMPLES / "qat.toml")], RecipeData(test=d.test)),
     r"recipe 'qat': step 1 \(qat\): expected a route with calibration inputs"),
])
def test_bad_arguments_are_refused_before_any_task(call, message, digits, monkeypatch):
    import refcomp.pipelines.recipe.sweep as sweep_module

    def no_tasks(*a, **k):
        raise AssertionError("a task ran")

    monkeypatch.setattr(sweep_module, "run_tasks", no_tasks)
    with pytest.raises(ValidationError, match=message):
        call(*digits)


def test_grid_expands_one_key_of_one_step():
    base = load_recipe(EXAMPLES / "deep_compression.toml")
    by_number = grid(base, 1, "sparsity", [0.5, 0.7, 0.9])
    assert [r.name for r in by_number] == ["deep-compression-sparsity-0.5", "deep-compression-sparsity-0.7",
                                           "deep-compression-sparsity-0.9"]
    assert [r.steps[0].params["sparsity"] for r in by_number] == [0.5, 0.7, 0.9]
    assert all(r.steps[1:] == base.steps[1:] and r.steps[0].params["rounds"] == 3 for r in by_number)
    by_name = grid(base, "cluster", "bits", [4, 6])
    assert [r.steps[1].params["bits"] for r in by_name] == [4, 6] and by_name[0].name == "deep-compression-bits-4"
    tables = grid(base, "prune_gradual", "sparsity", [{"fc1": 0.9}, {"fc1": 0.5}])
    assert [r.name for r in tables] == ["deep-compression-sparsity-1", "deep-compression-sparsity-2"]


@pytest.mark.parametrize("step, key, values, message", [
    (1, "sparsity", [0.5, 1.5], r"step 1 \(prune_gradual\): sparsity: expected"),
    (1, "sparsty", [0.5], r"step 1 \(prune_gradual\): sparsty: expected a key among"),
    (9, "sparsity", [0.5], r"steps.9: expected a step number 1..4"),
    ("quantize_dynamic", "bits", [4], r"steps.quantize_dynamic: expected a step number or the name"),
    (1, "sparsity", [], r"grid sparsity: expected a non-empty list"),
    (1, "sparsity", [0.5, 0.5], r"grid sparsity: expected distinct values"),
    (1, "name", ["prune"], r"grid key: expected the name of a step's key"),
])
def test_a_bad_grid_is_refused(step, key, values, message):
    with pytest.raises(ValidationError, match=message):
        grid(load_recipe(EXAMPLES / "deep_compression.toml"), step, key, values)
