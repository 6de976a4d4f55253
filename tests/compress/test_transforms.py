"""One signature for every family: a transform takes a model and returns (a new model, a report).

Each transform runs on the same small CNN; the test checks the shape of the
answer, that the new model runs, and that the input model is untouched:
every weight and parameter keeps its type and its bytes.
"""

import numpy as np
import pytest

from refcomp.compress.lowrank.model import factorize_model
from refcomp.compress.precision.model import cast_model
from refcomp.compress.prune.deploy import to_csr
from refcomp.compress.prune.model import masked_fine_tune, prune_model
from refcomp.compress.prune.sparsegpt import sparsegpt_model
from refcomp.compress.prune.structured import apply_structured, shrink
from refcomp.compress.quantize.cle_model import equalize_model
from refcomp.compress.quantize.dynamic import quantize_dynamic
from refcomp.compress.quantize.embedding import quantize_embeddings
from refcomp.compress.quantize.static_inputs import quantize_static_inputs
from refcomp.compress.quantize.lowbit_model import prepare_lowbit
from refcomp.compress.quantize.ptq import quantize_static
from refcomp.compress.quantize.qat import prepare_qat, to_integer
from refcomp.compress.quantize.weight_only import quantize_weights
from refcomp.compress.share.trained_quantization import cluster_model, finetune_centroids
from refcomp.nn.module import Module, Parameter

from .models_for_tests import small_cnn

X = np.random.default_rng(0).normal(size=(32, 1, 10, 10)).astype(np.float32)
DATA = (X, np.arange(32) % 5)
KEEP = {"conv2": np.array([True, False, True, True])}

TRANSFORMS = {
    "prune_model": lambda m: prune_model(m, 0.5),
    "masked_fine_tune": lambda m: masked_fine_tune(prune_model(m, 0.5)[0], DATA),
    "to_csr": lambda m: to_csr(prune_model(m, 0.5)[0]),
    "apply_structured": lambda m: apply_structured(m, KEEP),
    "shrink": lambda m: shrink(apply_structured(m, KEEP)[0], KEEP),
    "cluster_model": lambda m: cluster_model(m, 3, rng=0),
    "finetune_centroids": lambda m: finetune_centroids(cluster_model(m, 3, rng=0)[0], DATA),
    "quantize_weights rtn": lambda m: quantize_weights(m, bits=4),
    "quantize_weights gptq": lambda m: quantize_weights(m, bits=4, method="gptq", calibration_x=X),
    "quantize_dynamic": quantize_dynamic,
    "quantize_embeddings": quantize_embeddings,
    "quantize_static_inputs": lambda m: quantize_static_inputs(m, [X], smooth_alpha=0.5),
    "quantize_static": lambda m: quantize_static(m, X, equalize=True, bias_correction=True),
    "prepare_qat": lambda m: prepare_qat(m, X),
    "to_integer": lambda m: to_integer(prepare_qat(m, X)[0]),
    "prepare_lowbit": lambda m: prepare_lowbit(m, "ternary"),
    "equalize_model": equalize_model,
    "factorize_model": lambda m: factorize_model(m, {"fc": 2}),
    "factorize_model whitened": lambda m: factorize_model(m, {"conv2": 2, "fc": 2}, calibration_batches=[X]),
    "sparsegpt_model": lambda m: sparsegpt_model(m, calibration_batches=[X], sparsity=0.5),
    "cast_model": lambda m: cast_model(m, "float16"),
}


def _state(model):
    return {name: (type(w).__name__, (w.data if isinstance(w, Parameter) else w.to_dense()).tobytes())
            for name, w in model.named_weights()}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_returns_a_new_model_and_a_report_and_leaves_its_input(name):
    model = small_cnn(3)
    before = _state(model)
    out = TRANSFORMS[name](model)
    assert isinstance(out, tuple) and len(out) == 2, f"{name} returns (model, report)"
    new, report = out
    assert isinstance(new, Module) and new is not model
    assert isinstance(report, (dict, list))
    assert new.forward(X[:4]).shape == (4, 5)
    assert _state(model) == before, f"{name} changed its input model"
