"""Hashed (HashedNets): the buckets and signs of the stated hash (H.3), the weights (H.1), the gradient (H.2)."""

import numpy as np
import pytest

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import Hashed
from refcomp.formats.hashed import hash_buckets, splitmix64
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


# --- the hash on any 64-bit input, the dtypes it returns
def test_splitmix64_of_any_integers_is_the_stated_mix():
    values = [0, 1, 12345, 2 ** 63 - 1]
    for z in (values, np.array(values, np.int64), np.array(values, np.uint64)):
        assert splitmix64(z).tolist() == [_mix(v) for v in values]
    assert splitmix64(np.array([2 ** 64 - 1], np.uint64)).tolist() == [_mix(2 ** 64 - 1)]


def test_hash_buckets_take_any_64_bit_seed_and_return_intp_buckets_and_int8_signs():
    for seed in (0, 2 ** 63, 2 ** 64 - 1):
        h, xi = hash_buckets((3, 4), 5, seed)
        assert h.dtype == np.intp and xi.dtype == np.int8
        a, b = _mix(seed), _mix(_mix(seed))
        assert h.tolist() == [_mix(p ^ a) % 5 for p in range(12)]
        assert xi.tolist() == [1 - 2 * (_mix(p ^ b) >> 63) for p in range(12)]
    for seed in (-1, 2 ** 64):
        with pytest.raises(ValidationError) as info:
            hash_buckets((3, 4), 5, seed)
        assert info.value.argument == "seed"


# --- the edges of what Hashed accepts
def test_one_real_weight_and_unit_sizes_are_accepted():
    h = Hashed(np.array([2.5]), seed=3, shape=(1, 4))
    np.testing.assert_array_equal(h.to_dense(), 2.5 * h.signs.reshape(1, 4))
    np.testing.assert_array_equal(Hashed(np.ones(3), seed=3, shape=(5,)).to_dense(), _virtual(np.ones(3), 3, (5,)))
    with pytest.raises(ShapeError, match="data"):
        Hashed(np.zeros(0), seed=0, shape=(2, 2))


def test_the_largest_seed_is_2_to_the_63_minus_1():
    top = 2 ** 63 - 1  # what an int64 file field holds
    w = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(Hashed(w, seed=top, shape=(3, 4)).to_dense(), _virtual(w, top, (3, 4)))
    with pytest.raises(ValidationError) as info:
        Hashed(w, seed=2 ** 63, shape=(3, 4))
    assert info.value.argument == "seed"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_real_weights_are_copied_and_set_the_dtype_of_the_weight_and_its_gradient(dtype):
    d = np.arange(1, 5, dtype=dtype)
    h = Hashed(d, seed=4, shape=(3, 5))
    d[:] = 0  # the caller's array is not the format's
    np.testing.assert_array_equal(h.data, np.arange(1, 5))
    assert h.to_dense().dtype == dtype
    g = np.random.default_rng(0).standard_normal((3, 5))
    h.accumulate_grad(g)
    first = h.grad.copy()
    assert first.dtype == dtype
    h.accumulate_grad(2 * g)  # gradients of several batches add up
    np.testing.assert_allclose(h.grad, 3 * first, rtol=1e-6)


@pytest.mark.parametrize("shape", [(64,), (1, 1), (4, 4, 4)])
def test_fields_round_trip_any_positive_shape(shape):
    h = Hashed(np.arange(1.0, 4.0), seed=7, shape=shape)
    back = Hashed.from_fields(h.fields())
    assert back.shape == shape and back.seed == 7
    np.testing.assert_array_equal(back.to_dense(), h.to_dense())


@pytest.mark.parametrize("field,value", [
    ("shape", np.array([[2, 5]], np.int64)),      # 2-D
    ("shape", np.zeros(0, np.int64)),             # no dimension
    ("shape", np.array([2, 0], np.int64)),        # an empty dimension
    ("shape", np.array([2 ** 15] * 3 + [2], np.int64)),  # 2^46 weights: far more than 2^31
    ("seed", np.array([9, 9], np.int64)),         # two seeds
])
def test_from_fields_refuses_a_shape_or_seed_it_did_not_write(field, value):
    h = Hashed(np.arange(1.0, 4.0, dtype=np.float32), seed=9, shape=(2, 5))
    with pytest.raises(FileFormatError, match="fields"):
        Hashed.from_fields({**h.fields(), field: value})
