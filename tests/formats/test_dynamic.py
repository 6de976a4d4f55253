"""DynamicQuantized: eq. (D1) written out in NumPy, the ConvInteger graph it replaces, fields, bad input."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp import backend as _backend
from refcomp.errors import DTypeError, FileFormatError, ShapeError, ValidationError
from refcomp.formats import DynamicQuantized, QTensor
from refcomp.nn import Conv2d
from refcomp.ops import conv_integer, dynamic_quantize_linear
from refcomp.quant import QParams, choose_qparams


def _int8_weight(w, *, symmetric=True, dtype="int8"):
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), dtype, symmetric=symmetric, restricted_range=symmetric, axis=0)
    return QTensor.quantize(w, qp)


def _d1_reference(x, q):
    """Eq. (D1) from the ONNX definitions: uint8 x from its range incl. 0, exact integer product, float32 scaling."""
    x = x.astype(np.float32)
    hi, lo = max(np.float32(0), x.max()), min(np.float32(0), x.min())
    s_x = np.float32(1) if hi == lo else np.float32(np.float32(hi - lo) / np.float32(255))
    z_x = np.rint(np.clip(-np.float32(lo / s_x), 0, 255))
    q_x = np.clip(np.rint(x / s_x) + z_x, 0, 255).astype(np.int64)
    z_w = q.qparams.zero_point.astype(np.int64).reshape(-1, 1)  # per tensor or per row
    acc = (q_x - int(z_x)) @ (q.data.astype(np.int64) - z_w).T
    return acc.astype(np.int32).astype(np.float32) * (s_x * q.qparams.scale)


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(1, 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_matmul_is_eq_d1(batch, n_in, out, symmetric, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out, n_in)) * rng.uniform(0.01, 3)).astype(np.float32)
    x = (rng.standard_normal((batch, n_in)) * rng.uniform(0.01, 10) + rng.uniform(-1, 1)).astype(np.float32)
    q = _int8_weight(w, symmetric=symmetric, dtype="int8" if symmetric else "uint8")
    fmt = DynamicQuantized(q)
    y = fmt.matmul(x)
    assert y.dtype == np.float32 and y.shape == (batch, out)
    np.testing.assert_array_equal(y, _d1_reference(x, q))
    assert fmt.shape == w.shape and fmt.nbytes == q.nbytes and fmt.storage_bits == q.storage_bits
    np.testing.assert_array_equal(fmt.to_dense(), q.to_dense())


def _d2_reference(x, q):
    """Eq. (D2): eq. (D1) on each row alone, written out row by row."""
    return np.concatenate([_d1_reference(row[None, :], q) for row in x])


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(1, 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_per_token_matmul_is_eq_d2(batch, n_in, out, symmetric, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((out, n_in)) * rng.uniform(0.01, 3)).astype(np.float32)
    x = (rng.standard_normal((batch, n_in)) * rng.uniform(0.01, 10) + rng.uniform(-1, 1)).astype(np.float32)
    x *= rng.uniform(0.01, 50, (batch, 1)).astype(np.float32)      # rows of very different ranges
    q = _int8_weight(w, symmetric=symmetric, dtype="int8" if symmetric else "uint8")
    y = DynamicQuantized(q, per_token=True).matmul(x)
    np.testing.assert_array_equal(y, _d2_reference(x, q))


def test_per_token_is_more_accurate_on_rows_of_different_ranges():
    """The point of eq. (D2): a row of small activations keeps its resolution beside a large one."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    x[0] *= 100                                                   # one outlier token
    q = _int8_weight(w)
    exact = x @ q.to_dense().T
    err = {pt: np.abs(DynamicQuantized(q, per_token=pt).matmul(x) - exact)[1:].max() for pt in (False, True)}
    assert err[True] < err[False] / 20


def test_per_token_fields_round_trip_and_bad_flags():
    q = _int8_weight(np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32))
    f = DynamicQuantized(q, per_token=True)
    back = DynamicQuantized.from_fields(f.fields())
    assert back.per_token and "per_token=True" in repr(back)
    assert not DynamicQuantized.from_fields(DynamicQuantized(q).fields()).per_token
    with pytest.raises(FileFormatError, match="per_token"):
        DynamicQuantized.from_fields({"weight": q, "per_token": np.array(2, np.uint8)})
    with pytest.raises(DTypeError, match="per_token"):
        DynamicQuantized(q, per_token="yes")


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (1, 2, 1), (2, 1, 1), (1, 1, 2)])
def test_conv2d_with_the_format_equals_conv_integer_of_the_quantized_input(stride, padding, dilation):
    """Every input pixel lies in a receptive field here, so the im2col rows have the range of x (with 0)."""
    rng = np.random.default_rng(stride + 3 * padding + 7 * dilation)
    conv = Conv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation, rng=rng)
    w = conv.weight.to_dense()
    q = _int8_weight(w.reshape(4, -1))
    conv.weight = DynamicQuantized(q)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32) + 0.5
    q_x, s_x, z_x = dynamic_quantize_linear(x)
    acc = conv_integer(q_x, q.data.reshape(w.shape), z_x, None, strides=[stride] * 2, pads=[padding] * 4,
                       dilations=[dilation] * 2)
    want = acc.astype(np.float32) * (s_x * q.qparams.scale).reshape(1, -1, 1, 1) + conv.bias.data.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(conv.forward(x), want)


def test_the_weight_is_packed_once_and_copies_drop_the_cache(monkeypatch):
    """No product re-packs q_wᵀ; nbytes and fields are the QTensor's; deep copies (model transforms) work."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((70, 40)).astype(np.float32)
    q = _int8_weight(w, symmetric=False, dtype="uint8")  # per-channel zero points, packed with the weight
    fmt = DynamicQuantized(q)
    packs = []
    for b in _backend.available("pack_b")[1:]:
        real = _backend.lookup("pack_b", b)
        monkeypatch.setitem(_backend._registry, ("pack_b", b), lambda B, real=real: packs.append(B.shape) or real(B))
    x = rng.standard_normal((6, 40)).astype(np.float32)
    y = fmt.matmul(x)
    for _ in range(2):
        np.testing.assert_array_equal(fmt.matmul(x), y)
    np.testing.assert_array_equal(y, _d1_reference(x, q))
    assert packs == ([(40, 70)] if len(_backend.available("pack_b")) > 1 else [])
    assert fmt.nbytes == q.nbytes and set(fmt.fields()) == {"weight"}
    twin = copy.deepcopy(fmt)  # after a product: the cffi handle in the cache must not be copied
    assert twin._weight_t._packed == {} and twin.nbytes == fmt.nbytes
    np.testing.assert_array_equal(twin.matmul(x), y)


def test_fields_round_trip():
    w = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    fmt = DynamicQuantized(_int8_weight(w))
    fields = fmt.fields()
    assert set(fields) == {"weight"} and isinstance(fields["weight"], QTensor)
    back = DynamicQuantized.from_fields(fields)
    x = np.random.default_rng(2).standard_normal((3, 7)).astype(np.float32)
    assert back.weight.qparams == fmt.weight.qparams and back.matmul(x).tobytes() == fmt.matmul(x).tobytes()
    with pytest.raises(FileFormatError, match="keys"):
        DynamicQuantized.from_fields({"weight": fmt.weight, "bias": np.zeros(5)})
    with pytest.raises(FileFormatError, match="weight"):
        DynamicQuantized.from_fields({"weight": np.zeros((5, 7), np.int8)})


def test_rejects_bad_weights_and_inputs():
    w = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    with pytest.raises(DTypeError, match="weight"):
        DynamicQuantized(w)
    with pytest.raises(DTypeError, match="weight"):
        DynamicQuantized(_int8_weight(w, dtype="int4"))
    blocked = QParams(np.ones((4, 2), np.float32), None, "int8", axis=1, block_size=3)
    with pytest.raises(ValidationError, match="weight"):
        DynamicQuantized(QTensor.quantize(w, blocked))
    kernel = QTensor.quantize(w.reshape(4, 2, 3), QParams(np.ones(4, np.float32), None, "int8", axis=0))
    with pytest.raises(ShapeError, match="weight"):
        DynamicQuantized(kernel)
    fmt = DynamicQuantized(_int8_weight(w))
    with pytest.raises(ShapeError, match="x"):
        fmt.matmul(np.ones((2, 5), np.float32))
    with pytest.raises(ShapeError, match="x"):
        fmt.matmul(np.ones(6, np.float32))
    with pytest.raises(ValidationError, match="x"):
        fmt.matmul(np.full((1, 6), np.nan, np.float32))


# --- the input's dtype, the per_token flag as a file holds it, the repr
@pytest.mark.parametrize("per_token", [False, True])
def test_a_float64_input_is_rounded_to_float32_first(per_token):
    # range [0, 255]: s_x = 1, z_x = 0; 2.5 + 1e-12 is 2.5 in float32, rounded half to even to code 2
    q = QTensor(np.array([[0, 0, 1]], np.int8), QParams(np.float32(1), None, "int8"))
    y = DynamicQuantized(q, per_token=per_token).matmul(np.array([[0.0, 255.0, 2.5 + 1e-12]]))
    assert y.dtype == np.float32 and y.tolist() == [[2.0]]


@pytest.mark.parametrize("flag", [1, np.array([1], np.uint8), np.array(1, np.int64), np.array(True)])
def test_per_token_flag_must_be_the_uint8_scalar_1(flag):
    q = _int8_weight(np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32))
    with pytest.raises(FileFormatError, match="per_token"):
        DynamicQuantized.from_fields({"weight": q, "per_token": flag})


def test_repr_names_the_shape_the_qparams_and_per_token_only_when_set():
    q = _int8_weight(np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32))
    assert repr(DynamicQuantized(q)) == f"DynamicQuantized(shape=(4, 6), {q.qparams!r})"
    assert repr(DynamicQuantized(q, per_token=True)) == f"DynamicQuantized(shape=(4, 6), {q.qparams!r}, per_token=True)"


def test_per_column_weight_scales_are_refused():
    # one scale per input column cannot leave the integer product: only per tensor or per output row
    w = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    per_column = QTensor.quantize(w, QParams(np.ones(6, np.float32), None, "int8", axis=1))
    with pytest.raises(ValidationError) as info:
        DynamicQuantized(per_column)
    assert info.value.argument == "weight"


@pytest.mark.parametrize("per_tensor", [False, True])
def test_weight_zero_points_of_1_are_subtracted(per_tensor):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((5, 8)).astype(np.float32)
    qp = (QParams(np.float32(0.02), np.int8(1), "int8") if per_tensor
          else QParams(np.full(5, 0.02, np.float32), np.ones(5, np.int8), "int8", axis=0))
    q = QTensor.quantize(w, qp)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_array_equal(DynamicQuantized(q).matmul(x), _d1_reference(x, q))
