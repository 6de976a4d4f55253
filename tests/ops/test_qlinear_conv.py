"""qlinear_conv: ONNX QLinearConv (eq. CI1 plus bias, then eq. R1) against a direct loop with Python ints and
float32 scalar steps written out here, against onnx.reference, and its refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, OverflowRiskError, ShapeError, ValidationError
from refcomp.ops import qlinear_conv
from refcomp.ops._conv_geometry import geometry

from .test_conv_integer import direct_conv

U8, S8, F32 = np.uint8, np.int8, np.float32
seeds = st.integers(0, 2**32 - 1)


def eq_r1(acc: int, sx, sw, sy, yz, ydt) -> int:
    """Eq. R1 for one output, each step a float32 scalar operation: M = f32(f32(sx * sw) / sy),
    round_half_even(f32(acc) * M) + yz (Python's round() is half to even), clipped to ydt."""
    m = F32(F32(F32(sx) * F32(sw)) / F32(sy))
    r = round(float(F32(F32(acc) * m))) + int(yz)
    return min(max(r, int(np.iinfo(ydt).min)), int(np.iinfo(ydt).max))


def definition(x, sx, xz, w, sw, wz, sy, yz, B, group=1, **attrs):
    """QLinearConv one output at a time: the direct loop of eq. CI1, + B[m], then eq. R1 with w_scale[m]."""
    g = geometry(x.shape, w.shape, **attrs)
    acc = direct_conv(x, w, xz, wz, g, group)
    M = w.shape[0]
    sw_ = np.broadcast_to(np.asarray(sw).reshape(-1), (M,))
    b = np.zeros(M, np.int64) if B is None else B.astype(np.int64)
    out = np.empty(acc.shape, yz.dtype)
    for idx in np.ndindex(*acc.shape):
        m = idx[1]
        out[idx] = eq_r1(int(acc[idx]) + int(b[m]), sx, sw_[m], sy, yz, yz.dtype)
    return out


def ints(rng, dt, shape):
    i = np.iinfo(dt)
    return rng.integers(i.min, int(i.max) + 1, size=shape).astype(dt)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, n_spatial=st.sampled_from([1, 2, 3]), group=st.sampled_from([1, 2]),
       types=st.sampled_from([(U8, S8, U8), (S8, S8, S8), (U8, U8, S8), (S8, U8, U8)]),
       per_channel=st.booleans(), bias=st.booleans())
def test_equals_the_definition_with_python_ints(seed, n_spatial, group, types, per_channel, bias):
    xdt, wdt, ydt = types
    rng = np.random.default_rng(seed)
    C, M = group * int(rng.integers(1, 3)), group * int(rng.integers(1, 3))
    spatial = tuple(int(d) for d in rng.integers(2, 5 if n_spatial < 3 else 3, n_spatial))
    kernel = tuple(int(k) for k in rng.integers(1, 3, n_spatial))
    attrs = dict(strides=[int(s) for s in rng.integers(1, 3, n_spatial)],
                 pads=[int(p) for p in rng.integers(0, 2, 2 * n_spatial)])
    x, w = ints(rng, xdt, (1, C) + spatial), ints(rng, wdt, (M, C // group) + kernel)
    sw = rng.uniform(1e-3, 0.05, M if per_channel else ()).astype(F32)
    wz = ints(rng, wdt, np.shape(sw))
    B = rng.integers(-5000, 5000, M).astype(np.int32) if bias else None
    args = [x, F32(rng.uniform(1e-3, 0.05)), ints(rng, xdt, ()), w, sw, wz, F32(rng.uniform(0.01, 0.5)),
            ints(rng, ydt, ())]
    y = qlinear_conv(*args, B, group=group, kernel_shape=list(kernel), **attrs)
    assert y.dtype == ydt
    np.testing.assert_array_equal(y, definition(*args, B, group=group, **attrs))


def _onnx_reference(inputs, **attrs):
    pytest.importorskip("onnx")
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{j}" for j in range(len(inputs))]
    node = helper.make_node("QLinearConv", names, ["y"], **attrs)
    vis = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for nm, v in zip(names, inputs)]
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info("y", 0, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    return ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))[0]


@pytest.mark.parametrize("per_channel", [False, True])
def test_equals_onnx_reference_with_power_of_two_scales(per_channel):
    # power-of-two scales make acc * (x_scale * w_scale / y_scale) exact in float32 and in float64, so
    # onnx.reference's float64 product (docs/deviations.md D3) rounds the same: bit for bit
    rng = np.random.default_rng(1)
    x, w = ints(rng, U8, (2, 4, 5, 6)), ints(rng, S8, (4, 2, 3, 3))
    sw = np.array([2**-6, 2**-4, 2**-7, 2**-5], F32) if per_channel else F32(2**-6)
    args = [x, F32(2**-3), U8(120), w, sw, np.zeros(np.shape(sw), S8), F32(2**-1), U8(100),
            rng.integers(-3000, 3000, 4).astype(np.int32)]
    attrs = dict(group=2, pads=[1, 0, 1, 1], strides=[1, 2], dilations=[2, 1], kernel_shape=[3, 3])
    want = _onnx_reference(args, **attrs)
    got = qlinear_conv(*args, **attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_bias_is_added_per_output_channel_in_every_rank():
    # B[m] joins the accumulator of channel m before the requantization, for 1-, 2- and 3-D convolutions
    rng = np.random.default_rng(2)
    for spatial, kernel in (((5,), (2,)), ((4, 3), (2, 1)), ((3, 3, 2), (1, 2, 2))):
        x, w = ints(rng, U8, (1, 2) + spatial), ints(rng, S8, (3, 2) + kernel)
        B = np.array([-4000, 0, 2500], np.int32)
        args = [x, F32(0.02), U8(128), w, np.array([0.01, 0.02, 0.005], F32), np.zeros(3, S8), F32(0.3), U8(60)]
        np.testing.assert_array_equal(qlinear_conv(*args, B), definition(*args, B))


def test_the_output_saturates_at_both_ends_of_its_type():
    x = np.array([[[255, 0]]], U8)
    w = np.array([[[127]], [[-128]]], S8)
    for yz, lo, hi in ((U8(0), 0, 255), (S8(0), -128, 127)):
        y = qlinear_conv(x, F32(1), U8(0), w, F32(1), S8(0), F32(1), yz)
        assert y.tolist() == [[[hi, 0], [lo, 0]]] and y.dtype == yz.dtype


def test_single_element_scales_are_per_tensor_whatever_their_shape():
    rng = np.random.default_rng(3)
    x, w = ints(rng, U8, (1, 1, 6)), ints(rng, S8, (2, 1, 3))
    for sw in (F32(0.03), np.array([0.03], F32)):  # one w_scale for both output channels
        y = qlinear_conv(x, F32(0.02), U8(3), w, sw, S8(0), F32(0.1), U8(9))
        np.testing.assert_array_equal(y, definition(x, F32(0.02), U8(3), w, F32(0.03), S8(0), F32(0.1), U8(9), None))
    # [1, 1]-shaped x_scale / y_scale beside a per-channel w_scale
    sw = np.array([0.03, 0.01], F32)
    want = definition(x, F32(0.02), U8(3), w, sw, S8(0), F32(0.1), U8(9), None)
    for sx, sy in ((np.full((1, 1), 0.02, F32), F32(0.1)), (F32(0.02), np.full((1, 1), 0.1, F32))):
        np.testing.assert_array_equal(qlinear_conv(x, sx, U8(3), w, sw, S8(0), sy, U8(9)), want)


def test_bias_that_takes_the_accumulator_outside_int32_raises():
    # acc = 1 * 1 fits; + B = 2**31 - 1 does not
    x, w = np.ones((1, 1, 1), U8), np.ones((1, 1, 1), S8)
    B = np.array([2**31 - 1], np.int32)
    with pytest.raises(OverflowRiskError):
        qlinear_conv(x, F32(1), U8(0), w, F32(1), S8(0), F32(1), U8(0), B)
    assert qlinear_conv(x, F32(1), U8(0), w, F32(1), S8(0), F32(1), U8(0), B - 1).tolist() == [[[255]]]


def test_bad_input_is_refused():
    x, w = np.zeros((1, 2, 5), U8), np.zeros((3, 2, 2), S8)
    ok = dict(x=x, x_scale=F32(1), x_zero_point=U8(0), w=w, w_scale=F32(1), w_zero_point=S8(0), y_scale=F32(1),
              y_zero_point=U8(0))

    def refused(error, name, **kw):
        with pytest.raises(error) as e:
            qlinear_conv(**{**ok, **kw})
        assert e.value.argument == name, str(e.value)

    refused(ShapeError, "x_scale", x_scale=np.ones(2, F32))
    refused(ShapeError, "y_scale", y_scale=np.ones(2, F32))
    refused(ShapeError, "w", w=np.zeros((), S8))
    refused(ShapeError, "w_scale", w_scale=np.ones(2, F32))
    refused(ShapeError, "w_scale", w_scale=np.ones((3, 1), F32))
    refused(ShapeError, "w_scale", w=np.zeros((1, 2, 2), S8), w_scale=np.ones((1, 1), F32))
    refused(DTypeError, "y_zero_point", y_zero_point=None)
    refused(DTypeError, "y_zero_point", y_zero_point=np.int32(0))
    refused(ShapeError, "y_zero_point", y_zero_point=np.zeros(2, U8))
    refused(DTypeError, "x", x=x.astype(np.int16))
    refused(DTypeError, "w", w=w.astype(np.int16))
    refused(DTypeError, "B", B=np.zeros(3, np.int64))
    refused(ShapeError, "B", B=np.zeros(2, np.int32))
    refused(ShapeError, "B", B=np.zeros((3, 1), np.int32))
    with pytest.raises(Exception, match="kernel_shape"):
        qlinear_conv(**ok, kernel_shape=[3])  # w's kernel is [2]
    # an unknown backend is refused first, whatever else is wrong
    for bad in ({}, {"x": x.astype(np.int16)}, {"w_scale": np.ones(2, F32)}):
        refused(ValidationError, "backend", backend="no such backend", **bad)
    # single-element x_scale / y_scale / y_zero_point of shape [1] are scalars; w_scale [M] per channel
    y = qlinear_conv(**{**ok, "x_scale": np.ones(1, F32), "y_scale": np.ones(1, F32),
                        "y_zero_point": np.zeros(1, U8), "w_scale": np.ones(3, F32)})
    assert y.shape == (1, 3, 4) and y.dtype == U8
