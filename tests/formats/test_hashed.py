"""Hashed (HashedNets): the buckets and signs of the stated hash (H.3), the weights (H.1), the gradient (H.2)."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import Hashed
from refcomp.nn import CrossEntropyLoss, Linear

MASK = (1 << 64) - 1


def _mix(z):
    """splitmix64's finaliser in Python integers (the oracle; no NumPy wrapping)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _virtual(w, seed, shape):
    """V_p = ξ(p)·w_{h(p)} element by element, (H.1) with (H.3) written out."""
    a = _mix(seed)
    b = _mix(a)
    n = int(np.prod(shape))
    out = np.empty(n)
    for p in range(n):
        sign = 1 - 2 * (_mix(p ^ b) >> 63)
        out[p] = sign * w[_mix(p ^ a) % len(w)]
    return out.reshape(shape)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2 ** 62 + 7])
@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 3, 3)])
def test_virtual_weights_are_the_stated_hash(seed, shape):
    w = np.random.default_rng(seed % 97).standard_normal(11)
    h = Hashed(w, seed=seed, shape=shape)
    np.testing.assert_array_equal(h.to_dense(), _virtual(w, seed, shape))


def test_both_signs_and_every_bucket_occur_and_seeds_differ():
    h = Hashed(np.ones(16), seed=0, shape=(40, 50))
    assert set(np.unique(h.signs)) == {-1, 1} and abs(h.signs.mean()) < 0.05
    assert np.bincount(h.buckets, minlength=16).min() > 0
    assert not np.array_equal(h.buckets, Hashed(np.ones(16), seed=1, shape=(40, 50)).buckets)


def test_gradient_is_the_signed_bucket_sum_and_matches_finite_differences():
    rng = np.random.default_rng(0)
    layer = Linear(6, 4, dtype="float64", rng=0)
    layer.weight = Hashed(rng.standard_normal(7), seed=5, shape=(4, 6))
    x, y = rng.standard_normal((9, 6)), rng.integers(0, 4, 9)
    loss = CrossEntropyLoss()

    def value(w):
        layer.weight.data[...] = w
        return loss.forward(layer.forward(x), y)

    w0 = layer.weight.data.copy()
    value(w0)
    layer.backward(loss.backward())
    grad = layer.weight.grad.copy()
    eps = 1e-6
    fd = np.array([(value(w0 + eps * e) - value(w0 - eps * e)) / (2 * eps) for e in np.eye(7)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    # (H.2) by hand from dL/dV of the dense twin
    value(w0)
    dv = loss.backward().T @ x          # dL/dV of y = x Vᵀ
    by_hand = np.zeros(7)
    a, b = _mix(5), _mix(_mix(5))
    for p, g in enumerate(dv.ravel()):
        by_hand[_mix(p ^ a) % 7] += (1 - 2 * (_mix(p ^ b) >> 63)) * g
    np.testing.assert_allclose(grad, by_hand, rtol=1e-10, atol=1e-12)


def test_optimizer_trains_the_real_weights_only():
    from refcomp.nn import SGD, Sequential

    m = Sequential(("fc", Linear(6, 3, rng=0, dtype="float64")))
    m["fc"].weight = Hashed(np.ones(5), seed=2, shape=(3, 6))
    params = m.parameters()
    assert m["fc"].weight in params  # trainable: the optimizer sees K = 5 numbers, not 18
    loss = CrossEntropyLoss()
    x, y = np.random.default_rng(1).standard_normal((8, 6)), np.arange(8) % 3
    loss.forward(m.forward(x), y)
    m.backward(loss.backward())
    before = m["fc"].weight.data.copy()
    SGD(params, lr=0.1).step()
    assert not np.array_equal(before, m["fc"].weight.data) and m["fc"].weight.data.shape == (5,)


def test_fields_round_trip_and_bad_arguments():
    h = Hashed(np.arange(1.0, 4.0, dtype=np.float32), seed=9, shape=(2, 5))
    back = Hashed.from_fields(h.fields())
    assert back.to_dense().tobytes() == h.to_dense().tobytes() and back.nbytes == 3 * 4 + 8
    with pytest.raises(DTypeError, match="data"):
        Hashed(np.arange(3), seed=0, shape=(2, 2))
    with pytest.raises(ShapeError, match="data"):
        Hashed(np.ones((2, 2)), seed=0, shape=(2, 2))
    with pytest.raises(ValidationError, match="seed"):
        Hashed(np.ones(2), seed=-1, shape=(2, 2))
    with pytest.raises(ValidationError, match="seed"):
        Hashed(np.ones(2), seed=1.5, shape=(2, 2))
    with pytest.raises(ShapeError, match="shape"):
        Hashed(np.ones(2), seed=0, shape=(2, 0))
    with pytest.raises(ValidationError, match="data"):
        Hashed(np.array([1.0, np.nan]), seed=0, shape=(2, 2))
    with pytest.raises(ShapeError, match="g"):
        h.accumulate_grad(np.ones(3))
    with pytest.raises(FileFormatError):
        Hashed.from_fields({**h.fields(), "seed": np.asarray([1.0])})
    with pytest.raises(FileFormatError):
        Hashed.from_fields({"data": h.data})
