"""refcomp.ops.gelu (the NumPy definition) against an independent oracle (scipy.special), fixed points, errors."""

import math

import numpy as np
import pytest

from refcomp.errors import DTypeError, ValidationError
from refcomp.ops import erf, gelu

special = pytest.importorskip("scipy.special")

GRID = np.concatenate([np.linspace(-12, 12, 48001), np.geomspace(1e-30, 1e-3, 300)])
GRID = np.concatenate([GRID, -GRID])


def test_float64_is_x_times_phi():
    x = GRID.astype(np.float64)
    want = x * 0.5 * (1 + special.erf(x / math.sqrt(2)))  # the formula, scipy's erf
    # the two erfs differ by an ulp of erf now and then; 1 + erf turns that into 2^-53 |x| absolute
    assert np.all(np.abs(gelu(x, backend="numpy") - want) <= 2.0 ** -52 * np.abs(x) + 2 * np.spacing(np.abs(want)))
    # and the true value (ndtr = Φ without cancellation), to the definition's own rounding of 1 + erf
    err = np.abs(gelu(x, backend="numpy") - x * special.ndtr(x))
    assert np.all(err <= 2.0 ** -52 * np.abs(x) + 4 * np.spacing(np.abs(x * special.ndtr(x))))


def test_float32_is_the_stated_sequence_of_roundings():
    """z = x / f32(√2), e = erf(z) rounded to float32, y = x · (0.5 · (1 + e)), each step float32."""
    x = GRID.astype(np.float32)
    z = x / np.float32(math.sqrt(2))
    e = special.erf(z.astype(np.float64)).astype(np.float32)  # scipy's erf: a different implementation
    want = x * (np.float32(0.5) * (np.float32(1) + e))
    got = gelu(x, backend="numpy")
    assert got.dtype == np.float32
    # two double erfs may round to different float32 neighbours on rare near-ties: then 2^-24 apart
    assert np.all(np.abs(got.astype(np.float64) - want) <= 2.0 ** -24 * np.abs(x) + np.spacing(np.abs(want)))
    assert np.mean(got == want) > 0.999
    # against the true GELU: the documented error of the float32 definition (2^-25 |x| from 1 + e, plus roundings)
    true = x.astype(np.float64) * special.ndtr(x.astype(np.float64))
    assert np.all(np.abs(got - true) <= 2.0 ** -24 * np.abs(x) + np.spacing(np.abs(true).astype(np.float32)))


def test_numpy_path_keeps_the_layer_numerics():
    """The expression refcomp.nn's GELU evaluated before it called ops.gelu, bit for bit."""
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).standard_normal(5000).astype(dtype) * 4
        old = (x * (0.5 * (1 + erf(x / np.asarray(math.sqrt(2.0), x.dtype))))).astype(x.dtype)
        np.testing.assert_array_equal(gelu(x, backend="numpy"), old)
        t = np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))
        np.testing.assert_array_equal(gelu(x, approximate="tanh", backend="numpy"),
                                      (0.5 * x * (1 + t)).astype(x.dtype))


def test_tanh_form():
    x = GRID.astype(np.float64)
    want = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(gelu(x, approximate="tanh", backend="numpy"), want, rtol=1e-15, atol=1e-300)
    # Hendrycks & Gimpel: the tanh form is within about 1e-3 of the erf form
    assert np.max(np.abs(gelu(x, approximate="tanh") - gelu(x, backend="numpy"))) < 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 40.0, -40.0], dtype)
    with np.errstate(invalid="ignore"):
        y = gelu(x, backend="numpy")
    assert y[0] == 0 and not np.signbit(y[0]) and y[1] == 0 and np.signbit(y[1])
    assert y[2] == np.inf and np.isnan(y[3]) and np.isnan(y[4])  # −∞ · 0 = NaN, as onnx.reference
    np.testing.assert_array_equal(y[[5, 7]], x[[5, 7]])
    assert np.all(y[[6, 8]] == 0) and np.all(np.signbit(y[[6, 8]]))


def test_shape_and_dtype_kept():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    y = gelu(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert gelu(np.empty((0, 3))).shape == (0, 3)


def test_bad_input_names_the_argument():
    with pytest.raises(DTypeError, match="x"):
        gelu(np.arange(3))
    with pytest.raises(DTypeError, match="x"):
        gelu(np.ones(3, np.float16))
    with pytest.raises(ValidationError, match="approximate"):
        gelu(np.ones(3, np.float32), approximate="erf")
    with pytest.raises(ValidationError, match="backend"):
        gelu(np.ones(3, np.float32), backend="gpu")


# --- dispatch: the float32 erf form goes to the registered gelu kernel unless backend="numpy";
# the erf step follows the same choice (erf's kernel is bit-identical), "numpy" never leaves NumPy

def test_kernel_dispatch_by_dtype_form_and_backend(kernel_registry):
    calls = []

    def fake(name, value):
        def kernel(x):
            calls.append((name, x.dtype))
            return np.full_like(x, value)
        return kernel

    kernel_registry({("gelu", "numba"): fake("gelu", 7), ("erf", "numba"): fake("erf", 3)})
    x32 = np.array([0.5, -1.0], np.float32)
    for kw in ({}, {"backend": "auto"}, {"backend": "numba"}):
        calls.clear()
        np.testing.assert_array_equal(gelu(x32, **kw), [7, 7])
        assert calls == [("gelu", np.float32)], kw
    # backend="numpy": neither kernel, the definition with NumPy's erf
    calls.clear()
    y = gelu(x32, backend="numpy")
    assert calls == []
    np.testing.assert_array_equal(y, x32 * (np.float32(0.5) * (1 + erf(x32 / np.float32(math.sqrt(2)), backend="numpy"))))
    # the tanh form has no kernel: eq. G3 in float32 whatever the backend
    t = np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x32 + np.float32(0.044715) * x32 ** 3))
    y = gelu(x32, approximate="tanh")
    assert calls == [] and y.dtype == np.float32
    np.testing.assert_allclose(y, np.float32(0.5) * x32 * (1 + t), rtol=2e-7)
    # float64 has no gelu kernel: the definition, its erf step through erf's kernel (erf = 3 gives y = 2x)
    x64 = x32.astype(np.float64)
    np.testing.assert_array_equal(gelu(x64), 2 * x64)
    assert calls == [("erf", np.float64)]
    calls.clear()
    np.testing.assert_allclose(gelu(x64, backend="numpy"), x64 * 0.5 * (1 + special.erf(x64 / math.sqrt(2))), rtol=1e-15)
    assert calls == []


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (0, 2), (2, 3)])
def test_both_forms_keep_shape_and_dtype(shape, dtype, approximate):
    y = gelu(np.full(shape, 1.25, dtype), approximate=approximate, backend="numpy")
    assert y.shape == shape and y.dtype == dtype
