"""Mask construction: exact counts, N:M groups, blocks, structures, global scope."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp.compress.prune import (
    block_mask,
    channel_mask,
    global_masks,
    layerwise_masks,
    nm_mask,
    row_mask,
    sparsity_of,
    structure_norms,
    unstructured_mask,
)

# small integer-valued scores make ties frequent, which is what tie-breaking must survive
scores_2d = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                       elements=st.integers(0, 5).map(float))
ratios = st.floats(0.0, 0.999, exclude_max=False)


def _kept_beat_pruned(scores, mask):
    if mask.all() or not mask.any():
        return True
    return scores[mask].min() >= scores[~mask].max()


@settings(max_examples=60)
@given(scores_2d, ratios)
def test_unstructured_exact_count_and_threshold(scores, s):
    m = unstructured_mask(scores, s)
    pruned = scores.size - m.sum()
    assert abs(pruned - s * scores.size) <= 0.5
    assert _kept_beat_pruned(scores, m)


def test_unstructured_ties_keep_the_earlier_element():
    m = unstructured_mask(np.array([1.0, 1.0, 1.0, 1.0]), 0.5)
    np.testing.assert_array_equal(m, [True, True, False, False])


@settings(max_examples=60)
@given(st.integers(1, 8).flatmap(lambda m: st.tuples(st.integers(0, m), st.just(m))),
       st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans())
def test_nm_exactly_n_per_group(nm, rows, groups, seed, ties):
    n, m = nm
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(rows, groups * m)).astype(float) if ties else rng.random((rows, groups * m))
    mask = nm_mask(scores, n, m)
    per_group = mask.reshape(rows, groups, m)
    assert (per_group.sum(axis=-1) == n).all()
    g = scores.reshape(rows, groups, m)
    for r in range(rows):
        for j in range(groups):
            assert _kept_beat_pruned(g[r, j], per_group[r, j])


def test_nm_conv_groups_along_input_channels():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 8, 2, 2))
    mask = nm_mask(np.abs(w), 2, 4, axis=1)
    # for every (filter, kh, kw), each run of 4 input channels keeps exactly 2
    per = np.moveaxis(mask, 1, -1).reshape(3, 2, 2, 2, 4).sum(-1)
    assert (per == 2).all()


def test_nm_2_4_example():
    s = np.array([[0.1, 0.9, 0.3, 0.5, 4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(nm_mask(s, 2, 4),
                                  [[False, True, False, True, True, True, False, False]])


@settings(max_examples=40)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), ratios,
       st.integers(0, 2**32 - 1))
def test_block_mask_removes_whole_blocks(bh, bw, nr, nc, s, seed):
    w = np.random.default_rng(seed).normal(size=(bh * nr, bw * nc))
    m = block_mask(structure_norms(w, "block", block_shape=(bh, bw)), s, (bh, bw))
    assert m.shape == w.shape
    tiles = m.reshape(nr, bh, nc, bw)
    assert (tiles.all(axis=(1, 3)) | ~tiles.any(axis=(1, 3))).all()  # each block all or nothing
    assert abs((~tiles.any(axis=(1, 3))).sum() - s * nr * nc) <= 0.5


def test_row_and_channel_masks():
    w = np.arange(24, dtype=float).reshape(4, 3, 2) - 12
    rm = row_mask(structure_norms(w, "row"), 0.5, w.shape)
    norms = structure_norms(w, "row")
    kept_rows = np.flatnonzero(rm.all(axis=(1, 2)))
    assert len(kept_rows) == 2 and set(kept_rows) == set(np.argsort(-norms, kind="stable")[:2])
    assert (rm.all(axis=(1, 2)) | ~rm.any(axis=(1, 2))).all()
    cm = channel_mask(structure_norms(w, "channel"), 1 / 3, w.shape)
    assert cm.any(axis=(0, 2)).sum() == 2 and (cm.all(axis=(0, 2)) | ~cm.any(axis=(0, 2))).all()


@settings(max_examples=60)
@given(st.lists(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                           elements=st.floats(-4, 4, allow_nan=False).map(abs)),
                min_size=1, max_size=4),
       ratios)
def test_global_reaches_requested_sparsity_within_one_weight(arrays, s):
    scores = {f"layer{i}": a for i, a in enumerate(arrays)}
    masks = global_masks(scores, s)
    total = sum(a.size for a in arrays)
    pruned = sum((~m).sum() for m in masks.values())
    assert abs(pruned - s * total) <= 1
    kept = np.concatenate([scores[k][masks[k]] for k in scores])
    gone = np.concatenate([scores[k][~masks[k]] for k in scores])
    if kept.size and gone.size:
        assert kept.min() >= gone.max()  # one threshold across all layers


def test_global_exclude_and_layerwise():
    scores = {"a": np.arange(10.0), "b": np.arange(10.0) + 100}
    m = global_masks(scores, 0.5, exclude=["b"])
    assert m["b"].all() and m["a"].sum() == 5
    m = global_masks(scores, 0.5)
    assert m["a"].sum() == 0 and m["b"].all()  # the threshold is shared: all of "a" goes
    lw = layerwise_masks(scores, {"a": 0.2})
    assert lw["a"].sum() == 8 and lw["b"].all()
    lw = layerwise_masks(scores, 0.3)
    assert lw["a"].sum() == 7 and lw["b"].sum() == 7


def test_sparsity_of():
    assert sparsity_of(np.array([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert sparsity_of(np.array([True, False, False, False])) == 0.75


def test_ties_keep_the_earlier_elements_in_every_mask():
    """Equal scores: the smaller flat index is kept (a stable order), at sizes where NumPy's default
    quicksort would not be stable; the same inside every N:M group."""
    from refcomp.compress.prune.masks import keep_top

    scores = np.random.default_rng(0).integers(0, 3, size=5000).astype(np.float64)   # ties everywhere
    order = np.lexsort((np.arange(5000), -scores))           # by score, then by index: the oracle
    for n in (10, 1700, 4000):
        np.testing.assert_array_equal(np.flatnonzero(keep_top(scores, n)), np.sort(order[:n]))
    grid = scores.reshape(1250, 4)
    nm = nm_mask(grid, 2, 4)
    rows = np.lexsort((np.tile(np.arange(4), (1250, 1)), -grid), axis=1)[:, :2]
    expected = np.zeros_like(nm)
    np.put_along_axis(expected, rows, True, axis=1)
    np.testing.assert_array_equal(nm, expected)


def test_structure_masks_name_what_their_scores_count():
    import pytest

    from refcomp.errors import ShapeError

    with pytest.raises(ShapeError, match="one score per row"):
        row_mask(np.ones(3), 0.5, (4, 5))
    with pytest.raises(ShapeError, match="one score per channel"):
        channel_mask(np.ones(3), 0.5, (4, 5))
    with pytest.raises(ShapeError, match="weight_shape"):
        row_mask(np.ones(4), 0.5, (4,))
    np.testing.assert_array_equal(row_mask(np.array([1.0, 3.0]), 0.5, (2, 3)), [[False] * 3, [True] * 3])


def test_nm_conv_against_loops():
    """Each group is 4 input channels at one (filter, kh, kw); its 2 largest survive (loops as the oracle)."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 8, 2, 3))
    mask = nm_mask(np.abs(w), 2, 4, axis=1)
    assert mask.shape == w.shape and mask.dtype == bool
    want = np.zeros(w.shape, bool)
    for o in range(3):
        for y in range(2):
            for x in range(3):
                for g in range(0, 8, 4):
                    top = np.argsort(-np.abs(w[o, g:g + 4, y, x]))[:2]
                    want[o, g + top, y, x] = True
    np.testing.assert_array_equal(mask, want)


def test_nm_of_a_vector_and_of_wide_groups_with_ties():
    np.testing.assert_array_equal(nm_mask(np.array([1.0, 3.0, 2.0, 0.0]), 1, 4, axis=0), [False, True, False, False])
    # 32-wide groups of 0 / 1 scores: NumPy's default sort is not stable above 16 elements, the mask's is
    s = np.array([[1.0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0]])
    kept = np.flatnonzero(nm_mask(s, 8, 32))
    np.testing.assert_array_equal(kept, np.flatnonzero(s[0])[:8])


def test_keep_top_of_unsigned_scores():
    # −x of an unsigned array wraps (−0 = 0 would sort first): the scores are compared as float64
    np.testing.assert_array_equal(unstructured_mask(np.array([0, 5, 3], np.uint8), 2 / 3), [False, True, False])


def test_mask_argument_checks():
    import pytest

    from refcomp.errors import ShapeError, ValidationError

    with pytest.raises(ValidationError, match="block_shape"):
        block_mask(np.ones((2, 2)), 0.5, (2, 2, 2))
    with pytest.raises(ValidationError, match="exclude"):
        global_masks({"a": np.ones(4)}, 0.5, exclude=["b"])
    with pytest.raises(ValidationError, match="sparsity"):
        layerwise_masks({"a": np.ones(4)}, {"b": 0.5})
    for fn in (global_masks, layerwise_masks):
        with pytest.raises(ValidationError, match="scores"):
            fn([np.ones(4)], 0.5)
    with pytest.raises(ShapeError, match="scores"):
        nm_mask(np.float64(1.0), 1, 4)
    masks = global_masks({"a": np.arange(4.0), "b": np.arange(3.0)}, 0.5, exclude=["b"])
    assert masks["b"].dtype == bool and masks["b"].all()
    assert sparsity_of(np.array([0.0])) == 1.0 and sparsity_of(np.array([2.0])) == 0.0
