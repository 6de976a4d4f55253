"""Rank search under a budget (R.1, R.2): every accepted step keeps the validation error, a rise freezes the layer."""

import copy

import numpy as np
import pytest

from refcomp.compress.lowrank.search import factorize_to_budget, rank_ladder, search_ranks
from refcomp.errors import ValidationError
from refcomp.formats import Dense
from refcomp.nn import train

from ..._support.helpers import blobs, mlp


def _oracle_errors(model, ranks, val):
    """Misclassified val images with each layer's weight replaced by numpy's rank-r SVD (no refcomp SVD)."""
    m = copy.deepcopy(model)
    for name, r in ranks.items():
        w = m[name].weight.data
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
        m[name].weight = Dense(((u[:, :r] * s[:r]) @ vt[:r]).astype(w.dtype))
    x, y = val
    return int(np.sum(np.argmax(m.eval().forward(x), axis=1) != y))


def _setup():
    x, y = blobs(n=600, classes=3, seed=0)
    m = mlp(dtype="float64")
    train(m, (x[:400].astype(np.float64), y[:400]), epochs=8, batch_size=40, progress=False, rng=0)
    return m, (x[400:].astype(np.float64), y[400:])


def test_ladder_starts_at_the_largest_saving_rank_and_ends_at_one():
    for out, n_in in ((300, 784), (16, 12), (10, 500), (3, 3)):
        ladder = rank_ladder(out, n_in, 0.75)
        r0 = ladder[0]
        assert r0 * (out + n_in) < out * n_in <= (r0 + 1) * (out + n_in)
        assert ladder[-1] == 1 and all(a > b for a, b in zip(ladder, ladder[1:]))
    assert rank_ladder(300, 784)[:3] == [216, 162, 121]
    assert rank_ladder(1, 5) == [] and rank_ladder(2, 2) == []   # rank 1 stores as many as the dense layer


def test_a_reachable_budget_is_met_without_a_rise():
    m, val = _setup()
    dense = m.num_parameters()
    out, report = factorize_to_budget(m, val, max_params=dense - 60)
    assert report["budget_met"] and out.num_parameters() == report["params"] <= dense - 60
    assert report["val_errors"] == _oracle_errors(m, report["ranks"], val) <= report["dense_val_errors"]


def test_every_accepted_step_keeps_the_error_and_a_rise_freezes_the_layer():
    m, val = _setup()
    ranks, report = search_ranks(m, val, max_params=1, tolerance=0)   # unreachable: the rule alone stops it
    assert not report["budget_met"] and report["history"]
    current, now = report["dense_val_errors"], {}
    rejected = set()
    for h in report["history"]:
        trial = {**now, h["layer"]: h["rank"]}
        e = _oracle_errors(m, trial, val)
        assert e == h["val_errors"]
        assert h["layer"] not in rejected               # a frozen layer is never tried again
        if e > current:                                 # the error rose: the step is refused, the layer frozen
            assert not h["accepted"]
            rejected.add(h["layer"])
        else:
            assert h["accepted"]
            now, current = trial, e
    assert now == ranks and rejected and report["val_errors"] == current
    assert any(r > 1 for r in ranks.values())           # it stopped before the bottom of some ladder


def test_bad_arguments():
    m, val = _setup()
    with pytest.raises(ValidationError, match="max_params"):
        search_ranks(m, val, max_params=0)
    with pytest.raises(ValidationError, match="tolerance"):
        search_ranks(m, val, max_params=10, tolerance=-1)
    with pytest.raises(ValidationError, match="val_set"):
        search_ranks(m, val[0], max_params=10)
    with pytest.raises(ValidationError, match="shrink"):
        search_ranks(m, val, max_params=10, shrink=1.0)
    with pytest.raises(ValidationError, match="layers"):
        search_ranks(m, val, max_params=10, layers=["nope"])
