"""refcomp.pipelines.recipe.registry: a step's keys are exactly its function's keyword arguments."""

import inspect

import pytest

from refcomp.pipelines.recipe import STEPS
from refcomp.pipelines.recipe.registry import CONTEXT


@pytest.mark.parametrize("name", sorted(STEPS))
def test_keys_are_the_functions_keyword_arguments(name):
    spec = STEPS[name]
    signature = list(inspect.signature(spec.fn).parameters.values())[1:]      # after the model
    named = {p.name for p in signature if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    also = set(inspect.signature(spec.also).parameters) - {"scores", "sparsity", "previous"} if spec.also else set()
    assert set(spec.params) == (named - set(spec.needs) - set(spec.exclude)) | also
    assert set(spec.needs) <= named and set(spec.needs.values()) <= set(CONTEXT)
    assert set(spec.exclude) <= named
    assert set(spec.checks) <= set(spec.params), "a check of a key the step does not take"
    # an excluded or supplied argument must have a default, or the runner could not call the function
    for p in signature:
        if p.name in spec.exclude:
            assert p.default is not p.empty


def test_every_family_has_steps():
    assert {s.family for s in STEPS.values()} >= {"prune", "quantize", "share", "lowrank", "distill", "precision",
                                                  "train", "evaluate"}


def test_every_step_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "recipes.md").read_text()
    for name in STEPS:
        assert f"| `{name}` |" in doc, name
