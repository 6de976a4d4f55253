"""Embedding and BertEmbeddings: the lookup and BERT's sum of three tables written out by loops, the
backward's scatter (repeated ids add) against loops and central differences, bad input."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.formats import Dense
from refcomp.nn import BertEmbeddings, Embedding

from ..nn_gradcheck import numeric_gradient
from ..._support.helpers import PlainFormat


def test_lookup_and_scatter_by_loops():
    rng = np.random.default_rng(0)
    layer = Embedding(5, 3, rng=0, dtype="float64")
    idx = np.array([[0, 2, 2], [4, 0, 1]], np.uint8)
    y = layer.forward(idx)
    assert y.shape == (2, 3, 3)
    for a, b in np.ndindex(idx.shape):
        np.testing.assert_array_equal(y[a, b], layer.weight.data[idx[a, b]])
    dy = rng.standard_normal(y.shape)
    assert layer.backward(dy) is None                   # the ids have no gradient
    want = np.zeros((5, 3))
    for a, b in np.ndindex(idx.shape):
        want[idx[a, b]] += dy[a, b]                     # row 2 twice, row 0 twice, row 3 never
    np.testing.assert_allclose(layer.weight.grad, want, rtol=1e-15)
    layer.zero_grad()
    num = numeric_gradient(lambda: float(np.sum(layer.forward(idx) * dy)), layer.weight.data)
    layer.forward(idx)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, num, rtol=1e-6, atol=1e-6)


def test_initial_rows_and_frozen_table():
    a = Embedding(200, 50, rng=1, dtype="float64")
    w = np.random.default_rng(1).standard_normal((200, 50))     # N(0, 1), as PyTorch
    np.testing.assert_array_equal(a.weight.data, w)
    assert Embedding(3, 2, rng=1).weight.dtype == np.float32
    z = Embedding(3, 2)
    assert np.all(z.weight.data == 0) and z.weight.dtype == np.float32
    assert z.config() == {"num_embeddings": 3, "embedding_dim": 2, "dtype": "float32"}
    z.weight = Dense(np.ones((3, 2)), trainable=False)
    z.forward(np.array([1, 2]))
    assert z.backward(np.ones((2, 2))) is None and z.weight.grad is None


def test_empty_ids_and_the_range_ends():
    layer = Embedding(4, 2, rng=0)
    assert layer.forward(np.zeros((0, 3), np.int64)).shape == (0, 3, 2)
    np.testing.assert_array_equal(layer.forward(np.array([0, 3])), layer.weight.data[[0, 3]])


def test_embedding_bad_input_is_named():
    layer = Embedding(4, 2)
    with pytest.raises(ValidationError, match="^backward:"):
        layer.backward(np.ones((1, 2)))
    with pytest.raises(DTypeError, match="^idx:"):
        layer.forward(np.array([0.0, 1.0]))
    for bad in ([-1, 0], [0, 4]):
        with pytest.raises(ValidationError, match="^idx:"):
            layer.forward(np.array(bad))
    layer.forward(np.array([[1, 2]]))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((1, 2, 3)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((2, 2)))


def _bert(seed=0):
    return BertEmbeddings(7, 4, max_positions=5, type_vocab_size=3, rng=seed, dtype="float64")


def test_bert_embeddings_sum_three_tables():
    rng = np.random.default_rng(2)
    layer = _bert()
    ids, types = rng.integers(0, 7, (2, 4)), rng.integers(0, 3, (2, 4))
    word, pos, typ = layer.word.weight.data, layer.position.weight.data, layer.token_type.weight.data
    want = np.array([[word[ids[n, t]] + typ[types[n, t]] + pos[t] for t in range(4)] for n in range(2)])
    np.testing.assert_array_equal(layer.forward(ids, types), want)
    # no segment ids: all 0
    want0 = np.array([[word[ids[n, t]] + typ[0] + pos[t] for t in range(4)] for n in range(2)])
    np.testing.assert_array_equal(layer.forward(ids), want0)
    assert layer.config() == {"vocab_size": 7, "dim": 4, "max_positions": 5, "type_vocab_size": 3,
                              "dtype": "float64"}
    d = BertEmbeddings(7, 4)
    assert d.position.num_embeddings == 512 and d.token_type.num_embeddings == 2
    assert np.all(d.word.weight.data == 0)
    # the three tables drawn in turn from one generator: word, position, token_type
    g = np.random.default_rng(9)
    e = BertEmbeddings(3, 2, max_positions=4, type_vocab_size=2, rng=9, dtype="float64")
    for table, shape in ((e.word, (3, 2)), (e.position, (4, 2)), (e.token_type, (2, 2))):
        np.testing.assert_array_equal(table.weight.data, g.standard_normal(shape))


def test_bert_embeddings_backward_scatters_into_each_table():
    rng = np.random.default_rng(3)
    layer = _bert(3)
    ids, types = rng.integers(0, 7, (3, 5)), rng.integers(0, 3, (3, 5))
    dy = rng.standard_normal((3, 5, 4))
    layer.forward(ids, types)
    assert layer.backward(dy) == (None, None)           # two integer inputs, no gradient
    w_word, w_pos, w_type = np.zeros((7, 4)), np.zeros((5, 4)), np.zeros((3, 4))
    for n, t in np.ndindex(3, 5):
        w_word[ids[n, t]] += dy[n, t]
        w_type[types[n, t]] += dy[n, t]
        w_pos[t] += dy[n, t]
    np.testing.assert_allclose(layer.word.weight.grad, w_word, rtol=1e-14)
    np.testing.assert_allclose(layer.position.weight.grad, w_pos, rtol=1e-14)
    np.testing.assert_allclose(layer.token_type.weight.grad, w_type, rtol=1e-14)
    layer.zero_grad()
    layer.forward(ids[:, :3])
    assert layer.backward(dy[:, :3]) is None            # one input: the ids
    np.testing.assert_allclose(layer.token_type.weight.grad[0], dy[:, :3].sum(axis=(0, 1)), rtol=1e-14)
    np.testing.assert_array_equal(layer.position.weight.grad[3:], 0)


def test_bert_embeddings_bad_input_is_named():
    layer = _bert()
    with pytest.raises(ShapeError, match="^input_ids:"):
        layer.forward(np.zeros(4, np.int64))
    with pytest.raises(ShapeError, match="^input_ids:"):
        layer.forward(np.zeros((1, 6), np.int64))
    layer.forward(np.zeros((1, 5), np.int64))                   # max_positions tokens: allowed
    with pytest.raises(ShapeError, match="^token_type_ids:"):
        layer.forward(np.zeros((2, 3), np.int64), np.zeros((2, 4), np.int64))
    with pytest.raises(ValidationError, match="^idx:"):
        layer.forward(np.zeros((2, 3), np.int64), np.full((2, 3), 3))


def test_one_row_of_one_value_is_the_smallest_table():
    for args, name in (((0, 2), "num_embeddings"), ((-1, 2), "num_embeddings"), ((2, 0), "embedding_dim")):
        with pytest.raises(ValidationError, match=f"^{name}:"):
            Embedding(*args)
    layer = Embedding(1, 1, rng=0, dtype="float64")
    np.testing.assert_array_equal(layer.forward(np.zeros(3, np.int64)), np.full((3, 1), layer.weight.data[0, 0]))


def test_ids_out_of_range_are_reported_with_their_range():
    with pytest.raises(ValidationError, match=r"^idx: expected values in \[0, 4\), got range \[-2, 5\]$"):
        Embedding(4, 2).forward(np.array([[3, -2], [5, 0]]))


def test_a_format_without_dtype_or_trainable_looks_up_and_is_not_trained():
    layer = Embedding(3, 2)
    layer.weight = PlainFormat(np.arange(6.0).reshape(3, 2))
    assert layer.config()["dtype"] == "float32"                 # the layers' default dtype
    np.testing.assert_array_equal(layer.forward(np.array([2, 0])), [[4.0, 5.0], [0.0, 1.0]])
    assert layer.backward(np.ones((2, 2))) is None              # nothing to train, no error


def test_float32_table_scatters_in_float32_position_by_position():
    # dL/dW[k] accumulates the float32 dy rows of the positions with idx = k in float32, in their order:
    # written out as a loop of float32 additions
    rng = np.random.default_rng(6)
    layer = Embedding(3, 4, rng=6)
    idx = rng.integers(0, 3, 200)
    dy = (rng.standard_normal((200, 4)) * 10 ** rng.uniform(-4, 4, (200, 1))).astype(np.float32)
    layer.forward(idx)
    layer.backward(dy)
    want = np.zeros((3, 4), np.float32)
    for i, k in enumerate(idx):
        want[k] = want[k] + dy[i]
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.grad, want)


def test_bert_tables_take_the_dtype():
    for dtype, rng in (("float32", None), ("float32", 0), ("float64", None), ("float64", 0)):
        layer = BertEmbeddings(5, 2, max_positions=3, rng=rng, dtype=dtype)
        for table in (layer.word, layer.position, layer.token_type):
            assert table.weight.dtype == np.dtype(dtype)
