"""qlinear_matmul: ONNX QLinearMatMul (eq. M1 then eq. R1) against a Python-int definition written out
here and against onnx.reference, for every layout of the scales (per tensor, per row of a, per column of
b), vectors and batches, and the fast-kernel dispatch contract."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from refcomp.ops import qlinear_matmul

U8, S8, F32 = np.uint8, np.int8, np.float32
seeds = st.integers(0, 2**32 - 1)


def ints(rng, dt, shape):
    i = np.iinfo(dt)
    return rng.integers(i.min, int(i.max) + 1, size=shape).astype(dt)


def eq_r1(acc: int, sa, sb, sy, yz: int, ydt) -> int:
    """Eq. R1 for one output, each step a float32 scalar operation: M = f32(f32(sa * sb) / sy),
    round_half_even(f32(acc) * M) + yz (Python's round() is half to even), clipped to ydt."""
    m = F32(F32(F32(sa) * F32(sb)) / F32(sy))
    r = round(float(F32(F32(acc) * m))) + int(yz)
    return min(max(r, int(np.iinfo(ydt).min)), int(np.iinfo(ydt).max))


def definition(a, sa, az, b, sb, bz, sy, yz):
    """QLinearMatMul of 2-D a [M, K], b [K, N], one output at a time with Python ints (eq. M1) and eq. R1."""
    M, K = a.shape
    N = b.shape[1]
    per = lambda p, n: np.broadcast_to(np.asarray(p).reshape(-1), (n,))  # noqa: E731
    sa_, az_, sb_, bz_ = per(sa, M), per(az, M), per(sb, N), per(bz, N)
    out = np.empty((M, N), yz.dtype)
    for i in range(M):
        for j in range(N):
            acc = sum((int(a[i, k]) - int(az_[i])) * (int(b[k, j]) - int(bz_[j])) for k in range(K))
            out[i, j] = eq_r1(acc, sa_[i], sb_[j], sy, yz, yz.dtype)
    return out


@settings(max_examples=60, deadline=None)
@given(seed=seeds, m=st.integers(1, 5), k=st.integers(1, 20), n=st.integers(1, 5),
       adt=st.sampled_from([U8, S8]), bdt=st.sampled_from([U8, S8]), ydt=st.sampled_from([U8, S8]),
       per_row=st.booleans(), per_col=st.booleans())
def test_equals_the_definition_with_python_ints(seed, m, k, n, adt, bdt, ydt, per_row, per_col):
    rng = np.random.default_rng(seed)
    a, b = ints(rng, adt, (m, k)), ints(rng, bdt, (k, n))
    sa = rng.uniform(1e-3, 0.1, m if per_row else ()).astype(F32)
    sb = rng.uniform(1e-3, 0.1, n if per_col else ()).astype(F32)
    az, bz = ints(rng, adt, np.shape(sa)), ints(rng, bdt, np.shape(sb))
    sy, yz = F32(rng.uniform(0.05, 20)), ints(rng, ydt, ())
    y = qlinear_matmul(a, sa, az, b, sb, bz, sy, yz, backend="numpy")
    assert y.dtype == ydt and y.shape == (m, n)
    np.testing.assert_array_equal(y, definition(a, sa, az, b, sb, bz, sy, yz))


def _onnx_reference(*inputs):
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{j}" for j in range(len(inputs))]
    node = helper.make_node("QLinearMatMul", names, ["y"])
    vis = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for nm, v in zip(names, inputs)]
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("y", 0, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    assert onnx is not None
    return ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))[0]


@pytest.mark.parametrize("adt, bdt, ydt", [(U8, S8, U8), (S8, S8, S8), (U8, U8, S8), (S8, U8, U8)])
def test_equals_onnx_reference_with_power_of_two_scales(adt, bdt, ydt):
    # power-of-two scales make acc * (a_scale * b_scale / y_scale) exact in float32 and in float64, so
    # onnx.reference's float64 product (docs/deviations.md D3) rounds the same: the results agree bit for bit
    rng = np.random.default_rng(1)
    a, b = ints(rng, adt, (2, 3, 9)), ints(rng, bdt, (9, 4))
    args = [a, F32(2**-3), ints(rng, adt, ()), b, np.array([2**-4, 2**-2, 2**-5, 1], F32), ints(rng, bdt, (4,)),
            F32(2**2), ints(rng, ydt, ())]
    want = _onnx_reference(*args)
    got = qlinear_matmul(*args, backend="numpy")
    assert got.dtype == want.dtype and got.shape == want.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, want)


def test_per_row_a_scale_multiplies_each_row():
    # a_scale [M]: row i of y uses M[i, j] = a_scale[i] * b_scale[j] / y_scale (onnx.reference does not
    # implement this layout: stated with the definition)
    rng = np.random.default_rng(2)
    a, b = ints(rng, U8, (3, 6)), ints(rng, S8, (6, 2))
    sa, az = np.array([0.01, 0.02, 0.04], F32), np.array([3, 200, 128], U8)
    sb, bz = np.array([0.05, 0.01], F32), np.array([0, -7], S8)
    for sy, yz in ((F32(0.5), U8(10)), (F32(0.25), U8(128))):
        got = qlinear_matmul(a, sa, az, b, sb, bz, sy, yz, backend="numpy")
        np.testing.assert_array_equal(got, definition(a, sa, az, b, sb, bz, sy, yz))


def test_vectors_and_batches_follow_numpy_matmul():
    rng = np.random.default_rng(3)
    a, b = ints(rng, U8, (2, 3, 5)), ints(rng, S8, (5, 4))
    sa, sb, sy = F32(0.02), np.array([0.01, 0.03, 0.02, 0.05], F32), F32(0.1)
    az, bz, yz = U8(7), np.array([1, -2, 0, 3], S8), U8(20)
    y = qlinear_matmul(a, sa, az, b, sb, bz, sy, yz, backend="numpy")
    assert y.shape == (2, 3, 4)
    for i in range(2):
        np.testing.assert_array_equal(y[i], definition(a[i], sa, az, b, sb, bz, sy, yz))
    # a [K] @ b [K, N] -> [N] (per-column scales still along N); a [M, K] @ b [K] -> [M]
    v = qlinear_matmul(a[0, 0], sa, az, b, sb, bz, sy, yz, backend="numpy")
    assert v.shape == (4,)
    np.testing.assert_array_equal(v, definition(a[0, :1], sa, az, b, sb, bz, sy, yz)[0])
    sa_rows = np.array([0.01, 0.02, 0.04], F32)
    c = qlinear_matmul(a[0], sa_rows, az, b[:, 1], sb[1], bz[1], sy, yz, backend="numpy")
    assert c.shape == (3,)
    np.testing.assert_array_equal(c, definition(a[0], sa_rows, az, b[:, 1:2], sb[1], bz[1], sy, yz)[:, 0])
    c = qlinear_matmul(a[0], sa, az, b[:, 1], sb[1], bz[1], sy, yz, backend="numpy")
    np.testing.assert_array_equal(c, definition(a[0], sa, az, b[:, 1:2], sb[1], bz[1], sy, yz)[:, 0])
    # a [K] @ b [K] -> a scalar (0-d), as numpy.matmul gives
    s = qlinear_matmul(a[0, 0], sa, az, b[:, 2], sb[2], bz[2], sy, yz, backend="numpy")
    assert s.shape == () and s.dtype == U8
    assert int(s) == definition(a[0, :1], sa, az, b[:, 2:3], sb[2], bz[2], sy, yz)[0, 0]


def test_zero_points_may_be_left_out():
    # a missing zero point is 0 (ONNX's default)
    rng = np.random.default_rng(4)
    a, b = ints(rng, S8, (2, 4)), ints(rng, S8, (4, 3))
    y = qlinear_matmul(a, F32(0.1), None, b, F32(0.1), None, F32(0.5), S8(-3), backend="numpy")
    np.testing.assert_array_equal(y, definition(a, F32(0.1), S8(0), b, F32(0.1), S8(0), F32(0.5), S8(-3)))


def test_the_output_saturates_at_both_ends_of_its_type():
    a = np.array([[255, 0]], U8)
    b = np.array([[127, -128], [0, 0]], S8)
    for yz, lo, hi in ((U8(0), 0, 255), (S8(0), -128, 127)):
        y = qlinear_matmul(a, F32(1), U8(0), b, F32(1), S8(0), F32(1), yz, backend="numpy")
        assert y.tolist() == [[hi, lo]] and y.dtype == yz.dtype


def test_scales_of_16_bit_floats_are_widened_exactly():
    rng = np.random.default_rng(5)
    a, b = ints(rng, U8, (3, 7)), ints(rng, S8, (7, 2))
    for dt in (np.float16, "bfloat16"):
        import ml_dtypes  # noqa: F401  (registers bfloat16)

        dt = np.dtype(ml_dtypes.bfloat16) if dt == "bfloat16" else np.dtype(dt)
        sa, sb, sy = np.array(0.0125, dt), np.array([0.03, 0.007], dt), np.array(0.3, dt)
        y = qlinear_matmul(a, sa, U8(100), b, sb, S8(0), sy, U8(50), backend="numpy")
        want = definition(a, sa.astype(F32), U8(100), b, sb.astype(F32), S8(0), sy.astype(F32), U8(50))
        np.testing.assert_array_equal(y, want)


def test_bad_input_is_refused():
    a, b = np.zeros((2, 3), U8), np.zeros((3, 4), S8)
    ok = dict(a=a, a_scale=F32(1), a_zero_point=U8(0), b=b, b_scale=F32(1), b_zero_point=S8(0), y_scale=F32(1),
              y_zero_point=U8(0))

    def call(**kw):
        return qlinear_matmul(**{**ok, **kw})

    with pytest.raises(DTypeError, match="y_zero_point"):
        call(y_zero_point=None)
    with pytest.raises(DTypeError, match="y_zero_point"):
        call(y_zero_point=np.int32(0))
    with pytest.raises(ShapeError, match="y_zero_point"):
        call(y_zero_point=np.zeros(2, U8))
    with pytest.raises(ShapeError, match="y_scale"):
        call(y_scale=np.ones(2, F32))
    with pytest.raises(ShapeError, match="a_scale"):
        call(a_scale=np.ones(3, F32))
    with pytest.raises(ShapeError, match="a_scale"):
        call(a_scale=np.ones((2, 1), F32))
    with pytest.raises(ShapeError, match="b_scale"):
        call(b_scale=np.ones(3, F32))
    with pytest.raises(ShapeError, match="a_zero_point"):
        call(a_scale=np.ones(2, F32), a_zero_point=np.zeros(3, U8))
    with pytest.raises(ShapeError, match="b_zero_point"):
        call(b_zero_point=np.zeros(4, S8))
    with pytest.raises(DTypeError, match="a"):
        call(a=a.astype(np.int16))
    with pytest.raises(DTypeError, match="b"):
        call(b=b.astype(np.int16))
    with pytest.raises(ValidationError, match="b_scale"):
        call(b_scale=F32(0))
    # per-row / per-column zero points of the scales' shape, and [1] scalars, are accepted
    assert call(a_scale=np.ones(2, F32), a_zero_point=np.zeros(2, U8), b_scale=np.ones(4, F32),
                b_zero_point=np.zeros(4, S8), y_scale=np.ones(1, F32), y_zero_point=np.zeros(1, U8)).shape == (2, 4)
    assert call(a_scale=np.ones(1, F32), a_zero_point=np.zeros(1, U8)).shape == (2, 4)


def test_an_accumulator_outside_int32_raises():
    K = 33100  # K * 255 * 255 > 2**31 - 1
    a, b = np.zeros((1, K), U8), np.zeros((K, 1), U8)
    with pytest.raises(OverflowRiskError):
        qlinear_matmul(a, F32(1), U8(255), b, F32(1), U8(255), F32(1), U8(0), backend="numpy")


def test_the_kernels_run_unless_numpy_is_asked(kernel_registry):
    calls = []

    def matmul(a, b, a_zp, b_zp):
        calls.append("matmul_integer")
        return np.matmul(a.astype(np.int64) - a_zp[:, None], b.astype(np.int64) - b_zp[None, :]).astype(np.int32)

    def requant(acc, m, zp, lo, hi):
        calls.append("requantize_float")
        return np.clip(np.rint(acc.astype(F32) * m) + zp, lo, hi).astype(np.int64)

    kernel_registry({("matmul_integer", "c"): matmul, ("requantize_float", "c"): requant})
    rng = np.random.default_rng(6)
    a, b = ints(rng, U8, (3, 8)), ints(rng, S8, (8, 5))
    args = (a, F32(0.02), U8(9), b, np.linspace(0.01, 0.05, 5).astype(F32), S8(0), F32(0.2), U8(30))
    want = definition(*args)
    for backend, expected in (("numpy", []), ("auto", ["matmul_integer", "requantize_float"])):
        calls.clear()
        np.testing.assert_array_equal(qlinear_matmul(*args, backend=backend), want)
        assert calls == expected, backend


def test_per_row_requantization_multiplies_in_float32():
    # eq. R1 with per-row a_scale: f32(acc) * M rounds in float32 (docs/deviations.md D3). For acc =
    # 1163191 and M = f32(6.4907654e-05) the float32 product is the tie 75.5 (-> 76, even), the float64
    # product 75.4999986... (-> 75)
    M = F32(6.4907654e-05)
    assert F32(F32(1163191) * M) == 75.5 and round(1163191 * float(M)) == 75
    a = np.array([[255] * 18 + [136], [1] + [0] * 18], U8)
    b = np.array([[255] * 17 + [226, 1]], U8).T
    assert int(np.dot(a[0].astype(np.int64), b[:, 0].astype(np.int64))) == 1163191
    y = qlinear_matmul(a, np.array([M, 1], F32), U8(0), b, F32(1), U8(0), F32(1), U8(0), backend="numpy")
    assert y.tolist() == [[76], [255]]


def test_single_element_scales_and_zero_points_are_scalars_whatever_their_shape():
    # [1]-shaped a_scale, [1, 1]-shaped y_scale / y_zero_point: per tensor; y keeps numpy.matmul's shape
    rng = np.random.default_rng(7)
    a, b = ints(rng, U8, (3, 5)), ints(rng, S8, (5, 4))
    sb = np.array([0.01, 0.03, 0.02, 0.05], F32)
    want = definition(a, F32(0.02), U8(7), b, sb, S8(1), F32(0.1), U8(20))
    s = qlinear_matmul(a[0], np.array([0.02], F32), U8(7), b[:, 2], sb[2:3], S8(1), F32(0.1), U8(20), backend="numpy")
    assert s.shape == () and int(s) == want[0, 2]
    v = qlinear_matmul(a[0], F32(0.02), U8(7), b, sb, S8(1), np.full((1, 1), 0.1, F32), U8(20), backend="numpy")
    assert v.shape == (4,)
    np.testing.assert_array_equal(v, want[0])
    rows = np.array([0.02, 0.01, 0.04], F32)
    c = qlinear_matmul(a, rows, U8(7), b[:, 1], sb[1], S8(1), F32(0.1), np.full((1, 1), 20, U8), backend="numpy")
    assert c.shape == (3,)
    np.testing.assert_array_equal(c, definition(a, rows, U8(7), b[:, 1:2], sb[1], S8(1), F32(0.1), U8(20))[:, 0])


def test_per_column_b_scale_runs_along_the_last_axis_of_a_batched_b():
    rng = np.random.default_rng(8)
    a, b = ints(rng, U8, (3, 5)), ints(rng, S8, (2, 5, 4))
    sb, bz = np.array([0.01, 0.03, 0.02, 0.05], F32), np.array([1, -2, 0, 3], S8)
    y = qlinear_matmul(a, F32(0.02), U8(7), b, sb, bz, F32(0.1), U8(20), backend="numpy")
    assert y.shape == (2, 3, 4)
    for i in range(2):
        np.testing.assert_array_equal(y[i], definition(a, F32(0.02), U8(7), b[i], sb, bz, F32(0.1), U8(20)))


def test_scales_are_refused_unless_scalar_or_one_per_row_or_column():
    F = F32(1)

    def refused(name, what, a, sa, b, sb, az=U8(0)):
        with pytest.raises(ShapeError) as e:
            qlinear_matmul(a, sa, az, b, sb, S8(0), F, U8(0), backend="numpy")
        assert e.value.argument == name and what in str(e.value), str(e.value)

    a2, a1 = np.zeros((1, 3), U8), np.zeros(3, U8)
    b2, b1 = np.zeros((3, 2), S8), np.zeros(3, S8)
    refused("a_scale", "per-row vector of length 1", a2, np.ones((1, 1), F32), b2, F)  # one row, but 2-D
    refused("a_scale", "per-row vector of length 1", a1, np.ones(2, F32), b2, F)  # a vector has one row
    refused("b_scale", "per-column vector of length 1", a2, F, b1, np.ones(3, F32))  # b a vector: one column
    refused("b_scale", "per-column vector of length 1", a2, F, b1, np.ones(2, F32))
    refused("b_scale", "per-column vector of length 2", a2, F, b2, np.ones(3, F32))
    # a zero point has its scale's shape: no per-row zero point beside a per-tensor scale
    refused("a_zero_point", "the shape of a_scale", np.zeros((2, 3), U8), F, b2, F, az=np.zeros(2, U8))
