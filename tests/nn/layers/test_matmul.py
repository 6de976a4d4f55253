"""MatMul of two activations: y = a @ b with broadcast batch axes, against products written out
with Python loops; the backward dL/da = dy @ bᵀ, dL/db = aᵀ @ dy summed over the batch axes an
operand was broadcast along, against the same loops; bad input."""

import itertools

import numpy as np
import pytest

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.nn import MatMul


def _at(arr, index):
    """arr's matrix at the broadcast batch index (size-1 and missing axes stretched)."""
    lead = len(index) - (arr.ndim - 2)
    return arr[tuple(0 if n == 1 else i for i, n in zip(index[lead:], arr.shape[:-2]))]


def _loops(a, b, dy):
    """y, dL/da, dL/db by explicit sums: y[t, m, p] = Σ_k a[t, m, k] b[t, k, p] for each batch index t,
    and each operand's gradient accumulated over every t that used it."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, p = a.shape[-2], a.shape[-1], b.shape[-1]
    y, da, db = np.zeros(batch + (m, p)), np.zeros(a.shape), np.zeros(b.shape)
    for t in itertools.product(*map(range, batch)):
        at, bt = _at(a, t), _at(b, t)
        dat, dbt = _at(da, t), _at(db, t)        # views: += accumulates into da, db
        for i, j, q in itertools.product(range(m), range(p), range(k)):
            y[t + (i, j)] += at[i, q] * bt[q, j]
            dat[i, q] += dy[t + (i, j)] * bt[q, j]
            dbt[q, j] += at[i, q] * dy[t + (i, j)]
    return y, da, db


@pytest.mark.parametrize("a_shape,b_shape", [
    ((2, 3), (3, 4)),                      # plain matrices
    ((2, 2, 3), (2, 3, 1)),                # one batch axis on both
    ((3, 2, 3), (3, 2)),                   # b broadcast along a's batch
    ((2, 3), (2, 3, 2)),                   # a broadcast along b's batch
    ((2, 1, 1, 3), (1, 3, 3, 2)),          # size-1 batch axes stretched on both sides
])
def test_forward_and_backward_are_the_written_out_sums(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    layer = MatMul()
    y = layer.forward(a, b)
    dy = rng.standard_normal(y.shape)
    want_y, want_da, want_db = _loops(a, b, dy)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-14)
    da, db = layer.backward(dy)
    assert da.shape == a.shape and db.shape == b.shape
    np.testing.assert_allclose(da, want_da, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-14)


def test_float32_in_float32_out():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    layer = MatMul()
    assert layer.forward(a, b).dtype == np.float32
    assert [g.dtype for g in layer.backward(np.ones((2, 2), np.float32))] == [np.float32, np.float32]


def test_ranks_two_to_eight_only():
    one = (1,) * 6
    assert MatMul().forward(np.ones(one + (2, 3)), np.ones(one + (3, 1))).shape == one + (2, 1)
    for a, b, name in ((np.ones(3), np.ones((3, 2)), "a"), (np.ones((2, 3)), np.ones(3), "b"),
                       (np.ones((1,) * 9), np.ones((1, 1)), "a"), (np.ones((1, 1)), np.ones((1,) * 9), "b")):
        with pytest.raises(ShapeError, match=f"^{name}:"):
            MatMul().forward(a, b)
    with pytest.raises(DTypeError, match="^b:"):
        MatMul().forward(np.ones((2, 2)), np.ones((2, 2), int))


def test_inner_and_batch_sizes_must_agree():
    with pytest.raises(ShapeError, match="^b:"):
        MatMul().forward(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="^b:"):
        MatMul().forward(np.zeros((2, 2, 3)), np.zeros((3, 3, 2)))       # batch 2 vs 3


def test_backward_needs_a_forward_and_dy_of_ys_shape():
    with pytest.raises(ValidationError, match="^backward:"):
        MatMul().backward(np.ones((2, 2)))
    layer = MatMul()
    layer.forward(np.ones((2, 1, 2, 3)), np.ones((3, 3, 4)))
    with pytest.raises(ShapeError, match="^dy:"):
        layer.backward(np.ones((1, 3, 2, 4)))
    assert [g.shape for g in layer.backward(np.ones((2, 3, 2, 4)))] == [(2, 1, 2, 3), (3, 3, 4)]
