"""The bit-count kernels (C on every ISA path, Numba) equal refcomp.ops.binary_matmul bit for bit."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refcomp.ops import binary_matmul, pack_signs


def _words(rng, rows, k):
    return pack_signs(rng.standard_normal((rows, k)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 40), n=st.integers(0, 9), k=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_identical_to_definition(fast, m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, b = _words(rng, m, k), _words(rng, n, k)
    np.testing.assert_array_equal(binary_matmul(a, b, k, backend=fast), binary_matmul(a, b, k, backend="numpy"))


def test_extremes_and_threads(fast, threads):
    # all bits set (every element -1) up to the pad: the largest popcounts; rows > one C task (16)
    k = 1000
    a = pack_signs(-np.ones((37, k)))
    b = np.concatenate([pack_signs(np.ones((3, k))), a[:2]])
    want = binary_matmul(a, b, k, backend="numpy")
    assert want[0, 0] == -k and want[0, 3] == k
    for t in (1, 2, 3):
        threads(t)
        np.testing.assert_array_equal(binary_matmul(a, b, k, backend=fast), want)


def test_non_contiguous_input(fast):
    rng = np.random.default_rng(1)
    a = _words(rng, 10, 200)[::2]
    b = np.asfortranarray(_words(rng, 4, 200))
    np.testing.assert_array_equal(binary_matmul(a, b, 200, backend=fast), binary_matmul(a, b, 200, backend="numpy"))
