"""refcomp.pipelines.recipe.merge: overrides merged key by key, steps replaced or addressed."""

import pytest

from refcomp.errors import ValidationError
from refcomp.pipelines.recipe import merge_recipe, merge_tables

BASE = {"name": "base", "step": [{"name": "prune", "sparsity": 0.5, "criterion": "magnitude"},
                                 {"name": "cluster", "bits": 5},
                                 {"name": "finetune_centroids", "epochs": 1, "lr": 1e-3}]}


def test_tables_merge_recursively_and_other_values_replace():
    base = {"a": 1, "t": {"x": 1, "y": {"p": 1, "q": 2}}, "arr": [1, 2]}
    out = merge_tables(base, {"t": {"y": {"q": 3}}, "arr": [9]})
    assert out == {"a": 1, "t": {"x": 1, "y": {"p": 1, "q": 3}}, "arr": [9]}
    assert base["t"]["y"]["q"] == 2                       # the base is not changed
    assert merge_tables({"t": {"x": 1}}, {"t": 5}) == {"t": 5}


def test_step_list_replaced_by_step_tables():
    out = merge_recipe(BASE, {"step": [{"name": "quantize_dynamic"}]})
    assert out["step"] == [{"name": "quantize_dynamic"}] and out["name"] == "base"


def test_one_step_addressed_by_number_or_name():
    out = merge_recipe(BASE, {"steps": {"1": {"sparsity": 0.9}, "finetune_centroids": {"epochs": 3}}})
    assert out["step"][0] == {"name": "prune", "sparsity": 0.9, "criterion": "magnitude"}
    assert out["step"][2] == {"name": "finetune_centroids", "epochs": 3, "lr": 1e-3}
    assert out["step"][1] == BASE["step"][1] and "steps" not in out
    assert BASE["step"][0]["sparsity"] == 0.5


@pytest.mark.parametrize("override, message", [
    ({"steps": {"4": {"bits": 4}}}, r"steps\.4: expected a step number 1\.\.3"),
    ({"steps": {"huffman": {"index_bits": 4}}}, r"steps\.huffman: .*got no such step"),
    ({"steps": {"1": 5}}, r"steps\.1: expected a table"),
    ({"step": [], "steps": {}}, "either"),
])
def test_bad_addresses(override, message):
    with pytest.raises(ValidationError, match=message):
        merge_recipe(BASE, override)


def test_an_ambiguous_name_asks_for_a_number():
    twice = {"step": [{"name": "fine_tune"}, {"name": "prune"}, {"name": "fine_tune"}]}
    with pytest.raises(ValidationError, match=r"2 steps of that name \(numbers 1, 3"):
        merge_recipe(twice, {"steps": {"fine_tune": {"epochs": 2}}})
    assert merge_recipe(twice, {"steps": {"3": {"epochs": 2}}})["step"][2] == {"name": "fine_tune", "epochs": 2}
