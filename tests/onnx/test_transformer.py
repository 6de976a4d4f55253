"""Transformers through ONNX both ways: refcomp's encoder block exported (float and dynamic
QOperator) and a BERT-style graph (built with onnx.helper) imported.

Bounds: float 1e-5 relative (max|y − y_rt| / max|y_rt|: float32 sums in another order);
the dynamic QOperator export equals refcomp's model bit for bit in onnx.reference
(np.matmul on the same float32 arrays, integer sums exact); onnxruntime computes the
float parts (attention MatMuls, Softmax, LayerNormalization, Gelu) with its own kernels,
so there the bound is 1e-5 relative too (measured ≈ 2e-7), while every integer product
(MatMulInteger) is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from refcomp.compress.quantize.dynamic import quantize_dynamic  # noqa: E402
from refcomp.errors import DTypeError, RefcompError, ValidationError  # noqa: E402
from refcomp.nn import Graph  # noqa: E402
from refcomp.nn.blocks import transformer_encoder_block  # noqa: E402
from refcomp.nn.layers import Add, Embedding, LayerNorm, Transpose  # noqa: E402
from refcomp.onnx import export, load  # noqa: E402

BOUND = 1e-5
D, H, FF, T = 32, 4, 64, 7
SHAPES = {"x": (1, T, D), "mask": (1, T)}


def _ort(proto, feeds, exact=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if exact:
        so.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def _rel(y, ref) -> float:
    return float(np.max(np.abs(np.asarray(y, np.float64) - ref)) / np.max(np.abs(ref)))


def _data(n=3, seed=0, mask_dtype=np.int64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, D)).astype(np.float32)
    mask = np.ones((n, T), mask_dtype)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return x, mask


def _block():
    return transformer_encoder_block(D, H, FF, rng=0).eval()


def _bert_like(layers=2):
    """ids + token types + mask -> word/position/type embeddings, Add, LayerNorm, encoder blocks."""
    g = Graph(inputs=["ids", "types", "mask"])
    g.add("word", Embedding(50, D, rng=1), "ids")
    g.add("type", Embedding(2, D, rng=2), "types")
    g.add("sum", Add(), "word", "type")
    g.add("ln", LayerNorm(D, 1e-12), "sum")
    prev = "ln"
    for i in range(layers):
        prev = g.add(f"layer{i}", transformer_encoder_block(D, H, FF, rng=10 + i), prev, "mask")
    g.outputs = [prev]
    return g.eval()


@pytest.mark.parametrize("mask_dtype", [np.int64, np.float32])
def test_float_encoder_block_export(mask_dtype):
    m = _block()
    x, mask = _data(mask_dtype=mask_dtype)
    y = m.forward(x, mask)
    proto = export(m, None, input_shape=SHAPES, input_dtypes={"mask": np.dtype(mask_dtype).name})
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Reshape", "Transpose", "Softmax", "Where", "Equal", "Unsqueeze", "Shape",
            "LayerNormalization", "Gelu"} <= ops
    feeds = {"x": x, "mask": mask}
    assert _rel(_ort(proto, feeds)[0], y) <= BOUND
    assert _rel(ReferenceEvaluator(proto).run(None, feeds)[0], y) <= BOUND
    back = load(proto)          # round trip: the same layers, the same bits
    assert np.array_equal(back.forward(x, mask), y)


def test_float_bert_like_with_embeddings_export():
    m = _bert_like()
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 50, (3, T)).astype(np.int64)
    types = rng.integers(0, 2, (3, T)).astype(np.int64)
    _, mask = _data()
    y = m.forward(ids, types, mask)
    proto = export(m, None, input_shape={"ids": (1, T), "types": (1, T), "mask": (1, T)},
                   input_dtypes={"ids": "int64", "types": "int64", "mask": "int64"})
    assert "Gather" in {n.op_type for n in proto.graph.node}
    feeds = {"ids": ids, "types": types, "mask": mask}
    assert _rel(_ort(proto, feeds)[0], y) <= BOUND
    assert _rel(ReferenceEvaluator(proto).run(None, feeds)[0], y) <= BOUND
    assert np.array_equal(load(proto).forward(ids, types, mask), y)


def test_dynamic_qoperator_encoder_block_export():
    qm = quantize_dynamic(_block())[0]
    x, mask = _data()
    y = qm.forward(x, mask)
    proto = export(qm, None, style="qoperator", input_shape=SHAPES, input_dtypes={"mask": "int64"})
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MatMulInteger") == 6 and ops.count("DynamicQuantizeLinear") == 6
    feeds = {"x": x, "mask": mask}
    assert np.array_equal(ReferenceEvaluator(proto).run(None, feeds)[0], y)     # bit for bit
    assert _rel(_ort(proto, feeds)[0], y) <= BOUND


def test_wrong_head_transpose_is_caught(monkeypatch):
    """A planted bug (the heads' transpose perm wrong in refcomp's forward) fails the comparison."""
    m = _block()
    x, mask = _data()
    proto = export(m, None, input_shape=SHAPES, input_dtypes={"mask": "int64"})
    attn = m["attn"]
    # (N·T, D) -> (N, H, T, d) by reshape alone: the heads' transpose (0, 2, 1, 3) left out
    monkeypatch.setattr(type(attn), "_heads",
                        lambda self, rows, n, t: rows.reshape(n, self.num_heads, t, self.head_dim))
    assert _rel(_ort(proto, {"x": x, "mask": mask})[0], m.forward(x, mask)) > 1e-3


def test_bad_transformer_export_arguments():
    m = _block()
    cases = [
        (lambda: export(m, None, input_shape=(1, T, D)), ValidationError, "dict"),
        (lambda: export(m, None, input_shape={"x": (1, T, D)}), ValidationError, "each input"),
        (lambda: export(m, None, input_shape={"x": (1, T, D), "mask": (1, 0)}), ValidationError, "mask"),
        (lambda: export(m, None, input_shape=SHAPES, input_dtypes={"y": "int64"}), ValidationError,
         "input_dtypes"),
        (lambda: export(m, None, input_shape=SHAPES, input_dtypes={"mask": "float16"}), DTypeError, "mask"),
        (lambda: export(m, None, input_shape=SHAPES, input_dtypes=["int64"]), ValidationError, "input_dtypes"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words) as info:
            call()
        assert isinstance(info.value, RefcompError)
