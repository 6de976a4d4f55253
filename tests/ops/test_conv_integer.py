"""conv_integer against a direct loop written from the ONNX definition (eq. CI1), its int32 range and its refusals."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.errors import DTypeError, OverflowRiskError, ShapeError
from refcomp.ops import conv_integer
from refcomp.ops._conv_geometry import geometry

U8, S8 = np.uint8, np.int8
seeds = st.integers(0, 2**32 - 1)


def direct_conv(x, w, xz, wz, g, group):
    """One output at a time: y[b, m, o] = sum_c sum_j (x[o*s + j*d - pad] - xz) * (w[m, c, j] - wz[m]).

    Out-of-bounds input positions are padding and hold x_zp (contribute 0).
    """
    N, C = x.shape[:2]
    M, Cg = w.shape[:2]
    wz = np.broadcast_to(np.asarray(wz, np.int64).reshape(-1), (M,))
    y = np.zeros((N, M) + g.out, np.int64)
    for b, m in itertools.product(range(N), range(M)):
        grp = m // (M // group)
        for o in itertools.product(*(range(n) for n in g.out)):
            acc = 0
            for c in range(Cg):
                for j in itertools.product(*(range(k) for k in g.kernel)):
                    pos = [oi * s + ji * d - p for oi, ji, s, d, p in zip(o, j, g.strides, g.dilations, g.pads_begin)]
                    if all(0 <= p_ < D for p_, D in zip(pos, x.shape[2:])):
                        xv = int(x[(b, grp * Cg + c) + tuple(pos)]) - int(xz)
                    else:
                        xv = 0
                    acc += xv * (int(w[(m, c) + j]) - int(wz[m]))
            y[(b, m) + o] = acc
    return y


@settings(max_examples=40)
@given(seed=seeds, n_spatial=st.sampled_from([1, 2, 3]), group=st.sampled_from([1, 2, 3]),
       auto_pad=st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]),
       types=st.sampled_from([(U8, S8), (S8, S8), (U8, U8), (S8, U8)]), per_channel=st.booleans())
def test_conv_integer_equals_direct_loop(seed, n_spatial, group, auto_pad, types, per_channel):
    rng = np.random.default_rng(seed)
    C, M = group * int(rng.integers(1, 3)), group * int(rng.integers(1, 3))
    spatial = tuple(int(d) for d in rng.integers(3, 6 if n_spatial < 3 else 4, n_spatial))
    kernel = tuple(int(k) for k in rng.integers(1, 4, n_spatial))
    dil = [int(d) for d in rng.integers(1, 3, n_spatial)]
    dil = [d if (k - 1) * d + 1 <= D else 1 for d, k, D in zip(dil, kernel, spatial)]
    attrs = dict(group=group, strides=[int(s) for s in rng.integers(1, 3, n_spatial)], dilations=dil,
                 auto_pad=auto_pad, kernel_shape=list(kernel))
    if auto_pad == "NOTSET":
        attrs["pads"] = [int(p) for p in rng.integers(0, 3, 2 * n_spatial)]
    x = rng.integers(np.iinfo(types[0]).min, np.iinfo(types[0]).max + 1, (2, C) + spatial).astype(types[0])
    w = rng.integers(np.iinfo(types[1]).min, np.iinfo(types[1]).max + 1, (M, C // group) + kernel).astype(types[1])
    xz = types[0](rng.integers(np.iinfo(types[0]).min, np.iinfo(types[0]).max + 1))
    wz = rng.integers(np.iinfo(types[1]).min, np.iinfo(types[1]).max + 1, (M,) if per_channel else ()).astype(types[1])
    y = conv_integer(x, w, xz, wz, **attrs)
    g = geometry(x.shape, w.shape, **{k: v for k, v in attrs.items() if k != "group"})
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, direct_conv(x, w, xz, wz, g, group))


def test_same_padding_geometry():
    # D = 5, k = 3, s = 2: O = ceil(5/2) = 3, P = (3-1)*2 + 3 - 5 = 2 -> (1, 1)
    g = geometry((1, 1, 5), (1, 1, 3), auto_pad="SAME_UPPER", strides=[2])
    assert g.out == (3,) and (g.pads_begin, g.pads_end) == ((1,), (1,))
    # D = 4, k = 2, s = 1: P = 1 -> SAME_UPPER (0, 1), SAME_LOWER (1, 0)
    assert geometry((1, 1, 4), (1, 1, 2), auto_pad="SAME_UPPER").pads_end == (1,)
    assert geometry((1, 1, 4), (1, 1, 2), auto_pad="SAME_LOWER").pads_begin == (1,)
    assert geometry((1, 1, 4), (1, 1, 2), auto_pad="VALID").out == (3,)


def test_missing_zero_points_are_zero():
    rng = np.random.default_rng(4)
    x, w = rng.integers(0, 256, (2, 2, 5)).astype(U8), rng.integers(-128, 128, (3, 2, 2)).astype(S8)
    g = geometry(x.shape, w.shape)
    np.testing.assert_array_equal(conv_integer(x, w), direct_conv(x, w, 0, 0, g, 1))
    np.testing.assert_array_equal(conv_integer(x, w, U8(7)), direct_conv(x, w, 7, 0, g, 1))
    np.testing.assert_array_equal(conv_integer(x, w, None, S8(-3)), direct_conv(x, w, 0, -3, g, 1))


def _extreme_sum(last_x, last_w):
    """x, w (uint8, C = 33027 channels, kernel 1) whose one output is 33025 * 255 * 255 + 255 * 129 + last_x * last_w."""
    x = np.full((1, 33027, 1), 255, U8)
    w = np.full((1, 33027, 1), 255, U8)
    w[0, -2, 0], x[0, -1, 0], w[0, -1, 0] = 129, last_x, last_w
    return x, w


def test_the_int32_result_is_exact_up_to_both_ends_and_refused_beyond():
    # 33025 * 65025 + 255 * 129 + 127 = 2**31 - 1, the largest int32
    x, w = _extreme_sum(127, 1)
    assert conv_integer(x, w).tolist() == [[[2**31 - 1]]]
    x, w = _extreme_sum(127, 2)
    with pytest.raises(OverflowRiskError) as e:
        conv_integer(x, w)
    assert e.value.argument == "y" and e.value.got == 2**31 + 126
    # w - w_zp with w_zp = 255 negates every product: -(2**31 - 1) - 1 = -2**31 still fits, one less does not
    x, w = _extreme_sum(128, 1)
    assert conv_integer(x, 255 - w, None, U8(255)).tolist() == [[[-(2**31)]]]
    x, w = _extreme_sum(129, 1)
    with pytest.raises(OverflowRiskError) as e:
        conv_integer(x, 255 - w, None, U8(255))
    assert e.value.got == -(2**31) - 1


def test_the_value_reported_is_the_one_outside_int32():
    # two filters on the same input: 2**31 - 1 (fits) and -(2**31 + 1) (does not), then 2**31 (does not) and
    # a small one; w - w_zp with w_zp = 255 negates the second filter's products
    x, w0 = _extreme_sum(127, 1)
    w1 = np.full_like(w0, 255)
    w1[0, -2, 0], w1[0, -1, 0] = 4, 252  # 33025 * 65025 + 255 * 4 + 127 * 252 = 2**31 + 1
    with pytest.raises(OverflowRiskError) as e:
        conv_integer(x, np.concatenate([w0, 255 - w1]), None, np.array([0, 255], U8))
    assert e.value.got == -(2**31) - 1
    _, w2 = _extreme_sum(127, 2)
    with pytest.raises(OverflowRiskError) as e:
        conv_integer(x, np.concatenate([w2, np.zeros_like(w2)]), None, np.array([0, 1], U8))
    assert e.value.got == 2**31 + 126
    # 2**31 itself, the first value past the top, beside one past the bottom: the top one is reported
    w3 = np.full_like(w0, 255)
    w3[0, -2, 0], w3[0, -1, 0] = 3, 254  # 33025 * 65025 + 255 * 3 + 127 * 254 = 2**31
    for w, got in ((w3, 2**31), (np.concatenate([w3, 255 - w1]), 2**31)):
        with pytest.raises(OverflowRiskError) as e:
            conv_integer(x, w, None, np.array([0, 255][: w.shape[0]], U8))
        assert e.value.got == got


def test_an_empty_batch_gives_an_empty_int32_result():
    y = conv_integer(np.zeros((0, 2, 5), U8), np.zeros((3, 2, 2), S8), U8(1), S8(1))
    assert y.shape == (0, 3, 4) and y.dtype == np.int32


def test_bad_input_is_refused():
    x, w = np.zeros((1, 2, 5), U8), np.zeros((4, 2, 2), S8)

    def refused(error, name, **kw):
        args = {"x": x, "w": w, **kw}
        with pytest.raises(error) as e:
            conv_integer(**args)
        assert e.value.argument == name, str(e.value)

    refused(DTypeError, "x", x=x.astype(np.int16))
    refused(DTypeError, "w", w=w.astype(np.uint16))
    refused(ShapeError, "x", x=np.zeros((1, 5), U8), w=np.zeros((4, 2), S8))
    refused(ShapeError, "w", w=np.zeros((4, 2, 2, 1), S8))
    refused(ShapeError, "w", w=np.zeros((4, 1, 2), S8))  # C / group = 2 input channels per filter
    for g in (0, -2, 3):
        refused(ShapeError, "group", group=g)  # group >= 1 dividing C = 2 and M = 4
    refused(ShapeError, "group", x=np.zeros((1, 4, 5), U8), w=np.zeros((2, 1, 2), S8), group=4)  # M % 4
    refused(ShapeError, "group", x=np.zeros((1, 3, 5), U8), w=np.zeros((2, 1, 2), S8), group=2)  # C % 2
    refused(ShapeError, "kernel_shape", kernel_shape=[3])  # w's kernel is [2]
    refused(DTypeError, "x_zero_point", x_zero_point=S8(0))
    refused(ShapeError, "x_zero_point", x_zero_point=np.zeros(2, U8))
    refused(ShapeError, "x_zero_point", x_zero_point=np.zeros((1, 1), U8))
    refused(DTypeError, "w_zero_point", w_zero_point=U8(0))
    refused(ShapeError, "w_zero_point", w_zero_point=np.zeros(3, S8))
    refused(ShapeError, "w_zero_point", w_zero_point=np.zeros((1, 1), S8))
    refused(ShapeError, "w_zero_point", w=np.zeros((1, 2, 2), S8), w_zero_point=np.zeros((1, 1), S8))
    with pytest.raises(Exception, match="backend"):
        conv_integer(x, w, backend="no such backend")
    # [1]-shaped zero points are scalars; w_zero_point [M] is per output channel
    y = conv_integer(x, w, np.full(1, 2, U8), np.full(1, 3, S8))
    assert y.dtype == np.int32 and (y == 2 * 2 * (-2) * (-3)).all()
    y = conv_integer(x, w, U8(2), np.array([0, 1, 2, 3], S8))
    assert y[0, :, 0].tolist() == [0, 8, 16, 24]  # 4 taps of (0 - 2) * (0 - w_zp[m])
