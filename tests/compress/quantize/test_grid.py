"""The grid of RTN and GPTQ against eqs. (1)-(3) written out here, and wrong grids this check catches."""

import numpy as np
import pytest
from hypothesis import given, settings

from refcomp.compress.quantize import rtn_quantize
from refcomp.compress.quantize.grid import (check_bits, check_group_size, code_range, grid_dtype, grid_qparams,
                                           round_to_grid)
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import QTensor
from refcomp.quant import QParams

from .cases import _weights, grids


def _reference_grid(w, bits, symmetric, group_size):
    """Scale (float32) and zero point (int64) per (row, group), eqs. (1)-(2) of grid.py, written out in float64."""
    w = np.asarray(w, dtype=np.float64)
    g = group_size or w.shape[1]
    scales, zeros = [], []
    for j in range(0, w.shape[1], g):
        cols = w[:, j:j + g]
        if symmetric:
            s = (np.max(np.abs(cols), axis=1) / (2 ** (bits - 1) - 1)).astype(np.float32)
            s[s == 0] = 1.0
            z = np.zeros(len(w), dtype=np.int64)
        else:
            lo = np.minimum(cols.min(axis=1), 0.0)                 # widened to contain 0
            hi = np.maximum(cols.max(axis=1), 0.0)
            s = ((hi - lo) / (2**bits - 1)).astype(np.float32)
            s[s == 0] = 1.0
            z = np.clip(np.rint(-lo / s.astype(np.float64)), 0, 2**bits - 1).astype(np.int64)  # half to even
        scales.append(s)
        zeros.append(z)
    return np.stack(scales, axis=1), np.stack(zeros, axis=1)


def _assert_on_the_grid(q, w, bits, symmetric, group_size):
    """q holds the codes of eq. (3) on the grids of eqs. (1)-(2); AssertionError otherwise."""
    s_ref, z_ref = _reference_grid(w, bits, symmetric, group_size)
    out = w.shape[0]
    np.testing.assert_array_equal(q.qparams.scale.reshape(out, -1), s_ref, err_msg="scale")
    np.testing.assert_array_equal(q.qparams.zero_point.astype(np.int64).reshape(out, -1), z_ref,
                                  err_msg="zero point")
    qmin, qmax = code_range(bits, symmetric)
    cols = np.arange(w.shape[1]) // (group_size or w.shape[1])
    want = np.clip(np.rint(w.astype(np.float64) / s_ref[:, cols].astype(np.float64)) + z_ref[:, cols], qmin, qmax)
    np.testing.assert_array_equal(q.data.astype(np.int64), want, err_msg="codes")


@settings(max_examples=60)
@given(grids)
def test_rtn_is_the_grid_of_eqs_1_to_3(case):
    out, n_in, bits, gs, sym, seed = case
    w = _weights(out, n_in, seed)
    _assert_on_the_grid(rtn_quantize(w, bits=bits, group_size=gs, symmetric=sym), w, bits, sym, gs)


def _planted(w, scale, zero_point, bits):
    """A QTensor with the given per-row grid (asymmetric, per channel) and the codes of eq. (3) on it."""
    dt = grid_dtype(bits, False)
    s = np.asarray(scale, dtype=np.float32)
    z = np.asarray(zero_point, dtype=np.int64)
    qmin, qmax = code_range(bits, False)
    codes = np.clip(np.rint(w / s[:, None].astype(np.float64)) + z[:, None], qmin, qmax)
    return QTensor(codes.astype(np.int64).astype(dt.np_dtype), QParams(s, z.astype(dt.np_dtype), dt, axis=0))


def test_zero_point_rounds_half_to_even_and_a_half_away_zero_point_is_caught():
    # 2 bits, asymmetric: [-2.5, 0.5] gives s = 3 / 3 = 1 and -lo / s = 2.5, a tie
    w = np.array([[-2.5, 0.5, 0.0], [-0.5, 2.5, 1.0]])   # second row: -lo / s = 0.5
    q = rtn_quantize(w, bits=2, symmetric=False)
    np.testing.assert_array_equal(q.qparams.zero_point.astype(np.int64), [2, 0])  # half to even: 2.5 -> 2, 0.5 -> 0
    _assert_on_the_grid(q, w, 2, False, None)
    assert np.all(q.to_dense()[:, 2][w[:, 2] == 0] == 0)  # 0 is a code
    half_away = _planted(w, [1.0, 1.0], [3, 1], 2)           # round half away from zero
    with pytest.raises(AssertionError, match="zero point"):
        _assert_on_the_grid(half_away, w, 2, False, None)


def test_range_is_widened_to_contain_zero_and_an_unwidened_grid_is_caught():
    # 4 bits, asymmetric, all weights in [2, 5]: lo = 0, so s = 5 / 15, z = 0 and 0 is exact
    w = np.array([[2.0, 5.0, 3.5]])
    q = rtn_quantize(w, bits=4, symmetric=False)
    assert q.qparams.scale[0] == np.float32(5.0 / 15) and int(q.qparams.zero_point[0]) == 0
    _assert_on_the_grid(q, w, 4, False, None)
    lo, hi = 2.0, 5.0                                        # not widened: s = 3 / 15, z = clip(-10) = 0
    unwidened = _planted(w, [(hi - lo) / 15], [0], 4)
    with pytest.raises(AssertionError, match="scale"):
        _assert_on_the_grid(unwidened, w, 4, False, None)


def test_widths_without_a_dtype_are_held_in_the_next_one():
    w = _weights(3, 40, 2)
    for bits, dtype in [(3, "int4"), (5, "int8"), (6, "int8"), (7, "int8")]:
        q = rtn_quantize(w, bits=bits)
        assert q.qparams.dtype.name == dtype
        assert (q.qparams.qmin, q.qparams.qmax) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        qa = rtn_quantize(w, bits=bits, symmetric=False)
        assert qa.qparams.dtype.name == "u" + dtype and (qa.qparams.qmin, qa.qparams.qmax) == (0, 2**bits - 1)
        _assert_on_the_grid(q, w, bits, True, None)
        _assert_on_the_grid(qa, w, bits, False, None)
    for bits in (2, 4, 8):  # a dtype of their own: the full range, no narrowing
        assert not rtn_quantize(w, bits=bits).qparams.narrowed


def test_grid_qparams_rejects_a_range_per_group_without_group_size():
    with pytest.raises(ShapeError, match="w_min"):
        grid_qparams(np.zeros((2, 3)), np.ones((2, 3)), 4, True)


@pytest.mark.parametrize("group_size", [None, 2])
def test_grid_qparams_rejects_ranges_of_two_shapes(group_size):
    # per row, a wider w_max would otherwise be cut silently to its first column
    with pytest.raises(ShapeError, match="w_max"):
        grid_qparams(np.zeros((2, 1)), np.ones((2, 2)), 4, True, group_size)


@pytest.mark.parametrize("bits", [1, 9])
def test_widths_outside_2_to_8_are_refused(bits):
    with pytest.raises(ValidationError) as e:
        check_bits(bits)
    assert e.value.argument == "bits"


def test_group_size_is_capped_at_the_row_and_a_weight_needs_a_column():
    assert check_group_size(None, 1) == 1 and check_group_size(1, 1) == 1 and check_group_size(64, 5) == 5
    assert check_group_size(3, 5) == 3
    with pytest.raises(ShapeError) as e:
        check_group_size(None, 0)
    assert e.value.argument == "w"
    with pytest.raises(ValidationError) as e:
        check_group_size(0, 5)
    assert e.value.argument == "group_size"


def test_round_to_grid_is_eq_3_in_int64_half_to_even():
    # w / s lands on ties: 0.5, 1.5, 2.5, -0.5, -2.5 round to even; then + z and clipped to [qmin, qmax]
    w = np.array([[0.25, 0.75, 1.25, -0.25, -1.25, 10.0, -10.0]])
    q = round_to_grid(w, np.float32(0.5), np.int8(1), -2, 3)
    assert q.dtype == np.int64
    np.testing.assert_array_equal(q, [[0 + 1, 2 + 1, 2 + 1, 0 + 1, -2 + 1, 3, -2]])
    # per-row scales and zero points broadcast over the columns
    q = round_to_grid(np.array([[1.0, -1.0], [3.0, 0.0]]), np.array([[0.5], [1.0]]), np.array([[0], [-1]]), -8, 7)
    np.testing.assert_array_equal(q, [[2, -2], [2, -1]])


def test_a_weight_without_a_finite_range_is_refused_by_its_own_name():
    # the ranges come from w: the error names w, not choose_qparams' min_val / max_val
    for w_min, w_max in [(np.array([[-np.inf]]), np.array([[1.0]])), (np.array([[-1.0]]), np.array([[np.inf]]))]:
        with pytest.raises(ValidationError) as e:
            grid_qparams(w_min, w_max, 4, False)
        assert e.value.argument == "w"


@pytest.mark.parametrize("symmetric", [True, False])
def test_only_a_narrowed_code_range_is_stored(symmetric):
    # 2, 4 and 8 bits fill their dtype: no qmin / qmax in the stored QParams (to_dict, the file layout);
    # 3 bits in int4 / uint4 store the b-bit range of eq. (3)
    w_min, w_max = np.array([[-1.0], [-0.5]]), np.array([[2.0], [0.25]])
    for bits in (2, 4, 8):
        d = grid_qparams(w_min, w_max, bits, symmetric).to_dict()
        assert "qmin" not in d and "qmax" not in d
    d = grid_qparams(w_min, w_max, 3, symmetric).to_dict()
    assert (d["qmin"], d["qmax"]) == ((-4, 3) if symmetric else (0, 7))
