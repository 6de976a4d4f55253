"""Masks persist through fine-tuning: weights, gradients and momentum stay zero."""

import numpy as np
import pytest

from refcomp.compress.prune import apply_mask, apply_masks, masked, unstructured_mask
from refcomp.errors import DTypeError, ShapeError, ValidationError


def test_apply_mask_in_place_and_nan_safe():
    a = np.array([[1.0, np.nan], [np.inf, 4.0]])
    mask = np.array([[True, False], [False, True]])
    out = apply_mask(a, mask)
    assert out is a
    np.testing.assert_array_equal(a, [[1.0, 0.0], [0.0, 4.0]])
    assert not np.signbit(a).any()


def test_masked_copy_leaves_input():
    a = np.ones((2, 2))
    b = masked(a, np.eye(2, dtype=bool))
    assert a.sum() == 4 and b.sum() == 2


def test_sgd_with_momentum_keeps_pruned_weights_zero():
    # a least-squares fit with momentum SGD; the trainer re-applies the mask to
    # gradient, momentum and weight after every step
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10))
    y = x @ rng.normal(size=10)
    w = rng.normal(size=10)
    mask = unstructured_mask(np.abs(w), 0.5)
    apply_mask(w, mask)
    v = rng.normal(size=10)  # stale momentum from before pruning: must not revive weights
    for _ in range(50):
        g = x.T @ (x @ w - y) / len(x)
        apply_masks(mask, g, v)
        v = 0.9 * v + g
        w -= 0.05 * v
        apply_masks(mask, w, g, v, None)
        assert (w[~mask] == 0).all() and (v[~mask] == 0).all()
    loss_end = np.mean((x @ w - y) ** 2)
    assert np.isfinite(loss_end)


def test_apply_mask_validation():
    with pytest.raises(ShapeError, match="mask"):
        apply_mask(np.ones((2, 3)), np.ones((3, 2), dtype=bool))
    with pytest.raises(DTypeError, match="mask"):
        apply_mask(np.ones(3), np.ones(3))
    with pytest.raises(DTypeError, match="array"):
        apply_mask([1.0, 2.0], np.ones(2, dtype=bool))
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValidationError, match="array"):
        apply_mask(ro, np.ones(3, dtype=bool))


def test_apply_masks_skips_a_missing_buffer_and_goes_on():
    # an optimizer without momentum passes None in the middle: the arrays after it are still masked
    mask = np.array([True, False, True])
    w, g = np.ones(3), np.full(3, 2.0)
    apply_masks(mask, None, w, None, g)
    np.testing.assert_array_equal(w, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(g, [2.0, 0.0, 2.0])
