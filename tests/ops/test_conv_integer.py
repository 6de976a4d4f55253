"""conv_integer against a direct loop written from the ONNX definition (eq. CI1)."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
