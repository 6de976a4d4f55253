"""Int8 embedding tables: per-row scales written out, lookups that decode only their rows, whole models."""

import numpy as np
import pytest

from refcomp.compress.quantize.embedding import quantize_embedding_table, quantize_embeddings
from refcomp.formats import QTensor
from refcomp.nn import BertEmbeddings, Embedding, Graph, LayerNorm
from refcomp.quant import QParams


def test_each_row_on_its_own_symmetric_grid():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((20, 8)).astype(np.float32) * rng.uniform(0.01, 10, (20, 1)).astype(np.float32)
    q = quantize_embedding_table(table)
    for r, row in enumerate(table):           # eq. of the module docstring, row by row
        s = np.float32(np.abs(row).max() / np.float32(127))
        assert q.qparams.scale[r] == pytest.approx(s, rel=1e-6)
        np.testing.assert_array_equal(q.data[r], np.clip(np.rint(row / q.qparams.scale[r]), -127, 127))
    err = np.abs(q.to_dense() - table)
    assert np.all(err <= q.qparams.scale[:, None] / 2 * (1 + 1e-5))   # half a step of its own row


@pytest.mark.parametrize("layout", ["per_row", "per_tensor", "per_column", "blocked"])
def test_take_rows_equals_the_rows_of_to_dense(layout):
    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, (12, 6)).astype(np.int8)
    qp = {"per_row": QParams(rng.uniform(0.01, 1, 12).astype(np.float32), np.zeros(12, np.int8), axis=0),
          "per_tensor": QParams(np.float32(0.3), np.int8(3)),
          "per_column": QParams(rng.uniform(0.01, 1, 6).astype(np.float32), axis=1),
          "blocked": QParams(rng.uniform(0.01, 1, (12, 2)).astype(np.float32), axis=1, block_size=3)}[layout]
    q = QTensor(codes, qp)
    idx = np.array([[3, 0, 11], [3, 3, 5]])
    got = q.take_rows(idx)
    assert got.shape == (2, 3, 6)
    np.testing.assert_array_equal(got, q.to_dense()[idx])


def test_whole_model_lookups_stay_close_and_tables_shrink():
    g = Graph(inputs=["ids"])
    g.add("emb", BertEmbeddings(50, 16, max_positions=10, rng=0), "ids")
    g.add("ln", LayerNorm(16), "emb")
    g.add("extra", Embedding(50, 16, rng=1), "ids")
    g.outputs = ["ln"]
    q, report = quantize_embeddings(g)
    assert sorted(report) == ["emb.position", "emb.token_type", "emb.word", "extra"]
    assert all(isinstance(w, QTensor) for n, w in q.named_weights() if n.endswith("weight") and "ln" not in n)
    assert report["emb.word"]["bytes"] == 50 * 16 + 50 * 4          # int8 codes + a float32 scale per row
    ids = np.random.default_rng(2).integers(0, 50, (3, 7))
    assert np.abs(q(ids) - g(ids)).max() < 0.05
    assert isinstance(g["emb"].word.weight, type(g["extra"].weight))        # the input is left float


def test_report_gives_each_tables_shape_and_bytes_and_the_copy_is_a_new_model():
    g = Graph(inputs=["ids"])
    g.add("emb", Embedding(30, 6, rng=0), "ids")
    g.outputs = ["emb"]
    q, report = quantize_embeddings(g)
    assert report == {"emb": {"shape": [30, 6], "bytes": 30 * 6 + 30 * 4, "float_bytes": 30 * 6 * 4}}
    assert q is not g and q["emb"] is not g["emb"]
    assert not isinstance(g["emb"].weight, QTensor)                  # the input model keeps its float table


def test_a_float64_table_is_quantized_as_its_float32_values():
    # the table is read as float32 first (the dtype the int8 grid's scales and a float model hold)
    rng = np.random.default_rng(4)
    t64 = rng.standard_normal((9, 5)) * rng.uniform(0.1, 5, (9, 1))
    t64[:, 0] = np.abs(t64).max(axis=1) * (1 - 2.0**-30)        # the row maxima move when rounded to float32
    a, b = quantize_embedding_table(t64), quantize_embedding_table(t64.astype(np.float32))
    assert a.qparams.scale.tobytes() == b.qparams.scale.tobytes() and a.data.tobytes() == b.data.tobytes()
