"""RTN and GPTQ: the grid, GPTQ = RTN on an identity Hessian, GPTQ = explicit OBS, GPTQ beats RTN."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.quantize import HessianAccumulator, gptq_quantize, hessian_from_inputs, rtn_quantize
from refcomp.compress.quantize.gptq import check_hessian, drop_dead_inputs
from refcomp.compress.quantize.grid import code_range, grid_qparams, round_to_grid
from refcomp.errors import ShapeError, ValidationError
from refcomp.formats import QTensor

from .cases import _weights, grids

# --- GPTQ ---------------------------------------------------------------------


@settings(max_examples=40)
@given(grids, st.booleans(), st.sampled_from([1, 5, 128]))
def test_gptq_on_identity_hessian_without_dampening_is_rtn(case, act_order, block):
    out, n_in, bits, gs, sym, seed = case
    w = _weights(out, n_in, seed)
    q_rtn = rtn_quantize(w, bits=bits, group_size=gs, symmetric=sym)
    q_gptq = gptq_quantize(w, np.eye(n_in), bits=bits, group_size=gs, symmetric=sym, percdamp=0.0,
                           block_size=block, act_order=act_order)
    assert isinstance(q_gptq, QTensor)
    np.testing.assert_array_equal(q_gptq.data, q_rtn.data)
    assert q_gptq.qparams == q_rtn.qparams  # scales, zero points, dtype, layout and code range


def _correlated_inputs(n, d, seed):
    """Inputs with a few strong shared directions plus noise, like the activations of a trained layer."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8)) @ rng.standard_normal((8, d))
    return latent + 0.3 * rng.standard_normal((n, d)) + rng.uniform(-1, 1, size=d)


def _obs_reference(w, h, *, bits, group_size, symmetric, percdamp):
    """GPTQ written as the plain OBS recursion (eq. 5): explicit H_F⁻¹, one column at a time, no Cholesky."""
    w = w.astype(np.float64).copy()
    h = h.copy()
    n = w.shape[1]
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += percdamp * np.mean(np.diag(h)) * np.eye(n)
    h_inv = np.linalg.inv(h)
    g = group_size or n
    qmin, qmax = code_range(bits, symmetric)
    codes = np.empty(w.shape, dtype=np.int64)
    for j in range(n):
        if j % g == 0:
            cols = w[:, j:j + g]
            qp = grid_qparams(cols.min(axis=1, keepdims=True), cols.max(axis=1, keepdims=True), bits, symmetric)
            s, z = qp.scale.astype(np.float64), qp.zero_point.astype(np.int64)
        codes[:, j] = round_to_grid(w[:, j], s, z, qmin, qmax)
        w_hat = (codes[:, j] - z) * s
        d = h_inv[j, j]
        w[:, j:] -= np.outer((w[:, j] - w_hat) / d, h_inv[j, j:])
        h_inv = h_inv - np.outer(h_inv[:, j], h_inv[j, :]) / d  # remove column j from the inverse
    return codes


@pytest.mark.parametrize("bits, group_size, symmetric", [(4, None, True), (3, 16, False), (2, 32, True)])
def test_gptq_equals_explicit_obs_recursion(bits, group_size, symmetric):
    x = _correlated_inputs(500, 48, seed=3)
    x[:, 5] = 0.0  # a dead input
    h = hessian_from_inputs(x)
    w = _weights(12, 48, 4)
    ref = _obs_reference(w, h, bits=bits, group_size=group_size, symmetric=symmetric, percdamp=0.01)
    for block in (1, 7, 128):
        q = gptq_quantize(w, h, bits=bits, group_size=group_size, symmetric=symmetric, block_size=block)
        np.testing.assert_array_equal(q.data.astype(np.int64), ref)


@pytest.mark.parametrize("bits, group_size, symmetric, act_order", [
    (4, None, True, False), (4, None, True, True), (4, 32, True, False), (4, 32, False, True),
    (3, 64, False, False), (8, None, True, False),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_gptq_output_error_is_lower_than_rtn(bits, group_size, symmetric, act_order, seed):
    x = _correlated_inputs(1024, 128, seed)
    w = _weights(64, 128, seed + 10)
    acc = HessianAccumulator(128)
    for batch in np.array_split(x, 4):  # accumulated over calibration batches
        acc.add(batch)
    q_g = gptq_quantize(w, acc.hessian(), bits=bits, group_size=group_size, symmetric=symmetric,
                        act_order=act_order)
    q_r = rtn_quantize(w, bits=bits, group_size=group_size, symmetric=symmetric)
    y = x @ w.T.astype(np.float64)
    err_g = np.linalg.norm(y - x @ q_g.to_dense().T.astype(np.float64))
    err_r = np.linalg.norm(y - x @ q_r.to_dense().T.astype(np.float64))
    assert err_g < 0.9 * err_r, (err_g, err_r)


def test_gptq_dead_inputs_give_zero_weights_and_hessian_scale_does_not_matter():
    x = _correlated_inputs(300, 20, 5)
    x[:, [0, 7]] = 0.0
    h = hessian_from_inputs(x)
    w = _weights(6, 20, 6)
    q = gptq_quantize(w, h, bits=4)
    assert np.all(q.to_dense()[:, [0, 7]] == 0)
    np.testing.assert_array_equal(gptq_quantize(w, 1000.0 * h, bits=4).data, q.data)


def test_hessian_accumulator_matches_one_shot_and_is_2xtx_over_n():
    x = np.random.default_rng(0).standard_normal((3, 10, 6))
    acc = HessianAccumulator(6)
    for xb in x:
        acc.add(xb)
    flat = x.reshape(-1, 6)
    np.testing.assert_allclose(acc.hessian(), 2 * flat.T @ flat / 30, rtol=1e-12)
    np.testing.assert_allclose(hessian_from_inputs(x), acc.hessian(), rtol=1e-12)
    assert acc.n_samples == 30


def test_gptq_rejects_bad_hessians():
    w = np.ones((2, 3))
    with pytest.raises(ShapeError, match="hessian"):
        gptq_quantize(w, np.eye(4))
    with pytest.raises(ValidationError, match="symmetric"):
        gptq_quantize(w, np.triu(np.ones((3, 3))))
    with pytest.raises(ValidationError, match="positive definite"):
        gptq_quantize(w, np.diag([1.0, 1.0, -5.0]), percdamp=0.0)
    with pytest.raises(ValidationError, match="percdamp"):
        gptq_quantize(w, np.eye(3), percdamp=-0.1)
    with pytest.raises(ValidationError, match="HessianAccumulator"):
        HessianAccumulator(3).hessian()
    # weights too wide for a float32 scale are named as the user's w, per group too
    for group_size in (None, 1):
        with pytest.raises(ValidationError, match=r"^w: .*float32 scale"):
            gptq_quantize(np.array([[1e39, 0.0]]), np.eye(2), bits=2, group_size=group_size)
    with pytest.raises(ShapeError, match="x"):
        HessianAccumulator(3).add(np.ones((4, 5)))


@settings(max_examples=25)
@given(grids, st.booleans())
def test_qtensor_is_the_grid_and_saves_bit_for_bit(case, use_gptq):
    """The grid is refcomp.quant.QParams (per-axis / ONNX per-block); the QTensor's fields round-trip it."""
    out, n_in, bits, gs, sym, seed = case
    w = _weights(out, n_in, seed)
    if use_gptq:
        q = gptq_quantize(w, hessian_from_inputs(_correlated_inputs(64, n_in, seed)), bits=bits, group_size=gs,
                          symmetric=sym)
    else:
        q = rtn_quantize(w, bits=bits, group_size=gs, symmetric=sym)
    g = min(gs or n_in, n_in)
    assert q.qparams.per_axis if g == n_in else (q.qparams.axis, q.qparams.block_size) == (1, g)
    # ŵ = s·(q − z) with the float32 scale, rounded once to float32
    s, z = q.qparams.expand(w.shape)
    w_hat = ((q.data.astype(np.int64) - z) * s.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(q.to_dense(), w_hat)
    back = QTensor.from_fields(q.fields())
    assert back.qparams == q.qparams and back.to_dense().tobytes() == q.to_dense().tobytes()
    # packed size: b-bit dtypes at b bits, 3-bit codes in int4 / uint4 at 4 bits
    width = {2: 2, 3: 4, 4: 4, 8: 8}[bits]
    n_scales = q.qparams.scale.size
    stores_z = bool(np.any(q.qparams.zero_point.astype(np.int64) != 0))
    assert q.nbytes == -(-w.size * width // 8) + 4 * n_scales + stores_z * -(-n_scales * width // 8)


def _problem(seed, out=5, n=24):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, n)) @ (rng.normal(size=(n, n)) / np.sqrt(n) + np.eye(n)) * np.exp(rng.normal(size=n))
    return rng.normal(size=(out, n)), hessian_from_inputs(x)


def test_act_order_is_gptq_on_the_columns_sorted_by_decreasing_hessian_diagonal():
    """act_order = plain GPTQ run on W[:, perm], H[perm, perm] with perm = argsort(−diag H) (stable),
    codes put back in the original order (per channel, where its static scale is the plain one)."""
    w, h = _problem(0)
    perm = np.argsort(-np.diag(h), kind="stable")
    got = gptq_quantize(w, h, bits=3, act_order=True)
    permuted = gptq_quantize(w[:, perm], h[np.ix_(perm, perm)], bits=3)
    expected = np.empty_like(permuted.data)
    expected[:, perm] = permuted.data
    np.testing.assert_array_equal(got.data, expected)
    assert not np.array_equal(got.data, gptq_quantize(w, h, bits=3).data)        # the order matters here


@pytest.mark.parametrize("group_size", [6, 8])
def test_groups_do_not_depend_on_the_lazy_block_size(group_size):
    """Eq. (7) is the same update as B = 1, and a group's scale is taken from its columns with every
    update so far applied, also when the group straddles two lazy blocks (_current_columns)."""
    w, h = _problem(1)
    ref = gptq_quantize(w, h, bits=4, group_size=group_size, block_size=1)
    for block in (4, 5, 7, 128):
        got = gptq_quantize(w, h, bits=4, group_size=group_size, block_size=block)
        np.testing.assert_array_equal(got.data, ref.data)
        np.testing.assert_allclose(got.qparams.scale, ref.qparams.scale, rtol=1e-6)


def test_defaults_are_symmetric_int4_and_the_accumulator_takes_any_leading_shape():
    w, h = _problem(2)
    default = gptq_quantize(w, h)
    explicit = gptq_quantize(w, h, bits=4, symmetric=True, percdamp=0.01, block_size=128, act_order=False)
    np.testing.assert_array_equal(default.data, explicit.data)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 7, 6))
    acc, flat = HessianAccumulator(6), HessianAccumulator(6)
    acc.add(x)
    flat.add(x.reshape(28, 6))
    np.testing.assert_array_equal(acc.hessian(), flat.hessian())
    one = HessianAccumulator(6)
    one.add(x[0, 0])                                   # a single input vector is one sample
    np.testing.assert_allclose(one.hessian(), 2 * np.outer(x[0, 0], x[0, 0]))


# --- inputs a caller gives: dtypes, ranks, copies, argument checks ---

def test_accumulator_widens_float32_inputs_before_the_product():
    x32 = np.random.default_rng(0).standard_normal((4000, 5)).astype(np.float32)
    x = x32.astype(np.float64)
    oracle = 2 * x.T @ x / len(x)
    acc = HessianAccumulator(5)
    acc.add(x32)
    np.testing.assert_allclose(acc.hessian(), oracle, rtol=1e-13)
    np.testing.assert_allclose(hessian_from_inputs(x32), oracle, rtol=1e-13)


def test_hessian_of_one_input_and_of_a_one_wide_layer():
    v = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(hessian_from_inputs(v), 2 * np.outer(v, v))   # one sample
    one = HessianAccumulator(1)
    one.add(np.array([[2.0], [4.0]]))
    np.testing.assert_allclose(one.hessian(), [[2 * (4 + 16) / 2]])
    with pytest.raises(ShapeError, match="x"):
        hessian_from_inputs(np.float64(1.0))
    for n_in in (0, -1):
        with pytest.raises(ValidationError, match="n_in"):
            HessianAccumulator(n_in)


def test_check_hessian_returns_a_float64_copy_and_scales_its_symmetry_tolerance():
    h32 = np.eye(3, dtype=np.float32)
    h = check_hessian(h32, 3, (2, 3))
    assert h.dtype == np.float64 and not np.shares_memory(h, h32)
    # the tolerance is 1e-10 of max |H|: rounding noise of a large H passes ...
    big = 1e6 * np.eye(3)
    big[0, 1] = 1e-6
    check_hessian(big, 3, (2, 3))
    # ... and a real asymmetry fails, even a small relative one (1e-6 of the entries)
    lop = np.eye(3) + 0.5
    lop[0, 1] *= 1 + 1e-6
    with pytest.raises(ValidationError, match="symmetric"):
        check_hessian(lop, 3, (2, 3))
    tiny = 1e-12 * lop                               # ... at any scale
    tiny[0, 1] *= 1.1
    with pytest.raises(ValidationError, match="symmetric"):
        check_hessian(tiny, 3, (2, 3))
    check_hessian(np.zeros((3, 3)), 3, (2, 3))      # H = 0 is symmetric
    for bad in (np.ones(9), np.ones((3, 3, 1))):
        with pytest.raises(ShapeError, match="hessian"):
            check_hessian(bad, 3, (2, 3))


def test_drop_dead_inputs_sets_their_weights_to_zero_and_diagonal_to_one():
    h = np.diag([2.0, 0.0, 3.0])
    w = np.ones((2, 3))
    drop_dead_inputs(w, h)
    np.testing.assert_array_equal(np.diag(h), [2.0, 1.0, 3.0])   # as in the authors' code
    np.testing.assert_array_equal(w, [[1, 0, 1], [1, 0, 1]])


def test_gptq_leaves_the_callers_arrays_alone_and_checks_its_arguments():
    w, h = _problem(4)
    h[:, 3] = h[3, :] = 0.0                          # a dead input: GPTQ zeroes its weights in its copy
    w0, h0 = w.copy(), h.copy()
    gptq_quantize(w, h, bits=4)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(h, h0)
    for bad in (np.ones(3), np.ones((2, 3, 1))):
        with pytest.raises(ShapeError, match="w"):
            gptq_quantize(bad, np.eye(3))
    for block in (0, -1):
        with pytest.raises(ValidationError, match="block_size"):
            gptq_quantize(w, h, block_size=block)


def test_float32_weights_are_updated_in_float64():
    """The error updates (6)-(7) run in float64 whatever w's dtype: float32 weights give the codes
    and group scales of their exact float64 values."""
    w, h = _problem(5, out=16, n=64)
    w32 = w.astype(np.float32)
    got = gptq_quantize(w32, h, bits=4, group_size=8)
    ref = gptq_quantize(w32.astype(np.float64), h, bits=4, group_size=8)
    np.testing.assert_array_equal(got.data, ref.data)
    np.testing.assert_array_equal(got.qparams.scale, ref.qparams.scale)


def test_act_order_keeps_the_natural_order_among_equal_hessian_diagonals():
    """Ties in diag H keep their column order (stable sort): diag H = 2, 1, 2, 1 ... processes the
    even columns, then the odd ones, each in increasing order."""
    rng = np.random.default_rng(6)
    n = 20
    a = rng.standard_normal((n, n))
    c = a @ a.T / n
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)                                   # a correlation matrix, diag 1
    scale = np.sqrt(np.tile([2.0, 1.0], n // 2))
    h = c * np.outer(scale, scale)
    h = (h + h.T) / 2
    np.fill_diagonal(h, np.tile([2.0, 1.0], n // 2))
    w = rng.standard_normal((8, n))
    perm = np.r_[0:n:2, 1:n:2]
    permuted = gptq_quantize(w[:, perm], h[np.ix_(perm, perm)], bits=3)
    expected = np.empty_like(permuted.data)
    expected[:, perm] = permuted.data
    np.testing.assert_array_equal(gptq_quantize(w, h, bits=3, act_order=True).data, expected)
