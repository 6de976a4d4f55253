"""dynamic_quantize_linear / dynamic_quantize_rows: eqs. DQ1–DQ3 (ONNX DynamicQuantizeLinear-11) and the policy on bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp import backend as _backend
from refcomp.errors import BackendUnavailableError, DTypeError, ShapeError, ValidationError
from refcomp.ops import dequantize_linear, dynamic_quantize_linear, dynamic_quantize_rows, quantize_linear

seeds = st.integers(0, 2**32 - 1)
# the NumPy definition and every kernel this machine has: each must give the definition's bytes
BACKENDS = _backend.available("dynamic_quantize_linear")
ROW_BACKENDS = _backend.available("dynamic_quantize_rows")
X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


@settings(max_examples=60)
@given(seed=seeds, shape=st.sampled_from([(1,), (5,), (3, 4)]))
def test_dynamic_quantize_covers_the_data_and_zero(seed, shape):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3)).astype(np.float32)
    y, s, z = dynamic_quantize_linear(x)
    assert s > 0 and y.dtype == np.uint8 and z.dtype == np.uint8
    assert quantize_linear(np.float32(0), s, z) == z  # 0 is exactly representable
    err = np.abs(dequantize_linear(y, s, z).astype(np.float64) - x)
    # range widened to include 0 and rounded zero point: at most one step of error
    assert np.all(err <= float(s) * (1 + 1e-5))


@settings(max_examples=60)
@given(seed=seeds, shape=st.sampled_from([(1,), (7,), (3, 4), (2, 3, 5)]), ties=st.booleans(),
       backend=st.sampled_from(BACKENDS))
def test_dynamic_quantize_is_eqs_dq1_to_dq3_as_written(seed, shape, ties, backend):
    """The op (one float32 buffer, finiteness from min / max) equals the spec's formulas term by term."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3) + rng.uniform(-2, 2)).astype(np.float32)
    f32 = np.float32
    r_max, r_min = max(f32(0), x.max()), min(f32(0), x.min())
    s = f32(1) / f32(255) if r_max == r_min else f32(f32(r_max - r_min) / f32(255))
    if ties:  # values at exact half steps, where rint's half-to-even decides
        x = (np.floor(x / s) + f32(0.5)).astype(np.float32) * s
        r_max, r_min = max(f32(0), x.max()), min(f32(0), x.min())
        s = f32(1) / f32(255) if r_max == r_min else f32(f32(r_max - r_min) / f32(255))
    z = np.rint(np.clip(f32(0) - f32(r_min / s), f32(0), f32(255)))
    want = np.clip(np.rint(x / s) + z, 0, 255).astype(np.uint8)
    y, y_s, y_z = dynamic_quantize_linear(x, backend=backend)
    assert y_s == s and y_z == z and y.shape == x.shape
    assert y.dtype == y_z.dtype == np.uint8 and y_s.dtype == np.float32 and y_s.shape == y_z.shape == ()
    np.testing.assert_array_equal(y, want)


def test_dynamic_quantize_constant_zero_tensor():
    y, s, z = dynamic_quantize_linear(np.zeros(4, np.float32))
    assert s == np.float32(1) / np.float32(255) and z == 0 and np.all(y == 0)


@pytest.mark.parametrize("backend", ROW_BACKENDS)
def test_dynamic_quantize_rows_is_dq1_to_dq3_on_each_row(backend):
    """Each row written out with eqs. DQ1–DQ3 in float32, scalar by scalar."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 9)) * rng.uniform(0.01, 30, (6, 1))).astype(np.float32)
    x[2] = 0                                   # a flat row: scale 1/255, zero point 0
    x[4] = np.abs(x[4])                        # a row without negatives: zero point 0
    y, scale, zp = dynamic_quantize_rows(x, backend=backend)
    f32 = np.float32
    for m, row in enumerate(x):
        hi, lo = max(f32(0), row.max()), min(f32(0), row.min())
        s = f32(f32(1) / f32(255)) if hi == lo else f32(f32(hi - lo) / f32(255))
        z = np.rint(np.clip(f32(0) - f32(lo / s), 0, 255))
        assert scale[m] == s and zp[m] == z
        np.testing.assert_array_equal(y[m], np.clip(np.rint(row / s) + z, 0, 255).astype(np.uint8))
    assert y.dtype == zp.dtype == np.uint8 and scale.dtype == np.float32


def test_nan_inf_and_empty_x_are_refused():
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValidationError, match="x"):
        dynamic_quantize_linear(bad)
    inf = X.copy()
    inf[0, 0] = np.inf
    with pytest.raises(ValidationError, match="x"):
        dynamic_quantize_linear(inf)
    with pytest.raises(ShapeError, match="x"):
        dynamic_quantize_linear(np.zeros((0,), np.float32))


# ---- the top of the range, the backends, the rows' own checks ------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_two_halves_rounded_up_saturate_at_255(backend):
    """x = ±127.5: scale 1, zero point rint(127.5) = 128, and rint(127.5) + 128 = 256 clips to 255 (eq. DQ3)."""
    x = np.array([-127.5, 0.0, 127.5, 126.5], np.float32)
    y, s, z = dynamic_quantize_linear(x, backend=backend)
    assert s == 1 and z == 128
    np.testing.assert_array_equal(y, [0, 128, 255, 254])
    assert y.dtype == np.uint8 and z.dtype == np.uint8 and s.dtype == np.float32


@pytest.mark.parametrize("backend", ROW_BACKENDS)
def test_rows_saturate_at_255_and_each_row_is_dynamic_quantize_linear(backend):
    x = np.array([[-127.5, 0.0, 127.5, 126.5], [0.0, 0.0, 0.0, 0.0], [-3.0, -1.0, -2.0, -0.5]], np.float32)
    y, s, z = dynamic_quantize_rows(x, backend=backend)
    np.testing.assert_array_equal(y[0], [0, 128, 255, 254])
    for m in range(3):
        ym, sm, zm = dynamic_quantize_linear(x[m], backend="numpy")
        np.testing.assert_array_equal(y[m], ym)
        assert s[m] == sm and z[m] == zm
    assert y.dtype == z.dtype == np.uint8 and s.dtype == np.float32 and s.shape == z.shape == (3,)


def test_an_unknown_backend_is_refused():
    for fn in (dynamic_quantize_linear, dynamic_quantize_rows):
        with pytest.raises(ValidationError) as e:
            fn(X, backend="cuda")
        assert e.value.argument == "backend"
    with pytest.raises(BackendUnavailableError):
        dynamic_quantize_rows(X, backend="numba")      # no Numba kernel for the rows (module docstring)


def test_the_default_backend_gives_the_definitions_bytes():
    for fn in (dynamic_quantize_linear, dynamic_quantize_rows):
        for got, want in zip(fn(X), fn(X, backend="numpy")):
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("backend", ROW_BACKENDS)
def test_rows_bad_input(backend):
    for bad in (np.zeros(4, np.float32), np.zeros((2, 0), np.float32), np.zeros((1, 2, 3), np.float32)):
        with pytest.raises(ShapeError) as e:
            dynamic_quantize_rows(bad, backend=backend)
        assert e.value.argument == "x"
    nan = X.copy()
    nan[1, 1] = np.nan
    with pytest.raises(ValidationError) as e:
        dynamic_quantize_rows(nan, backend=backend)
    assert e.value.argument == "x"
    with pytest.raises(DTypeError) as e:
        dynamic_quantize_rows(X.astype(np.float64), backend=backend)
    assert e.value.argument == "x"


@settings(max_examples=40)
@given(seed=seeds, m=st.integers(1, 5), k=st.integers(1, 9), backend=st.sampled_from(ROW_BACKENDS))
def test_each_row_is_dynamic_quantize_linear_of_that_row(seed, m, k, backend):
    """Rows of very different ranges and signs (K = 1 included): row m is exactly dynamic_quantize_linear(x[m])."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-4, 4, (m, 1)) + rng.uniform(-3, 3, (m, 1)))
    x = x.astype(np.float32)
    y, s, z = dynamic_quantize_rows(x, backend=backend)
    for r in range(m):
        yr, sr, zr = dynamic_quantize_linear(x[r], backend="numpy")
        assert s[r] == sr and z[r] == zr
        np.testing.assert_array_equal(y[r], yr)
