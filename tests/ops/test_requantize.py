"""requantize: float (eq. R1) vs fixed point (eq. R2), quantize_multiplier, the gemmlowp primitives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import OverflowRiskError, ValidationError
from refcomp.ops import multiply_by_quantized_multiplier, quantize_multiplier, requantize
from refcomp.ops.requantize import rounding_divide_by_pot, saturating_rounding_doubling_high_mul

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=200)
@given(M=st.floats(2.0**-31, 2.0**20, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_reconstructs_within_2_pow_minus_31(M):
    m, shift = quantize_multiplier(M)
    m, shift = int(m), int(shift)
    assert 2**30 <= m <= I32_MAX
    rebuilt = m * 2.0 ** (shift - 31)
    assert abs(rebuilt - M) <= M * 2.0**-31


def test_quantize_multiplier_edges():
    assert tuple(map(int, quantize_multiplier(0.5))) == (2**30, 0)
    assert tuple(map(int, quantize_multiplier(1.0))) == (2**30, 1)
    # q just below 1 rounds up to 2**31: carried into the shift
    m, s = quantize_multiplier(np.nextafter(1.0, 0.0))
    assert (int(m), int(s)) == (2**30, 1)
    assert tuple(map(int, quantize_multiplier(2.0**-40))) == (0, 0)  # flushed
    m, s = quantize_multiplier(np.array([0.25, 3.0]))
    assert m.shape == s.shape == (2,) and m.dtype == np.int32


@settings(max_examples=200)
@given(a=st.integers(I32_MIN, I32_MAX), b=st.integers(I32_MIN, I32_MAX))
def test_srdhm_equals_its_definition(a, b):
    ab = a * b
    s = ab + (2**30 if ab >= 0 else 1 - 2**30)
    q = abs(s) >> 31  # truncate toward zero
    want = I32_MAX if a == b == I32_MIN else (q if s >= 0 else -q)
    assert int(saturating_rounding_doubling_high_mul(a, b)) == want


def test_srdhm_saturation_case():
    assert int(saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX
    assert int(saturating_rounding_doubling_high_mul(I32_MIN, I32_MAX)) == -I32_MAX


@settings(max_examples=200)
@given(x=st.integers(I32_MIN, I32_MAX), e=st.integers(0, 31))
def test_rounding_divide_by_pot_is_round_half_away(x, e):
    from fractions import Fraction

    q = Fraction(x, 2**e)
    fl = q.numerator // q.denominator
    frac = q - fl
    want = fl + (1 if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and x >= 0) else 0)
    assert int(rounding_divide_by_pot(x, e)) == want


@settings(max_examples=100)
@given(seed=seeds, M=st.floats(1e-6, 0.99), zp=st.integers(-128, 127))
def test_fixed_point_within_one_unit_of_float(seed, M, zp):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**24), 2**24, size=200).astype(np.int32)
    yf = requantize(acc, np.float32(M), np.int8(zp), output_dtype="int8", method="float").astype(int)
    yq = requantize(acc, np.float32(M), np.int8(zp), output_dtype="int8", method="fixed_point").astype(int)
    assert np.max(np.abs(yf - yq)) <= 1


def test_float_method_is_float32_round_half_even():
    acc = np.array([1, 3, 5, -1, -3, 7], np.int32)
    y = requantize(acc, np.float32(0.5), None, output_dtype="int8")  # 0.5, 1.5, 2.5 ... ties
    np.testing.assert_array_equal(y, [0, 2, 2, 0, -2, 4])
    yq = requantize(acc, np.float32(0.5), None, output_dtype="int8", method="fixed_point")
    # M = 0.5 is m = 2**30, shift 0: only SRDHM rounds, ties upward (gemmlowp's nudge)
    np.testing.assert_array_equal(yq, [1, 2, 3, 0, -1, 4])
    yq = requantize(acc, np.float32(0.25), None, output_dtype="int8", method="fixed_point")
    # M = 0.25 is m = 2**30, shift -1: SRDHM rounds acc/2, then RDivPOT rounds again
    # (gemmlowp's double rounding: 1 * 0.25 -> SRDHM 0.5 -> 1 -> RDivPOT 0.5 -> 1)
    np.testing.assert_array_equal(yq, [1, 1, 2, 0, -1, 2])


def test_saturation_and_per_axis():
    acc = np.array([[100000, -100000], [10, -10]], np.int32)
    y = requantize(acc, np.array([1.0, 0.5], np.float32), np.array([0, 3]), output_dtype="uint8", axis=1)
    np.testing.assert_array_equal(y, [[255, 0], [10, 0]])
    assert y.dtype == np.uint8
    y = requantize(acc, np.array([1.0, 0.5], np.float32), np.array([0, 3]), output_dtype="uint8", axis=1,
                   method="fixed_point")
    np.testing.assert_array_equal(y, [[255, 0], [10, 0]])


def test_left_shift_overflow_raises():
    with pytest.raises(OverflowRiskError, match="acc_int32"):
        multiply_by_quantized_multiplier(np.array([2**30], np.int32), 2**30, 2)
    assert int(multiply_by_quantized_multiplier(np.array([3], np.int32), 2**30, 2)[0]) == 6


def test_bad_arguments():
    acc = np.zeros(3, np.int32)
    with pytest.raises(ValidationError, match="multiplier_or_scale"):
        requantize(acc, np.float32(0), None, output_dtype="int8")
    with pytest.raises(ValidationError, match="multiplier_or_scale"):
        requantize(acc, np.float32(np.nan), None, output_dtype="int8")
    with pytest.raises(ValidationError, match="acc_int32"):
        requantize(acc.astype(np.int64), np.float32(1), None, output_dtype="int8")
    with pytest.raises(ValidationError, match="zero_point"):
        requantize(acc, np.float32(1), 300, output_dtype="uint8")
    with pytest.raises(ValidationError, match="output_dtype"):
        requantize(acc, np.float32(1), None, output_dtype="float8_e4m3fn")
    with pytest.raises(ValidationError, match="method"):
        requantize(acc, np.float32(1), None, output_dtype="int8", method="double")
    with pytest.raises(ValidationError, match="real_multiplier"):
        quantize_multiplier(-1.0)


def test_fast_kernel_contract(monkeypatch):
    """A registered kernel receives acc [M, N] int32 and per-column parameters [N] of the agreed dtypes."""
    import refcomp.backend

    seen = {}

    def fake_float(acc, mult, zp, qmin, qmax):
        seen["float"] = (acc.shape, mult.dtype, mult.shape, zp.dtype, zp.shape, qmin, qmax)
        return np.zeros(acc.shape, np.int32)

    def fake_fixed(acc, mult, shift, zp, qmin, qmax):
        seen["fixed"] = (mult.dtype, mult.shape, shift.dtype, shift.shape, zp.dtype, zp.shape, qmin, qmax)
        return np.zeros(acc.shape, np.int32)

    table = {"requantize_float": fake_float, "requantize_fixed_point": fake_fixed}
    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: table.get(op))
    acc = np.arange(12, dtype=np.int32).reshape(3, 4)
    requantize(acc, np.float32(0.1), np.int8(3), output_dtype="int8")
    assert seen["float"] == ((3, 4), np.float32, (4,), np.int32, (4,), -128, 127)
    requantize(acc, np.full(4, 0.1, np.float32), np.zeros(4, np.uint8), output_dtype="uint8", axis=1,
               method="fixed_point")
    assert seen["fixed"] == (np.int32, (4,), np.int32, (4,), np.int32, (4,), 0, 255)


def _ties_upward(ab):
    from fractions import Fraction

    q = Fraction(ab, 2**31) + Fraction(1, 2)
    return q.numerator // q.denominator                          # floor(ab / 2**31 + 1/2)


@pytest.mark.parametrize("a, b", [(2**30 + d, 1) for d in (-1, 0, 1)] + [(-(2**30) + d, 1) for d in (-1, 0, 1)]
                         + [(2**30 + d, 3) for d in (-1, 0, 1)] + [(-(2**30) + d, 3) for d in (-1, 0, 1)]
                         + [(0, 5), (1, -1), (-1, 1)])
def test_srdhm_at_and_beside_the_ties(a, b):
    """Random products almost never land on ±(k + 1/2)·2**31: the ties and their neighbours, against
    round-half-up written as a Fraction (gemmlowp's SaturatingRoundingDoublingHighMul)."""
    assert int(saturating_rounding_doubling_high_mul(a, b)) == _ties_upward(a * b)


#: x at ±(k + 1/2)·2**e and one beside, inside int32
POT_TIES = [(k * 2**e + half * 2 ** (e - 1) + d, e) for e in (1, 5, 30) for k in (-2, -1, 0, 1)
            for half in (-1, 1) for d in (-1, 0, 1) if I32_MIN <= k * 2**e + half * 2 ** (e - 1) + d <= I32_MAX]


@pytest.mark.parametrize("x, e", POT_TIES)
def test_rounding_divide_by_pot_at_and_beside_the_ties(x, e):
    from fractions import Fraction

    q = abs(Fraction(x, 2**e)) + Fraction(1, 2)
    want = (q.numerator // q.denominator) * (1 if x >= 0 else -1)    # half away from zero
    assert int(rounding_divide_by_pot(np.int32(x), e)) == want


def test_multiplier_and_shift_ranges_are_exactly_the_documented_ones():
    acc = np.array([0, 1, -1], np.int32)
    for m, s in ((0, 0), (I32_MAX, 0), (2**30, -31), (2**30, 30)):
        multiply_by_quantized_multiplier(acc, np.int32(m), np.int32(s))          # accepted
    for m, s, name in ((-1, 0, "multiplier"), (2**31, 0, "multiplier"), (2**30, -32, "shift"),
                       (2**30, 31, "shift")):
        with pytest.raises(ValidationError, match=name):
            multiply_by_quantized_multiplier(acc, np.int64(m), np.int64(s))
    assert tuple(map(int, quantize_multiplier(2.0**-32))) == (2**30, -31)      # the smallest kept
    assert tuple(map(int, quantize_multiplier(2.0**-33))) == (0, 0)            # flushed
    assert tuple(map(int, quantize_multiplier(1.5 * 2.0**29))) == (3 * 2**29, 30)
    for bad in (2.0**30, 0.0, -1.0, np.inf):
        with pytest.raises(ValidationError, match="real_multiplier"):
            quantize_multiplier(bad)


def _spy_kernels(monkeypatch) -> list:
    """Replace both requantization kernels by spies; the list they append "float" / "fixed" to."""
    import refcomp.backend

    calls = []

    def spy(name):
        def kernel(acc, *args):
            calls.append(name)
            return np.zeros(acc.shape, np.int32)
        return kernel

    table = {"requantize_float": spy("float"), "requantize_fixed_point": spy("fixed")}
    monkeypatch.setattr(refcomp.backend, "implementation", lambda op, backend=None: table.get(op))
    return calls


def test_the_fast_kernel_runs_exactly_when_its_contract_holds(monkeypatch):
    """2-D acc with per-tensor or per-column parameters goes to the kernel; per-row parameters, other
    ranks, empty arrays and fixed-point left shifts (which need the overflow check) stay in NumPy."""
    calls = _spy_kernels(monkeypatch)
    acc = np.arange(12, dtype=np.int32).reshape(3, 4)
    M3, M4 = np.full(3, 0.1, np.float32), np.full(4, 0.1, np.float32)
    cases = [  # (acc, multiplier, zero point, axis, method, expected kernel calls)
        (acc, np.float32(0.1), None, None, "float", ["float"]),
        (acc, M4, None, 1, "float", ["float"]),
        (acc, M4, None, -1, "float", ["float"]),
        (acc, M3, None, 0, "float", []),                       # per-row: not the kernel's layout
        (acc, np.float32(0.1), np.int8([1, 2, 3]), 0, "float", []),
        (acc.reshape(3, 2, 2), np.float32(0.1), None, None, "float", []),
        (acc[:0], np.float32(0.1), None, None, "float", []),
        (acc, np.float32(0.1), None, None, "fixed_point", ["fixed"]),
        (acc, np.float32(3.0), None, None, "fixed_point", []),  # shift > 0: NumPy checks the overflow
    ]
    for a, m, zp, axis, method, want in cases:
        calls.clear()
        requantize(a, m, zp, output_dtype="int8", axis=axis, method=method)
        assert calls == want, (a.shape, axis, method)


# --- the NumPy definitions themselves (the suite's other tests mostly reach the C / Numba twins) ---

def _r1_oracle(acc, M, zp, lo, hi):
    """eq. R1 written out: every step in float32, ties to even, then the zero point and the clip."""
    prod = np.float32(acc) * np.float32(M)
    return int(min(max(int(np.rint(prod)) + zp, lo), hi))


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_float_method_rounds_the_product_in_float32(backend):
    # 241303 * f32(0.005232...) is 1262.4999... in float32 and 1262.5000... in float64: a float64
    # product (or a float64 multiplier) would give 1263
    acc = np.array([[241303, 2**25 + 1]], np.int32)
    M = np.array([0.005232011221751278, 2.0**-26])
    for j in range(2):
        y = requantize(acc[:, j:j + 1], M[j], None, output_dtype="int16", backend=backend)
        assert int(y[0, 0]) == _r1_oracle(acc[0, j], M[j], 0, -(2**15), 2**15 - 1)
    assert int(requantize(acc[:, :1], M[0], None, output_dtype="int16", backend=backend)[0, 0]) == 1262
    assert int(requantize(acc[:, 1:], M[1], None, output_dtype="int16", backend=backend)[0, 0]) == 0


def test_float_method_saturates_an_infinite_product_without_a_warning():
    acc = np.array([[I32_MAX, I32_MIN]], np.int32)
    y = requantize(acc, np.float32(3e38), None, output_dtype="int8", backend="numpy")   # ±Inf, silently
    np.testing.assert_array_equal(y, [[127, -128]])


def test_fixed_point_with_a_given_multiplier_pair_on_the_numpy_path():
    acc = np.array([[3, -5, 100]], np.int32)
    m, s = quantize_multiplier(np.float64(1.5))                      # shift 1: NumPy's left shift
    for backend in ("numpy", "auto"):
        y = requantize(acc, (np.asarray(m), np.asarray(s)), None, output_dtype="int16", method="fixed_point",
                       backend=backend)
        np.testing.assert_array_equal(y, [[5, -7, 150]])            # acc·1.5, ties away from zero


def test_the_primitives_return_int32():
    assert saturating_rounding_doubling_high_mul(np.int64([5]), np.int64([2**30])).dtype == np.int32
    assert rounding_divide_by_pot(np.int64([5]), 1).dtype == np.int32
    assert multiply_by_quantized_multiplier(np.int32([5]), np.int32(2**30), np.int32(0)).dtype == np.int32


def test_quantize_multiplier_takes_integers_and_float32():
    assert tuple(map(int, quantize_multiplier(2))) == (2**30, 2)
    assert tuple(map(int, quantize_multiplier(np.float32(0.75)))) == (3 * 2**29, 0)


def test_dtype_checks_of_the_multiplier_pair_and_the_output():
    acc = np.zeros(3, np.int32)
    with pytest.raises(ValidationError, match="multiplier, shift"):
        multiply_by_quantized_multiplier(acc, np.float64(2**30), np.int32(0))    # one of the two not integer
    with pytest.raises(ValidationError, match="multiplier, shift"):
        multiply_by_quantized_multiplier(acc, np.int32(2**30), np.float64(0))
    # shift 31 is refused for what it is, not because acc · 2**31 overflows (acc is 0 here)
    with pytest.raises(ValidationError, match=r"shift.*\[-31, 30\]"):
        multiply_by_quantized_multiplier(np.zeros(2, np.int32), np.int32(2**30), np.int32(31))
    with pytest.raises(ValidationError, match="output_dtype"):
        requantize(acc, np.float32(1), None, output_dtype="int32")
    with pytest.raises(ValidationError, match="zero_point"):
        requantize(acc, np.float32(1), np.float32(0), output_dtype="int8")       # a float zero point


def test_int4_zero_points_are_integers():
    import ml_dtypes

    acc = np.array([[1, 20, -20]], np.int32)
    y = requantize(acc, np.float32(0.5), np.array(2, ml_dtypes.int4), output_dtype="int4")
    np.testing.assert_array_equal(y.astype(int), [[2, 7, -8]])


def test_shapes_of_the_parameters():
    y = requantize(np.array(7, np.int32), np.array([0.5], np.float32), np.array([1], np.int8), output_dtype="int8")
    assert y.shape == () and int(y) == 5                              # a 0-d acc stays 0-d
    with pytest.raises(ValidationError, match="multiplier_or_scale"):
        requantize(np.zeros((3, 2), np.int32), np.full((3, 1), 0.5, np.float32), None, output_dtype="int8", axis=0)


def test_backend_numpy_never_calls_a_kernel(monkeypatch):
    import refcomp.backend

    calls = []

    def spy(acc, *args, **kwargs):
        calls.append(acc.shape)
        return np.zeros(acc.shape, np.int32)

    for op in ("requantize_float", "requantize_fixed_point"):
        for name in ("c", "numba"):
            monkeypatch.setitem(refcomp.backend._registry, (op, name), spy)
    acc = np.arange(6, dtype=np.int32).reshape(2, 3)
    for method in ("float", "fixed_point"):
        y = requantize(acc, np.float32(0.5), None, output_dtype="int8", method=method, backend="numpy")
        assert calls == [] and y.any()
        requantize(acc, np.float32(0.5), None, output_dtype="int8", method=method, backend="auto")
        assert len(calls) == 1
        calls.clear()


def test_per_row_and_boundary_shifts_choose_the_path_by_the_contract(monkeypatch):
    """The cases beside test_the_fast_kernel_runs_exactly_when_its_contract_holds's: per-tensor along
    axis 0 is still the kernel's; per-row (axis 0 or -2) on a square acc is not; shift 0 is, shift 1 is not."""
    calls = _spy_kernels(monkeypatch)
    acc = np.arange(9, dtype=np.int32).reshape(3, 3)
    M3 = np.array([0.1, 0.2, 0.3], np.float32)
    cases = [
        (np.float32(0.1), None, 0, "float", ["float"]),
        (np.float32(0.1), None, 0, "fixed_point", ["fixed"]),
        (M3, None, 0, "float", []),
        (M3, None, -2, "float", []),
        (M3, None, 0, "fixed_point", []),
        (M3, None, -2, "fixed_point", []),
        (np.float32(0.1), np.int8([1, 2, 3]), 0, "fixed_point", []),
        (np.array([0.1, 0.2], np.float32), None, 0, "float", "2 rows"),
        (np.float32(0.1), np.int8([1, 2]), 0, "fixed_point", "2 rows"),
        (np.float32(0.75), None, None, "fixed_point", ["fixed"]),        # shift 0
        (np.float32(1.5), None, None, "fixed_point", []),                # shift 1
    ]
    for m, zp, axis, method, want in cases:
        calls.clear()
        a = acc[:2, :2] if want == "2 rows" else acc                     # two rows: per-row vectors of size 2
        requantize(a, m, zp, output_dtype="int8", axis=axis, method=method)
        assert calls == ([] if want == "2 rows" else want), (m, zp, axis, method)
