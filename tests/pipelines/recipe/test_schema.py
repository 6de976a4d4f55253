"""refcomp.pipelines.recipe.schema: every mistake in a recipe named (step number, name, key) before any work."""

import pytest

from refcomp.errors import FileFormatError, ValidationError
from refcomp.pipelines.recipe import load_recipe, parse_recipe


def steps(*tables, **top):
    return {**top, "step": list(tables)}


def test_a_valid_recipe_keeps_order_and_keys():
    r = parse_recipe(steps({"name": "prune", "sparsity": {"fc1": 0.5}}, {"name": "sparsegpt", "n_m": [2, 4]},
                           {"name": "quantize_weights", "bits": 4, "group_size": 16}, name="x"))
    assert [s.name for s in r.steps] == ["prune", "sparsegpt", "quantize_weights"]
    assert [s.index for s in r.steps] == [1, 2, 3] and r.name == "x"
    assert r.steps[1].call_kwargs() == {"n_m": (2, 4)}         # a TOML array becomes the tuple asked for
    assert r.needs() == {"calibration_set", "calibration_batches"}


@pytest.mark.parametrize("table, message", [
    # unknown step
    (steps({"name": "prune"}, {"name": "quantise"}), r"^step 2: name: expected one of \[.*'quantize_static'.*got 'quantise'"),
    (steps({"sparsity": 0.5}), r"^step 1: name: expected one of .*got no name"),
    # unknown key, and a key the runner supplies
    (steps({"name": "prune", "sparsty": 0.5}), r"^step 1 \(prune\): sparsty: expected a key among \[.*'sparsity'.*"
                                               r"got unknown key 'sparsty'"),
    (steps({"name": "quantize_static", "calibration_x": [1.0]}),
     r"^step 1 \(quantize_static\): calibration_x: .*comes from the data: calibration inputs"),
    # wrong type
    (steps({"name": "quantize_static", "observer": 5}), r"^step 1 \(quantize_static\): observer: expected a string, got 5"),
    (steps({"name": "quantize_dynamic", "per_token": 1}), r"per_token: expected true or false, got 1"),
    (steps({"name": "fine_tune", "epochs": True}), r"\(fine_tune\): epochs: expected an integer, got True"),
    (steps({"name": "fine_tune", "epochs": 1.5}), r"epochs: expected an integer, got 1.5"),
    (steps({"name": "sparsegpt", "n_m": [2]}), r"\(sparsegpt\): n_m: expected an array of 2 integers"),
    (steps({"name": "quantize_weights", "bits": {"fc1": 4.5}}), r"bits: expected an integer or a table of integers"),
    (steps({"name": "cluster", "bits": 4, "layers": "fc1"}), r"\(cluster\): layers: expected an array of strings"),
    (steps({"name": "prune", "sparsity": float("nan")}), r"sparsity: expected a number or a table"),
    # wrong range / choice
    (steps({"name": "prune", "sparsity": 1.5}), r"^step 1 \(prune\): sparsity: expected a real number in \[0, 1\), got 1.5"),
    (steps({"name": "prune", "sparsity": {"fc1": 0.5, "fc2": -0.1}}), r"\(prune\): sparsity\['fc2'\]: expected a real"),
    (steps({"name": "quantize_static", "observer": "max"}), r"observer: expected one of \('minmax'"),
    (steps({"name": "quantize_weights", "bits": 9}), r"bits: expected an integer in \[2, 8\], got 9"),
    (steps({"name": "fine_tune", "epochs": 0}), r"\(fine_tune\): epochs: expected an integer >= 1, got 0"),
    (steps({"name": "fine_tune", "momentum": 1.0}), r"momentum: expected a real number in \[0, 1\)"),
    # missing required key
    (steps({"name": "evaluate"}, {"name": "lowrank"}), r"^step 2 \(lowrank\): ranks: expected a value \(a table.*"
                                                       r"got none \(a required key\)"),
    # keys that go together
    (steps({"name": "cluster", "bits": 4, "init": "random"}),
     r"^step 1 \(cluster\): rng: expected a value with init = 'random' \(the seed"),
    (steps({"name": "sparsegpt"}), r"^step 1 \(sparsegpt\): sparsity / n_m: expected exactly one of sparsity, n_m, got none"),
    (steps({"name": "sparsegpt", "sparsity": 0.5, "n_m": [2, 4]}), r"exactly one of sparsity, n_m, got sparsity, n_m"),
    (steps({"name": "prune", "granularity": "nm", "n": 2}), r"^step 1 \(prune\): m: expected a value with granularity"),
    (steps({"name": "distill", "epochs": 1}), r"^step 1 \(distill\): widths / drop: expected at least one of"),
    # the recipe itself
    ({"name": "x"}, r"^step: expected one or more \[\[step\]\] tables, got none"),
    ({"step": [{"name": "evaluate"}], "stpe": []}, r"^recipe: expected top-level keys among .*unknown \['stpe'\]"),
    ({"step": [{"name": "evaluate"}], "name": 3}, r"^name: expected a string"),
    ({"step": ["prune"]}, r"^step 1: expected a \[\[step\]\] table"),
])
def test_mistakes_are_named(table, message):
    with pytest.raises(ValidationError, match=message):
        parse_recipe(table)


def test_a_later_step_is_checked_before_the_recipe_exists():
    """The whole recipe is validated at once: a mistake in the last step stops it before the first runs."""
    with pytest.raises(ValidationError, match=r"^step 3 \(huffman\): layout"):
        parse_recipe(steps({"name": "prune_gradual", "sparsity": 0.5}, {"name": "cluster", "bits": 4},
                           {"name": "huffman", "layout": "columns"}))


def test_files_base_chain_and_override(tmp_path):
    (tmp_path / "base.toml").write_text('name = "b"\n[[step]]\nname = "prune"\nsparsity = 0.5\n'
                                        '[[step]]\nname = "fine_tune"\nepochs = 2\n')
    (tmp_path / "child.toml").write_text('base = "base.toml"\nname = "c"\n[steps.prune]\nsparsity = 0.8\n')
    (tmp_path / "over.toml").write_text('[steps.2]\nlr = 0.5\n')
    r = load_recipe(tmp_path / "child.toml", override=tmp_path / "over.toml")
    assert r.name == "c" and [s.params for s in r.steps] == [{"sparsity": 0.8}, {"epochs": 2, "lr": 0.5}]
    (tmp_path / "bad.toml").write_text('base = "base.toml"\n[steps.2]\nepochs = 0\n')
    with pytest.raises(ValidationError, match=r"^step 2 \(fine_tune\): epochs: expected an integer >= 1"):
        load_recipe(tmp_path / "bad.toml")
    with pytest.raises(ValidationError, match=r"child.toml: base: expected no base in an override"):
        load_recipe(tmp_path / "base.toml", override=tmp_path / "child.toml")


def test_file_errors(tmp_path):
    with pytest.raises(ValidationError, match="--recipe: expected an existing TOML file"):
        load_recipe(tmp_path / "none.toml")
    (tmp_path / "broken.toml").write_text("[[step]\n")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        load_recipe(tmp_path / "broken.toml")
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ValidationError, match="base: expected a chain of base recipes without a cycle"):
        load_recipe(tmp_path / "a.toml")
    (tmp_path / "lone.toml").write_text('[steps.1]\nepochs = 2\n')
    with pytest.raises(ValidationError, match=r"steps: expected a base recipe to change"):
        load_recipe(tmp_path / "lone.toml")
