"""SparseGPT (refcomp.compress.prune.sparsegpt) against the OBS update written out with explicit
inverses, and against magnitude pruning."""

import numpy as np
import pytest

from refcomp.compress.prune.sparsegpt import sparsegpt_model, sparsegpt_prune
from refcomp.errors import ShapeError, ValidationError


def _correlated(rng, n_rows, n_in, spread=0.0):
    """Inputs whose features are correlated, as a layer's inputs are (where OBS pays), with
    per-feature scales exp(N(0, spread²)) (a transformer's outlier channels: where |w| alone misleads)."""
    mix = rng.normal(size=(n_in, n_in)) / np.sqrt(n_in) + np.eye(n_in)
    return rng.normal(size=(n_rows, n_in)) @ mix * np.exp(spread * rng.normal(size=n_in))


def _hessian(x):
    return 2.0 * x.T @ x / len(x)


def _obs_oracle(w, h, keep, percdamp):
    """Column by column: prune column j, then move the columns after it by the OBS update
    δ_F = −(w_j − q_j) / [H_F⁻¹]_00 · (H_F⁻¹)_{0,:}, F = {j, ..., n−1}, with H_F⁻¹ inverted anew."""
    w = w.astype(np.float64).copy()
    h = h + percdamp * np.mean(np.diag(h)) * np.eye(len(h))
    n = w.shape[1]
    for j in range(n):
        h_inv = np.linalg.inv(h[j:, j:])
        q = np.where(keep[:, j], w[:, j], 0.0)
        w[:, j:] -= np.outer((w[:, j] - q) / h_inv[0, 0], h_inv[0, :])
        w[:, j] = q
    return w


@pytest.mark.parametrize("block_size", [1, 3, 5, 64])
def test_fixed_mask_equals_the_obs_update_written_out(block_size):
    rng = np.random.default_rng(0)
    x = _correlated(rng, 200, 11)
    w = rng.normal(size=(6, 11))
    keep = rng.random((6, 11)) > 0.5
    h = _hessian(x)
    got, got_keep = sparsegpt_prune(w, h, mask=keep, percdamp=0.01, block_size=block_size)
    np.testing.assert_array_equal(got_keep, keep)
    np.testing.assert_allclose(got, _obs_oracle(w, h, keep, 0.01), rtol=0, atol=1e-10)
    assert np.all(got[~keep] == 0.0)


def test_identity_hessian_is_magnitude_pruning_per_block():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 12)).astype(np.float32)
    got, keep = sparsegpt_prune(w, np.eye(12), sparsity=0.5, percdamp=0.0, block_size=4)
    assert got.dtype == np.float32
    for i1 in range(0, 12, 4):
        blk = np.abs(w[:, i1:i1 + 4]).ravel()
        kept = np.sort(blk)[-16:]
        np.testing.assert_array_equal(np.sort(np.abs(got[:, i1:i1 + 4][keep[:, i1:i1 + 4]])), kept)
    np.testing.assert_array_equal(got, np.where(keep, w, 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compensation_lowers_the_output_error_of_a_given_mask(seed):
    rng = np.random.default_rng(seed)
    x = _correlated(rng, 512, 32)
    w = rng.normal(size=(16, 32))
    keep = np.abs(w) >= np.median(np.abs(w))
    got, _ = sparsegpt_prune(w, _hessian(x), mask=keep)
    assert np.linalg.norm(x @ (w - got).T) < 0.97 * np.linalg.norm(x @ (w - np.where(keep, w, 0)).T)


@pytest.mark.parametrize("kind", [{"sparsity": 0.5}, {"n_m": (2, 4)}])
def test_lower_output_error_than_magnitude_pruning(kind):
    rng = np.random.default_rng(2)
    x = _correlated(rng, 512, 32, spread=1.0)
    w = rng.normal(size=(16, 32))
    got, keep = sparsegpt_prune(w, _hessian(x), percdamp=0.01, **kind)
    if "sparsity" in kind:
        mag_keep = np.abs(w) >= np.sort(np.abs(w).ravel())[w.size // 2]
    else:
        order = np.argsort(-np.abs(w).reshape(16, 8, 4), axis=2)
        mag_keep = np.zeros((16, 8, 4), dtype=bool)
        np.put_along_axis(mag_keep, order[:, :, :2], True, axis=2)
        mag_keep = mag_keep.reshape(16, 32)
    err = np.linalg.norm(x @ (w - got).T)
    err_magnitude = np.linalg.norm(x @ (w - np.where(mag_keep, w, 0)).T)
    assert err < 0.7 * err_magnitude, (err, err_magnitude)
    assert keep.sum() == mag_keep.sum() == w.size // 2


def test_n_m_pattern_holds_in_every_group():
    rng = np.random.default_rng(3)
    x = _correlated(rng, 300, 24)
    got, keep = sparsegpt_prune(rng.normal(size=(5, 24)), _hessian(x), n_m=(2, 4), block_size=6)
    assert np.all(keep.reshape(5, 6, 4).sum(axis=2) == 2)
    assert np.all(got[~keep] == 0)


def test_unstructured_sparsity_holds_in_every_block():
    rng = np.random.default_rng(4)
    x = _correlated(rng, 300, 40)
    _, keep = sparsegpt_prune(rng.normal(size=(10, 40)), _hessian(x), sparsity=0.3, block_size=16)
    for i1 in range(0, 40, 16):
        blk = keep[:, i1:i1 + 16]
        assert blk.size - blk.sum() == int(np.floor(0.3 * blk.size + 0.5))


def test_dead_input_is_pruned_without_harm():
    rng = np.random.default_rng(5)
    x = _correlated(rng, 200, 8)
    x[:, 3] = 0.0
    got, _ = sparsegpt_prune(rng.normal(size=(4, 8)), _hessian(x), mask=np.ones((4, 8), dtype=bool))
    assert np.all(got[:, 3] == 0)


def _u_diagonal(h, percdamp):
    """diag(U), U upper triangular with H⁻¹ = UᵀU, from an explicit inverse (numpy.linalg only)."""
    h = h + percdamp * np.mean(np.diag(h)) * np.eye(len(h))
    return np.diag(np.linalg.cholesky(np.linalg.inv(h)).T)


def test_masks_are_chosen_by_the_obs_saliency_written_out():
    """(S3): the first block's unstructured mask and the first group's N:M mask keep the largest
    w² / U_jj² (the columns not yet compensated there hold the original weights)."""
    rng = np.random.default_rng(6)
    x = _correlated(rng, 400, 12, spread=1.0)
    w = rng.normal(size=(5, 12))
    h = _hessian(x)
    d = _u_diagonal(h, 0.01)
    _, keep = sparsegpt_prune(w, h, sparsity=0.5, block_size=12)
    score = w ** 2 / d ** 2
    np.testing.assert_array_equal(keep, score >= np.sort(score.ravel())[30])
    _, keep24 = sparsegpt_prune(w, h, n_m=(2, 4))
    first = score[:, :4]
    np.testing.assert_array_equal(keep24[:, :4], first >= np.sort(first, axis=1)[:, [2]])


def test_defaults_are_the_papers_and_a_single_input_column_works():
    rng = np.random.default_rng(7)
    x = _correlated(rng, 200, 8)
    w, h = rng.normal(size=(4, 8)), _hessian(x)
    default, _ = sparsegpt_prune(w, h, sparsity=0.5)
    np.testing.assert_array_equal(default, sparsegpt_prune(w, h, sparsity=0.5, percdamp=0.01, block_size=128)[0])
    assert not np.array_equal(default, sparsegpt_prune(w, h, sparsity=0.5, percdamp=0.5)[0])
    one, keep = sparsegpt_prune(np.array([[1.0], [-2.0], [0.5]]), np.array([[2.0]]), sparsity=0.0)
    np.testing.assert_array_equal(one, [[1.0], [-2.0], [0.5]]) and keep.all()


@pytest.mark.parametrize("kwargs, error, name", [
    ({}, ValidationError, "sparsity"),
    ({"sparsity": 0.5, "n_m": (2, 4)}, ValidationError, "sparsity"),
    ({"sparsity": 1.0}, ValidationError, "sparsity"),
    ({"n_m": (2, 3)}, ShapeError, "w"),
    ({"n_m": (5, 4)}, ValidationError, "n_m"),
    ({"n_m": [2, 4]}, ValidationError, "n_m"),
    ({"mask": np.ones((4, 7), dtype=bool)}, ShapeError, "mask"),
    ({"sparsity": 0.5, "hessian": np.eye(7)}, ShapeError, "hessian"),
    ({"sparsity": 0.5, "hessian": np.triu(np.ones((8, 8)))}, ValidationError, "hessian"),
])
def test_bad_arguments_name_themselves(kwargs, error, name):
    with pytest.raises(error, match=f"^{name}"):
        sparsegpt_prune(np.ones((4, 8)), **{"hessian": np.eye(8), **kwargs})


def test_empty_weight_is_refused():
    with pytest.raises(ShapeError, match="w"):
        sparsegpt_prune(np.ones((0, 4)), np.eye(4), sparsity=0.5)


def test_sparsegpt_model_prunes_in_order_and_beats_magnitude():
    from refcomp.compress.prune import prune_model
    from refcomp.formats.dense import Dense

    from ..models_for_tests import small_mlp

    rng = np.random.default_rng(0)
    m = small_mlp(0, sizes=(16, 32, 16, 4))
    x = (rng.normal(size=(256, 16)) * np.exp(rng.normal(size=16))).astype(np.float32)
    pruned, report = sparsegpt_model(m, calibration_batches=[x[:128], x[128:]], layers=["fc0", "fc1"], sparsity=0.5)
    assert set(report) == {"fc0", "fc1"}
    assert all(r["sparsity"] == 0.5 for r in report.values())
    # report["fc0"]["output_mse"]: fc0's inputs are the model's, so it is the error on (≤ 4,096 of) them
    d = x[:128].astype(np.float64) @ (pruned["fc0"].weight.to_dense().astype(np.float64)
                                      - m["fc0"].weight.to_dense()).T
    np.testing.assert_allclose(report["fc0"]["output_mse"], np.mean(d * d), rtol=1e-5)
    for name in ("fc0", "fc1"):
        w = pruned[name].weight
        assert isinstance(w, Dense) and w.mask.mean() == 0.5 and np.all(w.data[~w.mask] == 0)
    assert isinstance(m["fc0"].weight, Dense) and m["fc0"].weight.mask is None        # the input is untouched
    mag, _ = prune_model(m, 0.5, layers=["fc0", "fc1"])
    err = lambda f: float(np.mean((f.forward(x) - m.forward(x)) ** 2))  # noqa: E731
    assert err(pruned) < 0.5 * err(mag), (err(pruned), err(mag))
    two_four, _ = sparsegpt_model(m, calibration_batches=[x], layers="fc1", n_m=(2, 4))
    assert np.all(two_four["fc1"].weight.mask.reshape(16, 8, 4).sum(axis=2) == 2)
    with pytest.raises(ValidationError, match="sparsity"):
        sparsegpt_model(m, calibration_batches=[x])
    with pytest.raises(ValidationError, match="layers"):
        sparsegpt_model(m, calibration_batches=[x], layers=["relu0"], sparsity=0.5)


def test_sparsegpt_model_defaults_to_every_layer_and_prunes_convolutions():
    from ..models_for_tests import small_cnn

    rng = np.random.default_rng(1)
    m = small_cnn(0, channels=(4, 8))
    x = rng.normal(size=(32, 1, 10, 10)).astype(np.float32)
    pruned, report = sparsegpt_model(m, calibration_batches=[x], sparsity=0.5)
    assert set(report) == {"conv1", "conv2", "fc"}
    conv = pruned["conv2"].weight
    assert conv.shape == m["conv2"].weight.shape and conv.mask.shape == conv.shape
    assert abs(conv.mask.mean() - 0.5) < 0.02
    from refcomp.nn import Conv2d, Sequential

    grouped = Sequential(("conv", Conv2d(2, 2, 3, groups=2, rng=rng)))
    with pytest.raises(ValidationError, match="groups"):
        sparsegpt_model(grouped, calibration_batches=[rng.normal(size=(2, 2, 5, 5)).astype(np.float32)],
                        sparsity=0.5)
