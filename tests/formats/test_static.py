"""StaticQuantized: eq. (S1) written out, saturation outside the calibrated range, fields, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import QTensor, StaticQuantized
from refcomp.quant import QParams, choose_qparams


def _weight(w):
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), "int8", symmetric=True, restricted_range=True, axis=0)
    return QTensor.quantize(w, qp)


def _s1_reference(x, q, s_x, z_x, m):
    """Eq. (S1) from the ONNX definitions, in float32 / int64, element by element where it matters."""
    xs = x if m is None else (x / m).astype(np.float32)
    q_x = np.clip(np.rint(xs / np.float32(s_x)) + z_x, 0, 255).astype(np.int64)      # QuantizeLinear, half to even
    acc = (q_x - z_x) @ q.data.astype(np.int64).T
    return acc.astype(np.int32).astype(np.float32) * (np.float32(s_x) * q.qparams.scale.astype(np.float32))


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(1, 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_matmul_is_eq_s1(batch, n_in, out, smooth, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out, n_in)) * rng.uniform(0.01, 3)).astype(np.float32)
    x = (rng.standard_normal((batch, n_in)) * rng.uniform(0.1, 10)).astype(np.float32)
    s_x, z_x = np.float32(rng.uniform(0.005, 0.1)), int(rng.integers(0, 256))   # values outside saturate
    m = rng.uniform(0.2, 5, n_in).astype(np.float32) if smooth else None
    q = _weight(w)
    fmt = StaticQuantized(q, QParams(s_x, np.uint8(z_x), "uint8"), smooth=m)
    np.testing.assert_array_equal(fmt.matmul(x), _s1_reference(x, q, s_x, z_x, m))
    want = q.to_dense() if m is None else q.to_dense() / m
    np.testing.assert_allclose(fmt.to_dense(), want, rtol=1e-6)


def test_fields_round_trip_and_refuse_what_they_did_not_write():
    q = _weight(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    iq = QParams(np.float32(0.02), np.uint8(130), "uint8")
    for m in (None, np.linspace(0.5, 2, 6).astype(np.float32)):
        f = StaticQuantized(q, iq, smooth=m)
        back = StaticQuantized.from_fields(f.fields())
        x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
        np.testing.assert_array_equal(back.matmul(x), f.matmul(x))
        assert back.nbytes == f.nbytes
    bad = StaticQuantized(q, iq).fields()
    bad["input_qparams"] = np.array([0.02, 300.0])
    with pytest.raises(FileFormatError, match="input_qparams"):
        StaticQuantized.from_fields(bad)


def test_bad_arguments():
    q = _weight(np.ones((2, 3), np.float32))
    iq = QParams(np.float32(0.1), np.uint8(0), "uint8")
    with pytest.raises(DTypeError, match="input_qparams"):
        StaticQuantized(q, None)
    with pytest.raises(ValidationError, match="input_qparams"):
        StaticQuantized(q, QParams(np.float32(0.1), np.int8(0), "int8"))
    with pytest.raises(ShapeError, match="smooth"):
        StaticQuantized(q, iq, smooth=np.ones(4, np.float32))
    with pytest.raises(ValidationError, match="smooth"):
        StaticQuantized(q, iq, smooth=np.array([1, 0, 1], np.float32))
    with pytest.raises(ShapeError, match="x"):
        StaticQuantized(q, iq).matmul(np.ones((2, 4), np.float32))
