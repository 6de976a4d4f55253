"""refcomp.pipelines.recipe.run: every recipe of examples/ runs on digits_mlp (a few seconds each), its record
is JSON, and each example does what it says; MiniLM's is the named recipe it replaces, bit for bit."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from refcomp import models
from refcomp.errors import ValidationError
from refcomp.formats.relative_csr import RelativeIndexCSR
from refcomp.nn.train import evaluate
from refcomp.pipelines.recipe import RecipeData, load_recipe, parse_recipe, run_recipe

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
#: example -> the least compression (baseline bytes / final bytes, compact encoding) it must reach on digits_mlp
RATIO = {"deep_compression": 8.0, "w8a8_static": 3.0, "w8a8_dynamic": 3.0, "qat": 3.0, "gptq_w4": 5.0,
         "distillation": 3.5, "lowrank": 2.0}


def test_every_example_is_covered():
    assert {p.stem for p in EXAMPLES.glob("*.toml")} == set(RATIO) | {"minilm_int8"}


def _layers(model):
    return dict(model.named_modules())


@pytest.mark.parametrize("example", sorted(RATIO))
def test_example_runs_on_digits(example, digits):
    model, data = digits
    before = copy.deepcopy(model.state_dict())
    recipe = load_recipe(EXAMPLES / f"{example}.toml")
    out, record = run_recipe(model, recipe, data)
    json.dumps(record)                                                    # a report can read it
    assert [s["name"] for s in record["steps"]] == [s.name for s in recipe.steps]
    assert all(s["seconds"] >= 0 and s["bytes"] > 0 for s in record["steps"])
    final, base = record["final"], record["baseline"]
    assert final["accuracy"] == pytest.approx(evaluate(out, data.test)["accuracy"])
    assert final["accuracy"] >= base["accuracy"] - 0.03, record
    assert final["ratio"] == pytest.approx(base["bytes"] / final["bytes"]) and final["ratio"] >= RATIO[example]
    for k, v in model.state_dict().items():                               # the input model is untouched
        np.testing.assert_array_equal(v, before[k])
    layers = _layers(out)
    if example == "deep_compression":
        assert all(isinstance(layers[n].weight, RelativeIndexCSR) for n in ("fc1", "fc2"))
        assert np.mean(layers["fc1"].weight.to_dense() == 0) == pytest.approx(0.8, abs=0.01)
    if example == "gptq_w4":
        w = layers["fc1"].weight
        assert str(w.qparams.dtype) == "int4" and w.qparams.scale.shape == (128, 2)     # groups of 32 of 64
    if example == "distillation":
        assert layers["fc1"].weight.shape == (32, 64)


def test_a_step_needing_data_the_route_lacks_is_refused_before_work():
    recipe = parse_recipe({"step": [{"name": "quantize_dynamic"}, {"name": "qat"}]})
    with pytest.raises(ValidationError, match=r"^step 2 \(qat\): expected a route with calibration inputs"):
        run_recipe(models.digits_mlp(0), recipe, RecipeData(calibration_batches=[np.zeros((1, 64))]))


def test_the_minilm_example_is_the_named_recipe(minilm_model, minilm_golden):
    from refcomp.models.minilm_l6 import embed
    from refcomp.pipelines.minilm import compress_minilm

    recipe = load_recipe(EXAMPLES / "minilm_int8.toml")
    recipe.check_available(RecipeData().available(), "--model minilm")    # needs no data at all
    out, record = run_recipe(minilm_model, recipe, RecipeData(), measure=False)   # the last step is measured
    named, _ = compress_minilm(minilm_model, "w8a8-dynamic-per-token-int8-emb")
    ids, mask = minilm_golden["input_ids"][:8], minilm_golden["attention_mask"][:8]
    np.testing.assert_array_equal(embed(out, input_ids=ids, attention_mask=mask),
                                  embed(named, input_ids=ids, attention_mask=mask))
    assert record["final"]["bytes"] < 25e6 and record["baseline"] == {"accuracy": None, "bytes": None}
    assert record["steps"][0]["bytes"] is None and record["final"]["ratio"] is None


def test_an_error_only_the_model_can_raise_names_the_step(digits):
    """A layer name the recipe cannot know is wrong until it meets the model: the step is named then."""
    model, data = digits
    recipe = parse_recipe({"step": [{"name": "evaluate"}, {"name": "lowrank", "ranks": {"fc9": 4}}]})
    with pytest.raises(ValidationError, match=r"^step 2 \(lowrank\): .*fc9"):
        run_recipe(model, recipe, data)
