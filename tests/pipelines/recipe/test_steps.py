"""Every registered step runs as a one-step recipe on digits_mlp and does what its name says
(the composed ones of refcomp.pipelines.recipe.steps included)."""

import json

import numpy as np
import pytest

from refcomp.errors import ValidationError
from refcomp.formats.relative_csr import RelativeIndexCSR
from refcomp.pipelines.recipe import STEPS, parse_recipe, run_recipe

pytest.importorskip("sklearn")


def _dense(w):
    return np.asarray(w.to_dense() if hasattr(w, "to_dense") else w.data, dtype=np.float64)


def _fc1(model):
    return dict(model.named_modules())["fc1"]


#: step -> (its keys, a check of the result's fc1 layer (None: only that it runs and is recorded))
CASES = {
    "prune": ({"sparsity": 0.5, "criterion": "taylor"}, lambda l: np.mean(_dense(l.weight) == 0) == 0.5),
    "prune_gradual": ({"sparsity": {"fc1": 0.5}, "rounds": 2, "epochs_per_round": 1},
                      lambda l: abs(np.mean(_dense(l.weight) == 0) - 0.5) < 0.01),
    "prune_structured": ({"sparsity": {"fc1": 0.25}}, lambda l: l.weight.shape == (96, 64)),
    "sparsegpt": ({"n_m": [2, 4]}, lambda l: (np.count_nonzero(_dense(l.weight).reshape(128, 16, 4), axis=2) <= 2).all()),
    "fine_tune": ({"epochs": 1}, None),
    "to_csr": ({}, lambda l: type(l.weight).__name__ == "CSRMatrix"),
    "quantize_static": ({"integer_only": False, "observer": "percentile"}, None),
    "quantize_static_inputs": ({"smooth_alpha": 0.5}, None),
    "quantize_dynamic": ({}, lambda l: type(l.weight).__name__ == "DynamicQuantized"),
    "quantize_weights": ({"bits": 3}, lambda l: np.abs(l.weight.data).max() == 3),          # codes -3..3
    "quantize_embeddings": ({}, None),
    "qat": ({"epochs": 1}, None),
    "cluster": ({"bits": 3}, lambda l: len(np.unique(_dense(l.weight))) <= 8),
    "finetune_centroids": ({}, None),
    "huffman": ({"index_bits": 3}, lambda l: isinstance(l.weight, RelativeIndexCSR)),
    "lowrank": ({"ranks": {"fc1": 8}}, lambda l: np.linalg.matrix_rank(_dense_of_lowrank(l)) == 8),
    "lowrank_budget": ({"max_params": 6000}, None),
    "distill": ({"widths": {"fc1": 16}, "epochs": 1}, lambda l: l.weight.shape == (16, 64)),
    "cast": ({"dtype": "bfloat16"}, lambda l: str(l.weight.data.dtype) == "bfloat16"),
    "mixed_bits": ({"budget_bytes": 8000, "bit_choices": [2, 4, 8]}, None),
    "evaluate": ({}, None),
}


def _dense_of_lowrank(layer):
    """The product of a factorized layer's two factors (a Sequential of two Linear)."""
    first, second = [m for _, m in layer.named_modules() if hasattr(m, "weight")][:2]
    return _dense(second.weight) @ _dense(first.weight)


def test_every_step_is_covered():
    assert set(CASES) == set(STEPS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step(name, digits):
    model, data = digits
    keys, check = CASES[name]
    before = [{"name": "cluster", "bits": 3}] if name in ("finetune_centroids", "huffman") else []
    out, record = run_recipe(model, parse_recipe({"step": [*before, {"name": name, **keys}]}), data)
    json.dumps(record)
    assert record["steps"][-1]["name"] == name and record["steps"][-1]["params"] == keys
    assert record["final"]["accuracy"] > 0.75                       # 10 classes: a working model, not chance
    if check is not None:
        assert check(_fc1(out)), name
    if name == "evaluate":
        assert out is model and record["steps"][0]["report"]["accuracy"] == record["baseline"]["accuracy"]


def test_huffman_needs_a_clustered_model(digits):
    with pytest.raises(ValidationError, match="huffman: expected a model with clustered layers"):
        run_recipe(digits[0], parse_recipe({"step": [{"name": "huffman"}]}), digits[1])
