"""SET and RigL (P.6–P.9) against the drop / grow sets written out with Python's sorted()."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refcomp.compress.prune import (DynamicSparsity, MaskedOptimizer, apply_model_masks, cosine_fraction,
                                    drop_smallest, model_sparsity, rigl_update, set_update, sparse_train)
from refcomp.errors import ValidationError
from refcomp.nn import SGD, train

from ..._support.helpers import blobs, mlp


def _case(seed, shape=(6, 7), density=0.5):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    w = rng.normal(size=shape) * mask         # inactive weights are 0, as in a masked model
    g = rng.normal(size=shape)
    return w, mask, g


def _k(n_active, f):
    return int(math.floor(f * n_active + 0.5))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), f=st.floats(0.0, 0.9))
def test_rigl_drops_smallest_weights_and_grows_largest_gradients(seed, f):
    w, mask, g = _case(seed)
    new = rigl_update(w, mask, g, f)
    idx = [(i, j) for i in range(6) for j in range(7)]
    active = [p for p in idx if mask[p]]
    k = _k(len(active), f)
    # ties cannot happen with continuous random values; sorted() by value alone is the oracle
    dropped = set(sorted(active, key=lambda p: abs(w[p]))[:k])
    candidates = [p for p in idx if not mask[p] or p in dropped]
    grown = set(sorted(candidates, key=lambda p: -abs(g[p]))[:k])
    expected = (set(active) - dropped) | grown
    assert {p for p in idx if new[p]} == expected
    assert new.sum() == mask.sum()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), f=st.floats(0.0, 0.9))
def test_set_drops_smallest_and_grows_as_many_among_the_inactive(seed, f):
    w, mask, _ = _case(seed)
    new = set_update(w, mask, f, rng=seed)
    active = np.flatnonzero(mask)
    k = _k(active.size, f)
    order = sorted(active, key=lambda i: abs(w.ravel()[i]))
    kept = set(order[k:])
    assert kept <= set(np.flatnonzero(new))          # the large ones survive
    assert new.sum() == mask.sum()                   # as many grown as dropped
    np.testing.assert_array_equal(new, set_update(w, mask, f, rng=seed))   # the rng is the only randomness


def test_set_regrowth_is_uniform_over_the_inactive_connections():
    w, mask, _ = _case(0, shape=(4, 5), density=0.5)
    inactive = np.flatnonzero(~mask)
    counts = np.zeros(mask.size)
    n = 3000
    for s in range(n):
        new = set_update(w, mask, 0.2, rng=s)
        counts += (new & ~mask).ravel()
    k_grown = counts[inactive].sum() / n
    p = counts[inactive] / n                    # each inactive slot's chance of being grown
    expected = k_grown / inactive.size
    # binomial standard error of each frequency; 5 sigma
    assert np.all(np.abs(p - expected) < 5 * np.sqrt(expected * (1 - expected) / n))


def test_drop_smallest_counts_and_bad_k():
    w, mask, _ = _case(1)
    out = drop_smallest(w, mask, 3)
    assert out.sum() == mask.sum() - 3 and not (out & ~mask).any()
    with pytest.raises(ValidationError, match="k: expected"):
        drop_smallest(w, mask, int(mask.sum()) + 1)


@settings(max_examples=30)
@given(t=st.integers(0, 200), alpha=st.floats(0.0, 0.99), t_end=st.integers(1, 150))
def test_cosine_fraction_is_rigl_eq3(t, alpha, t_end):
    expected = alpha / 2 * (1 + math.cos(t * math.pi / t_end)) if t < t_end else 0.0
    assert cosine_fraction(t, alpha, t_end) == pytest.approx(expected, abs=1e-15)


def test_callback_keeps_sparsity_and_starts_regrown_weights_at_zero():
    m = mlp()
    x, y = blobs(n=64)
    masks = {n: np.abs(m[n].weight.data) > np.median(np.abs(m[n].weight.data)) for n in ("fc1", "fc2")}
    apply_model_masks(m, masks)
    cb = DynamicSparsity(m, masks, method="rigl", alpha=0.3, delta_t=1, t_end=10, rng=0)
    for n, mk in masks.items():   # stale values in the inactive slots must not come back with a regrown weight
        m[n].weight.data[~mk] = 5.0
    before = {n: m[n].weight.data.copy() for n in masks}
    old = {n: mk.copy() for n, mk in masks.items()}
    cb.on_batch_start(x, y)   # step 0: no update
    cb.on_batch_start(x, y)   # step 1: an update
    for n, mk in masks.items():
        grown, stay = mk & ~old[n], mk & old[n]
        assert grown.any() and mk.sum() == old[n].sum()
        assert (m[n].weight.data[grown] == 0).all()
        np.testing.assert_array_equal(m[n].weight.data[stay], before[n][stay])
        assert (m[n].weight.data[~mk] == 0).all()
        assert m[n].weight.mask is mk            # the weight holds the live mask


def test_sparse_train_keeps_each_layer_at_its_sparsity_and_moves_connections():
    m = mlp()
    x, y = blobs(n=200)
    for method in ("rigl", "set"):
        out, report = sparse_train(m, (x, y), method=method, sparsity=0.75, epochs=3, delta_t=2, lr=0.05,
                                   layers=["fc1", "fc2"], rng=1)
        for n, mk in report["masks"].items():   # the mask count is exact; weights are 0 outside it
            assert (~mk).sum() == 0.75 * mk.size and (out[n].weight.data[~mk] == 0).all()
        assert sum(sum(moved.values()) for _, moved in report["updates"]) > 0
        assert report["history"][-1]["accuracy"] > 0.8
    assert model_sparsity(m)["fc1"] == 0.0   # input untouched
    with pytest.raises(ValidationError, match="method"):
        sparse_train(m, (x, y), method="snfs", sparsity=0.5)


def test_rigl_regrowth_beats_set_on_a_layer_starved_of_its_useful_inputs():
    # a linear classifier whose only informative inputs are masked out at the start: RigL finds them
    # through the gradient, SET only by chance
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    from refcomp.nn import Linear, Sequential
    m = Sequential(("fc", Linear(12, 2, rng=0)))
    m["fc"].weight.data[:, :2] = 0.0            # the useful inputs start pruned (magnitude init)
    accs, useful = {}, {}
    for method in ("rigl", "set"):
        out, report = sparse_train(m, (x, y), method=method, sparsity=0.75, epochs=4, delta_t=5, alpha=0.3,
                                   lr=0.1, rng=0)
        w = out["fc"].weight.data
        accs[method] = float(np.mean((x @ w.T + out["fc"].bias.data).argmax(1) == y))
        useful[method] = int(report["masks"]["fc"][:, :2].sum())
    assert useful["rigl"] >= 3 and useful["rigl"] > useful["set"]
    assert accs["rigl"] > accs["set"] + 0.1


def test_masked_optimizer_follows_the_live_masks():
    m = mlp()
    x, y = blobs(n=64)
    masks = {"fc1": np.abs(m["fc1"].weight.data) > 0.1}
    apply_model_masks(m, masks)
    cb = DynamicSparsity(m, masks, method="set", alpha=0.5, delta_t=1, t_end=100, rng=0)
    opt = MaskedOptimizer(SGD(m.parameters(), lr=0.1, momentum=0.9), m, cb.masks)
    train(m, (x, y), epochs=2, optimizer=opt, callbacks=[cb], batch_size=16)
    assert (m["fc1"].weight.data[~cb.masks["fc1"]] == 0).all()


# ---- the update schedule of the callback and of sparse_train, the defaults, and each bad input named

def test_cosine_fraction_and_drop_smallest_bad_input():
    assert cosine_fraction(0, 0.3, 10) == pytest.approx(0.3)
    assert cosine_fraction(5, 0.3, 10) == pytest.approx(0.15)
    assert cosine_fraction(10, 0.3, 10) == 0.0
    for kw, name in ((dict(step=-1, alpha=0.3, t_end=5), "step"), (dict(step=0, alpha=1.0, t_end=5), "alpha"),
                     (dict(step=0, alpha=-0.1, t_end=5), "alpha"), (dict(step=0, alpha=0.3, t_end=0), "t_end")):
        with pytest.raises(ValidationError, match=f"^{name}:"):
            cosine_fraction(**kw)
    w, mask, _ = _case(2)
    with pytest.raises(ValidationError, match="^k:"):
        drop_smallest(w, mask, -1)
    np.testing.assert_array_equal(drop_smallest(w, mask, 0), mask)
    assert not drop_smallest(w, mask, int(mask.sum())).any()


def test_callback_updates_every_delta_t_steps_before_t_end():
    m = mlp()
    x, y = blobs(n=16)
    masks = {"fc1": np.abs(m["fc1"].weight.data) > np.median(np.abs(m["fc1"].weight.data))}
    apply_model_masks(m, masks)
    cb = DynamicSparsity(m, masks, method="set", alpha=0.5, delta_t=3, t_end=9, rng=0)
    for _ in range(20):
        old = masks["fc1"].copy()
        cb.on_batch_start(x, y)
        if cb.history and cb.history[-1][0] == cb.step - 1:
            assert cb.history[-1][1] == {"fc1": int((masks["fc1"] & ~old).sum())}
    assert [t for t, _ in cb.history] == [3, 6]          # t = 9 = T_end: no update
    assert cb.step == 20


def test_callback_defaults_and_bad_input():
    m = mlp()
    x, y = blobs(n=16)
    masks = {"fc1": np.abs(m["fc1"].weight.data) > np.median(np.abs(m["fc1"].weight.data))}
    apply_model_masks(m, masks)
    # defaults: RigL, α = 0.3, ΔT = 100, T_end = 1 (no update unless asked)
    cb = DynamicSparsity(m, {n: k.copy() for n, k in masks.items()})
    for _ in range(120):
        cb.on_batch_start(x, y)
    assert cb.history == []
    a = DynamicSparsity(mlp(), {n: k.copy() for n, k in masks.items()}, delta_t=1, t_end=4)
    b = DynamicSparsity(mlp(), {n: k.copy() for n, k in masks.items()}, method="rigl", alpha=0.3, delta_t=1,
                        t_end=4, rng=5)
    for _ in range(4):
        a.on_batch_start(x, y)
        b.on_batch_start(x, y)
    np.testing.assert_array_equal(a.masks["fc1"], b.masks["fc1"])
    assert a.history == b.history and len(a.history) == 3
    for kw, name in ((dict(method="snfs"), "method"), (dict(alpha=1.0), "alpha"), (dict(delta_t=0), "delta_t"),
                     (dict(t_end=0), "t_end")):
        with pytest.raises(ValidationError, match=f"^{name}:"):
            DynamicSparsity(m, masks, **kw)


def test_sparse_train_schedule_random_init_and_per_layer_sparsity():
    m = mlp()
    x, y = blobs(n=100)
    steps = 2 * 7                                             # 2 epochs of ⌈100 / 16⌉ batches
    out, report = sparse_train(m, (x, y), method="set", sparsity={"fc1": 0.5, "fc2": 0.25}, epochs=2, delta_t=2,
                               batch_size=16, t_end_fraction=0.5, init="random", rng=3)
    assert [t for t, _ in report["updates"]] == [t for t in range(1, steps) if t % 2 == 0 and t < int(0.5 * steps)]
    assert set(report["masks"]) == {"fc1", "fc2"}
    assert (~report["masks"]["fc1"]).sum() == 0.5 * 16 * 12 and (~report["masks"]["fc2"]).sum() == 0.25 * 8 * 16
    assert len(report["history"]) == 2
    # a random start keeps small weights that a magnitude start drops
    w = np.abs(m["fc1"].weight.data)
    _, magnitude = sparse_train(m, (x, y), sparsity={"fc1": 0.5}, delta_t=1000, batch_size=16, rng=3)
    np.testing.assert_array_equal(magnitude["masks"]["fc1"], w > np.median(w))
    with pytest.raises(ValidationError, match="init"):
        sparse_train(m, (x, y), sparsity=0.5, init="lottery")
    with pytest.raises(ValidationError, match="t_end_fraction"):
        sparse_train(m, (x, y), sparsity=0.5, t_end_fraction=1.5)
