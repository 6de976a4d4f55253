"""Differential tests: refcomp.ops against onnxruntime (CPU, one thread), bit for bit.

Random and extreme inputs, per tensor and per axis. Where onnxruntime is known
to differ from the definition (docs/deviations.md) the test states the
difference instead of hiding it: float16 QuantizeLinear of opset <= 21 models
divides in float32 in onnxruntime (refcomp: precision=1), and MatMulInteger
u8 x s8 must equal either the exact answer or refcomp's emulation of the x86
int16-saturating kernel (the latter only on CPUs without VNNI).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from ._ort import run  # noqa: E402

import refcomp.ops as ops  # noqa: E402

U8, S8 = np.uint8, np.int8
FEW = settings(max_examples=80)


def _cpu_has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


# onnxruntime's u8 x s8 kernels are exact with VNNI and saturate without it (deviations.md D1):
# without VNNI, vpmaddubsw adds two u8 x s8 products in int16, which saturates as soon as
# a pair exceeds 32767 (two products of 255 x 65 already do). So where it is not exact,
# u8 x s8 inputs to QLinearMatMul / ConvInteger / QLinearConv draw the int8 operand
# from [-64, 64], where no pair can saturate (2 * 255 * 64 = 32640), and never extreme.
U8S8_EXACT_HERE = _cpu_has_vnni()
S8_PAIR_SAFE = 64


def ints(rng, dt, shape, extreme=False):
    info = np.iinfo(dt)
    if extreme:  # only the two ends of the range: where saturation lives
        return rng.choice(np.array([info.min, info.max], dt), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dt)


def s8_operand(rng, shape, extreme, u8_partner):
    """The int8 operand of a product: full range, or [-64, 64] next to uint8 on a CPU without VNNI."""
    if u8_partner and not U8S8_EXACT_HERE:
        return rng.integers(-S8_PAIR_SAFE, S8_PAIR_SAFE + 1, size=shape).astype(S8)
    return ints(rng, S8, shape, extreme)


seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------- MatMulInteger


@FEW
@given(seed=seeds, m=st.integers(1, 6), k=st.integers(1, 40), n=st.integers(1, 6),
       adt=st.sampled_from([U8, S8]), bdt=st.sampled_from([U8, S8]),
       per_column=st.booleans(), extreme=st.booleans())
def test_matmul_integer(seed, m, k, n, adt, bdt, per_column, extreme):
    rng = np.random.default_rng(seed)
    a, b = ints(rng, adt, (m, k), extreme), ints(rng, bdt, (k, n), extreme)
    az = ints(rng, adt, ())
    bz = ints(rng, bdt, (n,) if per_column else ())
    got = ops.matmul_integer(a, b, az, bz, backend="numpy")
    want = run("MatMulInteger", [a, b, az, bz], [np.int32], opset=10)[0]
    if adt is U8 and bdt is S8 and not np.array_equal(got, want):
        emulated = ops.matmul_integer(a, b, az, bz, numerics="x86_u8s8_int16_saturating")
        np.testing.assert_array_equal(want, emulated)  # a non-VNNI CPU: the kernel saturated
    else:
        np.testing.assert_array_equal(got, want)


def test_matmul_integer_saturation_case_documented():
    """docs/deviations.md, D1: u8 255 x s8 -128, K = 64, zero points 0."""
    a = np.full((1, 64), 255, U8)
    b = np.full((64, 1), -128, S8)
    exact = ops.matmul_integer(a, b)
    assert exact.item() == -2088960
    assert ops.matmul_integer(a, b, numerics="x86_u8s8_int16_saturating").item() == -1048576
    ort_value = run("MatMulInteger", [a, b], [np.int32], opset=10)[0].item()
    assert ort_value in (-2088960, -1048576)  # exact with VNNI, saturated on AVX2-only CPUs


@FEW
@given(seed=seeds, batch=st.sampled_from([(2,), (2, 3)]), k=st.integers(1, 16))
def test_matmul_integer_batched(seed, batch, k):
    rng = np.random.default_rng(seed)
    a, b = ints(rng, U8, batch + (3, k)), ints(rng, S8, (k, 4))
    got = ops.matmul_integer(a, b, U8(7), S8(-3), backend="numpy")
    want = run("MatMulInteger", [a, b, U8(7), S8(-3)], [np.int32], opset=10)[0]
    if U8S8_EXACT_HERE:
        np.testing.assert_array_equal(got, want)
    else:  # a non-VNNI CPU: onnxruntime's kernel saturates pairs in int16 (D1)
        emulated = ops.matmul_integer(a, b, U8(7), S8(-3), numerics="x86_u8s8_int16_saturating")
        np.testing.assert_array_equal(want, emulated)


# ---------------------------------------------------------------- QuantizeLinear / DequantizeLinear


def floats(rng, shape, scale):
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 300)).astype(np.float32)
    flat = x.reshape(-1)
    n = min(flat.size, 6)
    flat[:n] = (np.arange(n) - 2.5) * scale  # exact ties of x / scale
    return x


@FEW
@given(seed=seeds, zdt=st.sampled_from([U8, S8, np.uint16, np.int16]), per_axis=st.booleans(),
       axis=st.sampled_from([0, 1, -1]))
def test_quantize_linear(seed, zdt, per_axis, axis):
    rng = np.random.default_rng(seed)
    shape = (3, 4, 5)
    if per_axis:
        s = rng.uniform(1e-3, 2, shape[axis]).astype(np.float32)
        z = ints(rng, zdt, shape[axis])
        attrs = {"axis": axis}
    else:
        s, z, attrs = np.float32(rng.uniform(1e-3, 2)), ints(rng, zdt, ()), {}
    x = floats(rng, shape, float(np.min(s)))
    got = ops.quantize_linear(x, s, z, **attrs)
    want = run("QuantizeLinear", [x, s, z], [zdt], opset=21, **attrs)[0]
    np.testing.assert_array_equal(got, want)


@FEW
@given(seed=seeds, zdt=st.sampled_from([U8, S8]))
def test_quantize_linear_extremes(seed, zdt):
    rng = np.random.default_rng(seed)
    info = np.finfo(np.float32)
    x = np.array([info.max, -info.max, info.tiny, -info.tiny, 0.0, -0.0, np.inf, -np.inf], np.float32)
    x = np.concatenate([x, floats(rng, (8,), 1.0)])
    s, z = np.float32(rng.uniform(1e-6, 1)), ints(rng, zdt, ())
    np.testing.assert_array_equal(ops.quantize_linear(x, s, z), run("QuantizeLinear", [x, s, z], [zdt])[0])


def test_quantize_linear_float16_division_precision():
    """docs/deviations.md, D2: the division of float16 inputs is float16 from opset 23 on, float32 before."""
    x, s, z = np.array([14.86], np.float16), np.float16(1.748), U8(0)
    assert ops.quantize_linear(x, s, z).item() == 8  # float16 quotient 8.5 -> ties to even
    assert run("QuantizeLinear", [x, s, z], [U8], opset=25)[0].item() == 8
    assert run("QuantizeLinear", [x, s, z], [U8], opset=23)[0].item() == 8
    # opset 19/21 kernels divide in float32 (8.50056 -> 9); precision=1 reproduces them
    assert run("QuantizeLinear", [x, s, z], [U8], opset=21)[0].item() == 9
    assert ops.quantize_linear(x, s, z, precision=1).item() == 9


@FEW
@given(seed=seeds)
def test_quantize_linear_float16(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(64) * rng.uniform(0.1, 100)).astype(np.float16)
    s, z = np.float16(rng.uniform(1e-2, 2)), U8(rng.integers(0, 256))
    np.testing.assert_array_equal(ops.quantize_linear(x, s, z), run("QuantizeLinear", [x, s, z], [U8], opset=25)[0])
    np.testing.assert_array_equal(ops.quantize_linear(x, s, z, precision=1),
                                  run("QuantizeLinear", [x, s, z], [U8], opset=21)[0])


@FEW
@given(seed=seeds)
def test_quantize_linear_float32_x_float16_scale(seed):
    """docs/deviations.md D5: the division is in y_scale's float16 (onnxruntime agrees; onnx.reference does not)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(64) * rng.uniform(0.1, 100)).astype(np.float32)
    s, z = np.float16(rng.uniform(1e-2, 2)), U8(rng.integers(0, 256))
    np.testing.assert_array_equal(ops.quantize_linear(x, s, z), run("QuantizeLinear", [x, s, z], [U8], opset=25)[0])


@FEW
@given(seed=seeds, zdt=st.sampled_from([U8, S8, np.uint16, np.int16, np.int32]), per_axis=st.booleans())
def test_dequantize_linear(seed, zdt, per_axis):
    rng = np.random.default_rng(seed)
    x = ints(rng, zdt, (4, 5), extreme=seed % 3 == 0)
    if per_axis:
        s, z, attrs = rng.uniform(1e-3, 2, 5).astype(np.float32), ints(rng, zdt, 5), {"axis": 1}
    else:
        s, z, attrs = np.float32(rng.uniform(1e-3, 2)), ints(rng, zdt, ()), {}
    if zdt is np.int32:
        z = np.zeros_like(z)
    got = ops.dequantize_linear(x, s, z, **attrs)
    want = run("DequantizeLinear", [x, s, z], [np.float32], opset=21, **attrs)[0]
    np.testing.assert_array_equal(got, want)


@FEW
@given(seed=seeds, shape=st.sampled_from([(1,), (7,), (3, 5), (2, 3, 4)]), kind=st.sampled_from(["any", "pos", "neg"]))
def test_dynamic_quantize_linear(seed, shape, kind):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3)).astype(np.float32)
    x = np.abs(x) if kind == "pos" else -np.abs(x) if kind == "neg" else x
    got = ops.dynamic_quantize_linear(x)
    want = run("DynamicQuantizeLinear", [x], [U8, np.float32, U8], opset=11)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_dynamic_quantize_linear_all_zero_deviation():
    """docs/deviations.md D8: all-zero x, where the spec's y_scale is 0 / 255: refcomp and onnx.reference
    give 1/255, onnxruntime 1.0; the codes and the zero point agree."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    x = np.zeros((2, 3), np.float32)
    x[0, 1] = -0.0
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info(n, t, None)
                               for n, t in (("y", TensorProto.UINT8), ("s", TensorProto.FLOAT), ("z", TensorProto.UINT8))])
    reference = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])).run(None, {"x": x})
    ort = run("DynamicQuantizeLinear", [x], [U8, np.float32, U8], opset=11)
    for backend in ("numpy", "auto"):
        y, s, z = ops.dynamic_quantize_linear(x, backend=backend)
        assert s.dtype == np.float32 and s == np.float32(1) / np.float32(255)
        assert s == reference[1]
        for got, want in ((y, ort[0]), (z, ort[2]), (y, reference[0]), (z, reference[2])):
            np.testing.assert_array_equal(got, want)
            assert not want.any()
    assert ort[1] == np.float32(1.0)


# ---------------------------------------------------------------- QLinearMatMul, ConvInteger, QLinearConv

# the type combinations onnxruntime's CPU provider implements (a, b, y)
QTYPES = [(U8, U8, U8), (U8, S8, U8), (S8, S8, S8)]


@FEW
@given(seed=seeds, types=st.sampled_from(QTYPES), m=st.integers(1, 6), k=st.integers(1, 64), n=st.integers(1, 6),
       per_column=st.booleans(), extreme=st.booleans())
def test_qlinear_matmul(seed, types, m, k, n, per_column, extreme):
    adt, bdt, ydt = types
    extreme = extreme and (types != (U8, S8, U8) or U8S8_EXACT_HERE)
    rng = np.random.default_rng(seed)
    a = ints(rng, adt, (m, k), extreme)
    b = s8_operand(rng, (k, n), extreme, adt is U8) if bdt is S8 else ints(rng, bdt, (k, n), extreme)
    sb = rng.uniform(1e-3, 1, n).astype(np.float32) if per_column else np.float32(rng.uniform(1e-3, 1))
    bz = ints(rng, bdt, np.shape(sb)) if bdt is U8 else np.zeros(np.shape(sb), bdt)
    args = [a, np.float32(rng.uniform(1e-3, 1)), ints(rng, adt, ()), b, sb, bz,
            np.float32(rng.uniform(1e-2, 50)), ints(rng, ydt, ())]
    got = ops.qlinear_matmul(*args, backend="numpy")
    want = run("QLinearMatMul", args, [ydt], opset=21)[0]
    np.testing.assert_array_equal(got, want)


def test_qlinear_matmul_float32_product():
    """docs/deviations.md, D3: the requantization product is float32 (onnxruntime); onnx.reference uses float64."""
    # b <= 64 keeps every int16 pair of a non-VNNI kernel exact (see S8_PAIR_SAFE), so the
    # only difference left to see is the product's rounding
    K = 73
    a = np.full((1, K), 255, U8)
    b = np.full((K, 1), S8_PAIR_SAFE, S8)
    rem = 1163191 - 255 * S8_PAIR_SAFE * (K - 2)
    b[-2, 0], r = divmod(rem, 255)
    a[0, -1], b[-1, 0] = r, 1
    assert ops.matmul_integer(a, b).item() == 1163191
    M = np.float32(6.4907654e-05)
    args = [a, np.float32(1), U8(0), b, M, S8(0), np.float32(1), U8(0)]
    assert np.float32(np.float32(1163191) * M) == 75.5  # float32 product: a tie -> 76 (even)
    assert ops.qlinear_matmul(*args).item() == 76
    assert run("QLinearMatMul", args, [U8], opset=21)[0].item() == 76


def _conv_case(rng, n_spatial, group):
    c_per, m_per = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    C, M = c_per * group, m_per * group
    spatial = tuple(int(d) for d in rng.integers(3, 7, n_spatial))
    kernel = tuple(int(d) for d in rng.integers(1, 4, n_spatial))
    attrs = {"group": group, "strides": [int(s) for s in rng.integers(1, 3, n_spatial)],
             "dilations": [int(d) for d in rng.integers(1, 3, n_spatial)]}
    mode = rng.choice(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if mode == "NOTSET":
        attrs["pads"] = [int(p) for p in rng.integers(0, 3, 2 * n_spatial)]
    else:
        attrs["auto_pad"] = str(mode)
        if mode.startswith("SAME"):  # onnxruntime: "Dilation not supported for SAME_UPPER/SAME_LOWER"
            attrs["dilations"] = [1] * n_spatial
    # keep the output non-empty
    for i in range(n_spatial):
        k_eff = (kernel[i] - 1) * attrs["dilations"][i] + 1
        if k_eff > spatial[i]:
            attrs["dilations"][i] = 1
    return (2, C) + spatial, (M, c_per) + kernel, attrs


@FEW
@given(seed=seeds, n_spatial=st.sampled_from([1, 2, 3]), group=st.sampled_from([1, 2]),
       types=st.sampled_from([(U8, U8), (U8, S8), (S8, S8), (S8, U8)]), extreme=st.booleans())
def test_conv_integer(seed, n_spatial, group, types, extreme):
    extreme = extreme and (types[0] is types[1] or U8S8_EXACT_HERE)
    rng = np.random.default_rng(seed)
    xs, ws, attrs = _conv_case(rng, n_spatial, group)
    mixed = types[0] is not types[1]  # u8 x s8 either way round: onnxruntime swaps the operands
    x = s8_operand(rng, xs, extreme, mixed) if types[0] is S8 else ints(rng, types[0], xs, extreme)
    w = s8_operand(rng, ws, extreme, mixed) if types[1] is S8 else ints(rng, types[1], ws, extreme)
    xz = s8_operand(rng, (), False, mixed) if types[0] is S8 else ints(rng, types[0], ())
    wz = s8_operand(rng, (), False, mixed) if types[1] is S8 else ints(rng, types[1], ())
    got = ops.conv_integer(x, w, xz, wz, **attrs)
    want = run("ConvInteger", [x, w, xz, wz], [np.int32], opset=10, **attrs)[0]
    np.testing.assert_array_equal(got, want)


@FEW
@given(seed=seeds, n_spatial=st.sampled_from([1, 2]), group=st.sampled_from([1, 2]), types=st.sampled_from(QTYPES),
       per_channel=st.booleans(), bias=st.booleans(), extreme=st.booleans())
def test_qlinear_conv(seed, n_spatial, group, types, per_channel, bias, extreme):
    xdt, wdt, ydt = types
    extreme = extreme and (types != (U8, S8, U8) or U8S8_EXACT_HERE)
    rng = np.random.default_rng(seed)
    xs, ws, attrs = _conv_case(rng, n_spatial, group)
    M = ws[0]
    x = ints(rng, xdt, xs, extreme)
    w = s8_operand(rng, ws, extreme, xdt is U8) if wdt is S8 else ints(rng, wdt, ws, extreme)
    sw = rng.uniform(1e-3, 0.1, M).astype(np.float32) if per_channel else np.float32(rng.uniform(1e-3, 0.1))
    wz = np.zeros(np.shape(sw), wdt)  # onnxruntime requires symmetric int8 weights
    if wdt is U8:
        wz = ints(rng, wdt, ())
        sw = np.float32(np.ravel(sw)[0])
    B = rng.integers(-5000, 5000, M).astype(np.int32) if bias else None
    args = [x, np.float32(rng.uniform(1e-3, 0.1)), ints(rng, xdt, ()), w, sw, wz,
            np.float32(rng.uniform(1e-3, 0.5)), ints(rng, ydt, ())]
    got = ops.qlinear_conv(*args, B, **attrs)
    want = run("QLinearConv", args + ([B] if bias else []), [ydt], opset=10, **attrs)[0]
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- float8 e4m3fn outputs
# (onnxruntime's Python binding returns only e4m3fn among the float8 types, as raw bytes)


@FEW
@given(seed=seeds, saturate=st.sampled_from([0, 1]))
def test_quantize_linear_float8_e4m3fn(seed, saturate):
    import ml_dtypes

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(64) * rng.uniform(0.1, 1000)).astype(np.float32)
    x[:4] = [np.inf, -np.inf, np.nan, 0.0]
    s = np.float32(rng.uniform(1e-2, 2))
    got = ops.quantize_linear(x, s, output_dtype=17, saturate=saturate).view(np.uint8)
    want = run("QuantizeLinear", [x, s], [ml_dtypes.float8_e4m3fn], opset=21, output_dtype=17,
               saturate=saturate)[0].view(np.uint8)
    if not saturate:  # D4: onnxruntime maps 480 <= |x / s| < 496 to ±448 instead of NaN
        r = np.abs(x / s)
        keep = ~((r >= 480) & (r < 496))
        got, want = got[keep], want[keep]
    np.testing.assert_array_equal(got, want)


def test_float8_e4m3fn_non_saturating_overflow_deviation():
    """docs/deviations.md, D4."""
    import ml_dtypes

    x = np.array([464.0, 465.0, 480.0, 495.75, 496.0], np.float32)
    ours = ops.quantize_linear(x, np.float32(1), output_dtype=17, saturate=0).view(np.uint8)
    theirs = run("QuantizeLinear", [x, np.float32(1)], [ml_dtypes.float8_e4m3fn], opset=21, output_dtype=17,
                 saturate=0)[0].view(np.uint8)
    np.testing.assert_array_equal(ours, [0x7E, 0x7F, 0x7F, 0x7F, 0x7F])  # 448, then NaN (ONNX Cast table)
    np.testing.assert_array_equal(theirs, [0x7E, 0x7F, 0x7E, 0x7E, 0x7F])
