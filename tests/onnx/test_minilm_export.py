"""all-MiniLM-L6-v2 exported to ONNX (float, and dynamic W8A8 QOperator) runs in onnxruntime
and onnx.reference with refcomp's outputs.

Bounds, on the last hidden state of 4 sentences (measured in the comments):
- float: onnxruntime within 1e-5 relative (max|Δ| / max|y|) of refcomp; its Gelu,
  Softmax and LayerNormalization are its own kernels, and 6 layers add their roundings.
- dynamic QOperator: onnx.reference equals refcomp run on its NumPy definitions bit
  for bit (the same float32 operations, integer products exact; by default refcomp's
  GELU is the C kernel, within its stated bound of the definition); onnxruntime (exact integer products with
  session.x64quantprecision=1): a float difference of one ulp before the
  activations are quantized can move a code by one, which the layers after it
  carry along. Per tensor the hidden states stay within 1e-3 relative; per token
  (one range per token, so a token's codes move together) only the sentence
  embeddings are bounded: cosine ≥ 1 − 1e-3 to refcomp's. On Linear layers alone
  the export is bit-exact in onnxruntime too (tests/onnx/test_export.py).
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from refcomp import backend  # noqa: E402
from refcomp.compress.quantize.dynamic import quantize_dynamic  # noqa: E402
from refcomp.models.minilm_l6 import mean_pool, tokenize  # noqa: E402
from refcomp.onnx import export  # noqa: E402

DTYPES = {"input_ids": "int64", "attention_mask": "int64"}


def _session(proto, exact):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if exact:
        so.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _definitions(model, feeds):
    """refcomp's output with every op its NumPy definition (GELU's erf exact, as onnx.reference's):
    the fast GELU kernel is within a stated bound of it (refcomp/ops/gelu.py), not equal."""
    before = backend.get_backend()
    backend.set_backend("numpy")
    try:
        return model(feeds["input_ids"], feeds["attention_mask"])
    finally:
        backend.set_backend(before)


def _rel(y, ref):
    return float(np.max(np.abs(np.asarray(y, np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.fixture(scope="module")
def feeds(minilm_golden):
    ids, mask = tokenize(minilm_golden["sentences"][:4])
    return {"input_ids": ids, "attention_mask": mask}


def _export(model, feeds, style):
    shapes = {k: v.shape for k, v in feeds.items()}
    return export(model, None, style=style, input_shape=shapes, input_dtypes=DTYPES)


def test_float_export_runs_in_onnxruntime(minilm_model, feeds):
    proto = _export(minilm_model, feeds, "float")
    y = minilm_model(feeds["input_ids"], feeds["attention_mask"])
    got = _session(proto, exact=False).run(None, feeds)[0]
    assert got.shape == y.shape
    assert _rel(got, y) <= 1e-5                    # measured 8.1e-7


@pytest.mark.parametrize("per_token", [False, True])
def test_dynamic_qoperator_export(minilm_model, feeds, per_token):
    q, _ = quantize_dynamic(minilm_model, per_token=per_token)
    proto = _export(q, feeds, "qoperator")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MatMulInteger") == 36
    assert ops.count("DynamicQuantizeLinear") == (0 if per_token else 36)
    y = q(feeds["input_ids"], feeds["attention_mask"])
    assert np.array_equal(ReferenceEvaluator(proto).run(None, feeds)[0], _definitions(q, feeds))
    got = _session(proto, exact=True).run(None, feeds)[0]
    # hidden states: measured 2.4e-7 per tensor; per token 1.4e-2 (one range per token: a float
    # difference upstream moves codes of a token more often, and a token's values move together)
    if not per_token:
        assert _rel(got, y) <= 1e-3                    # measured 2.4e-7 (no code moved here)
    mask = feeds["attention_mask"]
    cos = (mean_pool(got, mask) * mean_pool(y, mask)).sum(axis=1)
    # measured 1 − 6e-8 per tensor; 1 − 5e-4 per token (about half the quantization error itself:
    # each token's codes are re-drawn from its own range after every float difference)
    assert cos.min() >= 1 - (1e-3 if per_token else 1e-5)


def test_int8_embeddings_export_as_int8_tables(minilm_model, feeds):
    """Per-row int8 tables stay int8 in the file (Gather codes and scales) and compute the same floats."""
    from refcomp.compress.quantize.embedding import quantize_embeddings

    q, _ = quantize_embeddings(quantize_dynamic(minilm_model, per_token=True)[0])
    proto = _export(q, feeds, "qoperator")
    tables = [i for i in proto.graph.initializer if i.name.endswith(".weight_q") and "embeddings" in i.name]
    assert len(tables) == 3 and all(t.data_type == onnx.TensorProto.INT8 for t in tables)
    assert proto.ByteSize() < 25e6                  # 90 MB in float
    assert np.array_equal(ReferenceEvaluator(proto).run(None, feeds)[0], _definitions(q, feeds))


def test_symbolic_sequence_length_runs_any_length(minilm_model):
    """input_shape (1, "T"): batch and length symbolic, so one file serves every sentence length."""
    from refcomp.errors import ValidationError

    m = minilm_model
    shapes = {"input_ids": (1, "T"), "attention_mask": (1, "T")}
    proto = export(m, None, input_shape=shapes, input_dtypes=DTYPES)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "T"]
    session = _session(proto, exact=False)
    for n, t in ((1, 3), (2, 11)):
        ids = np.full((n, t), 1000, np.int64)
        mask = np.ones((n, t), np.int64)
        assert _rel(session.run(None, {"input_ids": ids, "attention_mask": mask})[0], m(ids, mask)) <= 1e-5
    for bad in (("T", 5), (1, "N"), (1, "2x")):
        with pytest.raises(ValidationError, match="input_shape"):
            export(m, None, input_shape={"input_ids": bad, "attention_mask": (1, 5)}, input_dtypes=DTYPES)
