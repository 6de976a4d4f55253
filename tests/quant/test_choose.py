"""choose_qparams: the formulas of docs/quantization.md eqs. (4)-(9), checked on known values and properties."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, ShapeError, ValidationError
from refcomp.quant import QDTYPES, QParams, choose_qparams, dequantize, quant_range, quantize

INT_DTYPES = ["int2", "uint2", "int4", "uint4", "int8", "uint8", "int16", "uint16"]
FLOAT_DTYPES = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn"]


def test_asymmetric_uint8_known_values():
    qp = choose_qparams(-1.0, 2.0, "uint8")
    assert qp.scale == np.float32(3.0 / 255)
    assert int(qp.zero_point) == round(0 - (-1.0) / float(qp.scale))  # 85


def test_symmetric_known_values():
    assert choose_qparams(-1.0, 2.0, "int8", symmetric=True).scale == np.float32(2.0 / 127.5)
    qp = choose_qparams(-1.0, 2.0, "uint8", symmetric=True)
    assert int(qp.zero_point) == 128 and qp.scale == np.float32(2.0 / 127.5)
    qp = choose_qparams(-1.0, 2.0, "int8", symmetric=True, restricted_range=True)
    assert qp.scale == np.float32(2.0 / 127) and (qp.qmin, qp.qmax) == (-127, 127)


@pytest.mark.parametrize("dtype,restricted,reduce,expected", [
    ("int8", False, False, (-128, 127)),
    ("int8", True, False, (-127, 127)),
    ("int8", False, True, (-64, 63)),
    ("uint8", False, True, (0, 127)),
    ("int8", True, True, (-63, 63)),
    ("int4", True, False, (-7, 7)),
    ("uint16", False, True, (0, 32767)),
])
def test_quant_range(dtype, restricted, reduce, expected):
    assert quant_range(dtype, restricted_range=restricted, reduce_range=reduce) == expected


@pytest.mark.parametrize("dtype,bits,restricted,reduce,expected", [
    ("int8", 3, False, False, (-4, 3)),
    ("int4", 3, True, False, (-3, 3)),
    ("uint8", 5, False, False, (0, 31)),
    ("uint4", 3, False, False, (0, 7)),
    ("int8", 8, False, False, (-128, 127)),
    ("int8", 6, False, True, (-16, 15)),   # reduce_range drops one bit of the b
])
def test_quant_range_with_bits(dtype, bits, restricted, reduce, expected):
    assert quant_range(dtype, bits=bits, restricted_range=restricted, reduce_range=reduce) == expected


def test_bits_narrows_the_codes_inside_the_dtype():
    # 3-bit symmetric restricted codes -3..3 in int4: s = max|x| / 3, the range kept on the QParams
    qp = choose_qparams(-1.5, 3.0, "int4", symmetric=True, restricted_range=True, bits=3)
    assert qp.scale == np.float32(3.0 / 3) and (qp.qmin, qp.qmax) == (-3, 3) and int(qp.zero_point) == 0
    qp = choose_qparams(-1.0, 6.0, "uint8", bits=3)
    assert qp.scale == np.float32(7.0 / 7) and int(qp.zero_point) == 1 and (qp.qmin, qp.qmax) == (0, 7)
    assert not choose_qparams(-1.0, 6.0, "uint8", bits=8).narrowed


@pytest.mark.parametrize("dtype,bits", [("int4", 5), ("int8", 1), ("int8", 2.0), ("int8", True),
                                        ("float8_e4m3fn", 4)])
def test_bad_bits(dtype, bits):
    with pytest.raises(ValidationError) as info:
        quant_range(dtype, bits=bits)
    assert info.value.argument == "bits"


def test_range_is_extended_to_contain_zero():
    qp = choose_qparams(2.0, 5.0, "uint8")  # all positive: lo becomes 0
    assert int(qp.zero_point) == 0 and qp.scale == np.float32(5.0 / 255)
    qp = choose_qparams(-5.0, -2.0, "uint8")
    assert int(qp.zero_point) == 255


def test_all_zero_range_gives_scale_one():
    qp = choose_qparams(0.0, 0.0, "int8")
    assert qp.scale == 1.0
    assert quantize(np.zeros(3, np.float32), qp).tolist() == [int(qp.zero_point)] * 3


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_dtypes_map_amax_to_the_largest_finite(dtype):
    qp = choose_qparams(-3.0, 1.5, dtype)
    assert qp.scale == np.float32(3.0 / QDTYPES[dtype].qmax)
    assert float(qp.zero_point.astype(np.float32)) == 0.0


def test_float_dtypes_reject_integer_only_options():
    with pytest.raises(ValidationError) as info:
        choose_qparams(-1, 1, "float8_e4m3fn", restricted_range=True)
    assert info.value.argument == "restricted_range"


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=80)
@given(a=finite, b=finite, dtype=st.sampled_from(INT_DTYPES), symmetric=st.booleans(),
       restricted=st.booleans(), reduce=st.booleans())
def test_zero_is_exact_and_range_is_covered(a, b, dtype, symmetric, restricted, reduce):
    lo, hi = min(a, b), max(a, b)
    if reduce and QDTYPES[dtype].bits == 2:
        return
    qp = choose_qparams(lo, hi, dtype, symmetric=symmetric, restricted_range=restricted, reduce_range=reduce)
    assert qp.scale > 0
    # 0.0 quantizes to the zero point, and the zero point dequantizes to exactly 0.0
    zero = quantize(np.zeros(1, np.float32), qp)
    assert zero.astype(np.int64)[0] == int(qp.zero_point)
    assert dequantize(zero, qp)[0] == 0.0
    # the range is covered up to half a step (the zero point is an integer), and the
    # float32 rounding of the scale (relative 2^-24 of the range)
    rmin, rmax = qp.representable_range()
    tol = 0.5 * float(qp.scale) + 2**-22 * max(-lo, hi)
    assert rmin - tol <= lo and hi <= rmax + tol


@settings(max_examples=40)
@given(lo=st.lists(finite, min_size=1, max_size=6), dtype=st.sampled_from(INT_DTYPES + FLOAT_DTYPES),
       symmetric=st.booleans())
def test_per_axis_equals_per_tensor_per_channel(lo, dtype, symmetric):
    lo = np.array(lo)
    hi = lo + np.abs(lo[::-1]) + 1.0
    qp = choose_qparams(lo, hi, dtype, symmetric=symmetric, axis=0)
    for c in range(lo.size):
        one = choose_qparams(lo[c], hi[c], dtype, symmetric=symmetric)
        assert qp.scale[c] == one.scale
        assert qp.zero_point.astype(np.float64)[c] == one.zero_point.astype(np.float64)


@pytest.mark.parametrize("kwargs,exc,argument", [
    (dict(min_val=1.0, max_val=0.0), ValidationError, "min_val"),
    (dict(min_val=np.nan, max_val=0.0), ValidationError, "min_val"),
    (dict(min_val=0.0, max_val=np.inf), ValidationError, "max_val"),
    (dict(min_val=[0.0, 1.0], max_val=[1.0]), ShapeError, "max_val"),
    (dict(min_val=[0.0, 1.0], max_val=[1.0, 2.0]), ShapeError, "min_val"),  # per-tensor needs one value
    (dict(min_val=[], max_val=[], axis=0), ShapeError, "min_val"),
    (dict(min_val="x", max_val=1.0), DTypeError, "min_val"),
    (dict(min_val=0.0, max_val=1.0, dtype="int42"), DTypeError, "dtype"),
    (dict(min_val=0.0, max_val=1.0, symmetric=1), ValidationError, "symmetric"),
    (dict(min_val=0.0, max_val=1.0, dtype="int2", reduce_range=True), ValidationError, "reduce_range"),
])
def test_bad_input(kwargs, exc, argument):
    with pytest.raises(exc) as info:
        choose_qparams(**kwargs)
    assert info.value.argument == argument


# a range too wide for a float32 scale is refused, naming the bound to shrink (not the scale)
@pytest.mark.parametrize("lo,hi,dtype,symmetric,argument", [
    (0.0, 1e300, "int8", True, "max_val"),
    (1.0, 1e300, "uint8", False, "max_val"),
    (-1e300, 1.0, "uint8", False, "min_val"),
    (-1e308, 1e308, "uint8", False, "max_val"),     # hi - lo overflows float64 itself
    (-1e300, 0.0, "float8_e4m3fn", False, "min_val"),
    ([0.0, -1e300], [1.0, 2.0], "int8", True, "min_val"),
])
def test_range_beyond_a_float32_scale_names_the_bound(lo, hi, dtype, symmetric, argument):
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # no overflow warning on the way to the error
        with pytest.raises(ValidationError) as info:
            choose_qparams(lo, hi, dtype, symmetric=symmetric, axis=None if np.ndim(lo) == 0 else 0)
    assert info.value.argument == argument and "float32" in info.value.expected


def test_widest_range_with_a_float32_scale_is_accepted():
    # int8 symmetric: s = amax / 127.5; the largest float32 times 127.5 is still accepted
    big = float(np.finfo(np.float32).max)
    assert choose_qparams(-big * 127.5, 0.0, "int8", symmetric=True).scale == np.float32(big)


# defaults, the scheme's flags, the layouts and what the QParams carry
def test_defaults_are_int8_full_range():
    assert quant_range() == (-128, 127)
    qp = choose_qparams(-1.0, 2.0)
    assert qp.dtype.name == "int8" and not qp.narrowed and qp.axis is None


@pytest.mark.parametrize("dtype,bits,expected", [("int4", 2, (-2, 1)), ("uint8", 2, (0, 3))])
def test_two_bit_codes_are_the_narrowest_allowed(dtype, bits, expected):
    assert quant_range(dtype, bits=bits) == expected


@pytest.mark.parametrize("call,argument", [
    (lambda: quant_range("int8", restricted_range=1), "restricted_range"),
    (lambda: quant_range("int8", reduce_range="yes"), "reduce_range"),
    (lambda: choose_qparams(-1.0, 1.0, restricted_range=None), "restricted_range"),
    (lambda: quant_range("float8_e4m3fn", reduce_range=True), "reduce_range"),
    (lambda: quant_range("float8_e4m3fn", restricted_range=True), "restricted_range"),
])
def test_flags_are_booleans_named_in_errors(call, argument):
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.argument == argument


def test_min_above_max_reports_the_first_offending_pair():
    with pytest.raises(ValidationError) as info:
        choose_qparams([1.0, 2.0, 3.0], [1.0, 1.0, 0.0], axis=0)  # a tie at 0 is allowed; 1 is the first
    assert info.value.got == "min_val=2.0 > max_val=1.0"


@pytest.mark.parametrize("symmetric", [False, True])
def test_one_element_bounds_are_per_tensor(symmetric):
    assert choose_qparams([-1.0], [2.0], "uint8", symmetric=symmetric) == choose_qparams(-1.0, 2.0, "uint8",
                                                                                        symmetric=symmetric)


def test_per_block_layout_is_kept_and_each_block_is_per_tensor():
    rng = np.random.default_rng(0)
    lo = -rng.uniform(0, 3, size=(2, 3))
    hi = rng.uniform(0, 3, size=(2, 3))
    qp = choose_qparams(lo, hi, "uint8", axis=1, block_size=4)
    assert qp.per_block and (qp.axis, qp.block_size) == (1, 4) and qp.scale.shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        one = choose_qparams(lo[i, j], hi[i, j], "uint8")
        assert qp.scale[i, j] == one.scale and qp.zero_point[i, j] == one.zero_point


def test_only_a_narrowed_range_is_stored_on_the_qparams():
    # a full-range scheme serializes like a QParams built by hand (no redundant qmin / qmax)
    qp = choose_qparams(-1.0, 2.0, "uint8")
    assert qp.to_dict() == QParams(qp.scale, qp.zero_point, "uint8").to_dict()
    assert "qmin" not in qp.to_dict() and "qmin" not in choose_qparams(-1.0, 2.0, "float8_e4m3fn").to_dict()
    d = choose_qparams(-1.0, 2.0, "int8", restricted_range=True).to_dict()
    assert (d["qmin"], d["qmax"]) == (-127, 127)
